"""The reconciliation job (``doorkeep cloud reconcile``, run by a systemd timer).

For every site it compares what the site reports with what the cloud holds and repairs
the difference, then prints what it found and did:

- policy digest mismatch (same version, other digest; or a site *ahead* of the cloud) →
  mark the site for a full snapshot at a version newer than anything it holds;
- outbox sequence gaps (events above the watermark, one missing) → the site's next poll
  answer says "resend from seq N";
- a silent site (no contact for ``silent_after_s``) → an alarm (resolved when it is back);
- apartment leases with auto-delete that ended → residents and their credentials removed;
  temp keys whose absolute window ended, and past reservations → deleted;
- temp-key uses summed over every site's events → keys used up everywhere are deleted.

The decisions are made by pure functions over plain data (``expired_changes``,
``site_findings``); ``reconcile`` only reads and writes the store around them.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from cloud_sync.store import CloudStore

#: A site not heard from for this long raises a "silent" alarm.
SILENT_AFTER_S = 3600.0


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the job found at a site, and what it did about it."""

    site: str
    #: digest_mismatch | site_ahead | gap | old_epoch_gap | silent | expired | temp_key_used_up
    kind: str
    detail: str
    action: str

    def __post_init__(self) -> None:
        if not self.site or not self.kind:
            raise ValueError("a finding needs a site and a kind")


@dataclass(frozen=True, slots=True)
class SiteRow:
    """A site's line in the report."""

    site: str
    enrolled: bool
    last_contact: float | None
    cloud_version: int
    reported_version: int | None
    in_sync: bool
    watermark: int


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What one run saw and did; ``table()`` for people, ``as_json()`` for machines."""

    at: float
    sites: list[SiteRow] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    temp_key_uses: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict."""
        return {
            "at": self.at,
            "sites": [asdict(s) for s in self.sites],
            "findings": [asdict(f) for f in self.findings],
            "temp_key_uses": self.temp_key_uses,
        }

    def to_json(self) -> str:
        """The report as indented JSON text."""
        return json.dumps(self.as_json(), indent=2, sort_keys=True)

    def table(self) -> str:
        """A fixed-width table of sites, then one line per finding."""
        head = ("site", "enrolled", "last contact", "cloud v", "site v", "in sync", "watermark")
        rows = [head]
        for s in self.sites:
            contact = (
                "never"
                if s.last_contact is None
                else f"{max(self.at - s.last_contact, 0):.0f} s ago"
            )
            rows.append(
                (
                    s.site,
                    "yes" if s.enrolled else "no",
                    contact,
                    str(s.cloud_version),
                    "-" if s.reported_version is None else str(s.reported_version),
                    "yes" if s.in_sync else "NO",
                    str(s.watermark),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        lines.append("")
        if not self.findings:
            lines.append("no findings: every site is in sync")
        lines.extend(f"{f.site}: {f.kind}: {f.detail} -> {f.action}" for f in self.findings)
        return "\n".join(lines)


def _parse_local(text: Any, tz: ZoneInfo) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def expired_changes(
    doc: dict[str, Any], now: datetime, tz: ZoneInfo, used_up: set[str] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """(new document, what was removed) for leases, temp keys and reservations that ended.

    Pure. ``now`` is aware; times without an offset are wall-clock in ``tz``.
    """
    out = copy.deepcopy(doc)
    removed: list[str] = []
    ended_apartments = set()
    for apt in out.get("apartments") or []:
        until = _parse_local(apt.get("valid_until"), tz)
        if apt.get("auto_delete") and until is not None and until <= now:
            ended_apartments.add(apt["id"])
    if ended_apartments:
        leaving = {
            p["id"]
            for p in out.get("people") or []
            if p.get("apartment") in ended_apartments and p.get("kind", "resident") == "resident"
        }
        out["people"] = [p for p in out.get("people") or [] if p["id"] not in leaving]
        out["credentials"] = [
            c for c in out.get("credentials") or [] if c.get("person") not in leaving
        ]
        removed.extend(f"people/{p} (lease ended)" for p in sorted(leaving))
    keep_keys = []
    for key in out.get("temp_keys") or []:
        sched = key.get("schedule") or {}
        end = _parse_local(sched.get("end"), tz) if sched.get("repeat") == "never" else None
        if end is not None and end < now:
            removed.append(f"temp_keys/{key['id']} (ended)")
        elif used_up and key.get("id") in used_up:
            removed.append(f"temp_keys/{key['id']} (used up across sites)")
        else:
            keep_keys.append(key)
    out["temp_keys"] = keep_keys
    keep_res = []
    for res in out.get("reservations") or []:
        end = _parse_local(res.get("end"), tz)
        if end is not None and end < now:
            removed.append(f"reservations/{res['id']} (ended)")
        else:
            keep_res.append(res)
    out["reservations"] = keep_res
    return out, removed


def used_up_keys(docs: dict[str, dict[str, Any]], uses: dict[str, int]) -> set[str]:
    """Temp key ids whose uses, summed over every site, reached n x k (pure)."""
    out = set()
    for doc in docs.values():
        for key in doc.get("temp_keys") or []:
            per_door = key.get("uses_per_door")
            if per_door is None:
                continue
            if uses.get(key["id"], 0) >= per_door * len(key.get("doors") or []):
                out.add(key["id"])
    return out


async def reconcile(
    store: CloudStore,
    *,
    now: float | None = None,
    silent_after_s: float = SILENT_AFTER_S,
    actor: str = "reconcile",
) -> ReconcileReport:
    """Run the job once over every site; the report of what it found and did."""
    at = time.time() if now is None else now
    report = ReconcileReport(at=at)
    statuses = await store.site_status()
    docs = {s["id"]: (await store.policy(s["id"]))[2] for s in statuses}
    uses = await store.temp_key_uses()
    report.temp_key_uses.update(uses)
    used_up = used_up_keys(docs, uses)
    for status in statuses:
        site = status["id"]
        await _site(
            store,
            status,
            doc=docs[site],
            used_up=used_up,
            at=at,
            silent_after_s=silent_after_s,
            actor=actor,
            report=report,
        )
    return report


async def _site(
    store: CloudStore,
    status: dict[str, Any],
    *,
    doc: dict[str, Any],
    used_up: set[str],
    at: float,
    silent_after_s: float,
    actor: str,
    report: ReconcileReport,
) -> None:
    site = status["id"]
    found = report.findings.append
    enrolled = bool(status["enrolled"])
    cloud_v, site_v = status["cloud_version"], status["reported_version"]
    if enrolled and site_v is not None:
        if site_v > cloud_v:
            version = await store.force_snapshot(site, actor=actor, min_version=site_v + 1)
            found(
                Finding(
                    site,
                    "site_ahead",
                    f"site holds v{site_v}, cloud v{cloud_v}",
                    f"full snapshot at v{version}",
                )
            )
        elif site_v == cloud_v and status["reported_digest"] != status["cloud_digest"]:
            version = await store.force_snapshot(site, actor=actor)
            detail = f"v{site_v}: site {status['reported_digest']}, cloud {status['cloud_digest']}"
            found(Finding(site, "digest_mismatch", detail, f"full snapshot at v{version}"))
    epochs = sorted(await store.epochs_of(site), key=lambda e: e["last_seen"])
    for i, ep in enumerate(epochs):
        if ep["max_seq"] <= ep["watermark"]:
            continue
        missing = ep["watermark"] + 1
        if i == len(epochs) - 1:
            await store.ask_resend(site, missing)
            detail = f"epoch {ep['epoch']}: seq {missing} missing, {ep['max_seq']} seen"
            found(Finding(site, "gap", detail, f"asked to resend from {missing}"))
        else:
            detail = f"epoch {ep['epoch']}: seq {missing}..{ep['max_seq']} incomplete"
            found(Finding(site, "old_epoch_gap", detail, "none: the site's database was replaced"))
    if enrolled:
        contact = status["last_contact"]
        if contact is None or at - contact > silent_after_s:
            since = "never" if contact is None else f"{at - contact:.0f} s"
            await store.raise_alarm(site, "silent", f"no contact for {since}")
            found(Finding(site, "silent", f"last contact {since}", "alarm raised"))
        else:
            await store.resolve_alarms(site, "silent")
    tz = _site_tz(status)
    local_now = datetime.fromtimestamp(at, tz)
    _new, removed = expired_changes(doc, local_now, tz, used_up)
    if removed:
        version, _digest = await store.change_policy(
            site, lambda current: expired_changes(current, local_now, tz, used_up)[0], actor=actor
        )
        for what in removed:
            kind = "temp_key_used_up" if "used up" in what else "expired"
            found(Finding(site, kind, what, f"deleted in v{version}"))
    fresh = (await store.site_status(site))[0]
    report.sites.append(
        SiteRow(
            site=site,
            enrolled=enrolled,
            last_contact=fresh["last_contact"],
            cloud_version=fresh["cloud_version"],
            reported_version=fresh["reported_version"],
            in_sync=bool(fresh["in_sync"]),
            watermark=fresh["watermark"],
        )
    )


def _site_tz(status: dict[str, Any]) -> ZoneInfo:
    name = (status.get("inventory") or {}).get("timezone") or "UTC"
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")
