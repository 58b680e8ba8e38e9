"""Import and export of the reference's templates on the edge (``site.imports``).

The work is ``doorkeep.imports`` (pure, shared with the cloud); this component runs it
off the event loop and commits a good file as ONE policy change through
``SitePolicy.apply_derived``: one store transaction, one audit row ("import residents: N
people, M credentials ..."). A file with problems changes nothing. An import that
changes nothing writes no policy version, only an audit row saying "0 changes".

Progress: ``start_job`` registers a job id whose ``progress(stage, done, total)`` the
worker thread updates; ``job(id)`` reads it (``GET /import/jobs/{id}``). Jobs are kept in
memory, the newest ``MAX_JOBS`` of them.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from doorkeep import imports
from doorkeep.errors import Conflict, NotFound
from doorkeep.imports import Progress
from edge.site.policy import SitePolicy
from edge.store import EdgeStore

MAX_JOBS = 50


class SiteImports:
    """The site's import/export component."""

    def __init__(self, policy: SitePolicy, store: EdgeStore, secret: bytes) -> None:
        self._policy = policy
        self._store = store
        self._secret = secret
        self._jobs: OrderedDict[str, dict[str, Any]] = OrderedDict()

    # --- progress ------------------------------------------------------------------------

    def start_job(self, kind: str, job_id: str | None = None) -> str:
        """Register a job (the client's id, or a new one) for ``job`` to report on."""
        job_id = job_id or secrets.token_urlsafe(12)
        if self._jobs.get(job_id, {}).get("state") == "running":
            raise Conflict(f"import job {job_id!r} is still running: pick another id")
        self._jobs[job_id] = {
            "id": job_id,
            "kind": kind,
            "state": "running",
            "stage": "receiving",
            "done": 0,
            "total": 0,
        }
        while len(self._jobs) > MAX_JOBS:
            self._jobs.popitem(last=False)
        return job_id

    def job(self, job_id: str) -> dict[str, Any]:
        """The progress (and, once finished, the outcome) of an import job."""
        if job_id not in self._jobs:
            raise NotFound(f"no import job {job_id!r} (jobs are kept in memory until restart)")
        return dict(self._jobs[job_id])

    def _progress(self, job_id: str | None, extra: Progress | None) -> Progress | None:
        job = self._jobs.get(job_id) if job_id else None
        if job is None:
            return extra

        def report(stage: str, done: int, total: int) -> None:
            job.update(stage=stage, done=done, total=total)  # one dict update: GIL-atomic
            if extra is not None:
                extra(stage, done, total)

        return report

    def _finish(self, job_id: str | None, **outcome: Any) -> None:
        job = self._jobs.get(job_id) if job_id else None
        if job is not None:
            job.update(outcome)

    # --- import ----------------------------------------------------------------------------

    def _plan(
        self, kind: str, data: bytes, doc: Mapping[str, Any], progress: Progress | None
    ) -> Any:
        return imports.plan_import(
            kind,
            data,
            doc,
            secret=self._secret,
            doors=frozenset(self._policy.snapshot.doors),
            progress=progress,
        )

    async def run(
        self,
        kind: str,
        data: bytes,
        *,
        actor: str,
        dry_run: bool = False,
        job: str | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Check (and unless ``dry_run`` apply) one file. ImportRejected lists every
        problem, nothing changed. Returns the summary with ``version`` (None: unchanged)."""
        report = self._progress(job, progress)
        try:
            if dry_run:
                doc = self._policy.document()
                result = await asyncio.to_thread(self._plan, kind, data, doc, report)
                outcome = {
                    "summary": result.summary.text(),
                    **result.summary.as_dict(),
                    "dry_run": True,
                    "version": None,
                }
            else:
                outcome = await self._apply(kind, data, actor, report)
        except imports.ImportRejected as err:
            issues = [i.as_dict() for i in err.issues]
            self._finish(job, state="rejected", error=str(err), issues=issues)
            raise
        except Exception as err:
            self._finish(job, state="failed", error=str(err))
            raise
        self._finish(job, state="done", stage="done", result=outcome)
        return outcome

    async def _apply(
        self, kind: str, data: bytes, actor: str, report: Progress | None
    ) -> dict[str, Any]:
        def derive(current: Mapping[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
            result = self._plan(kind, data, current, report)
            if report is not None and result.doc is not None:
                report("applying", result.summary.rows, result.summary.rows)
            return result.doc, {"summary": result.summary.text(), **result.summary.as_dict()}

        version, summary = await self._policy.apply_derived(
            derive, actor=actor, action=f"import.{kind}", target="policy"
        )
        if version is None:  # nothing to change: no policy write, one audit line
            await self._store.audit(actor, f"import.{kind}", "policy", summary)
        return {**summary, "dry_run": False, "version": version}

    # --- export ----------------------------------------------------------------------------

    async def export(self, kind: str, fmt: str) -> bytes:
        """The site's ``kind`` as a csv or xlsx file (credentials masked)."""
        doc = self._policy.document()
        doors = frozenset(self._policy.snapshot.doors)
        return await asyncio.to_thread(imports.export_table, kind, doc, fmt, doors=doors)

    async def template(self, kind: str, fmt: str) -> bytes:
        return await asyncio.to_thread(imports.template, kind, fmt)
