"""Import, export and templates in the reference's column sets (``site.imports``).

``POST /import/{kind}`` takes the .xlsx or .csv file itself as the body (at most
``MAX_UPLOAD_BYTES``; more is a 413 before the rest is read) and answers when the import
is done: 200 with the summary, or 422 ``policy_invalid`` whose ``issues`` name every row
and column. For a progress bar the client picks a job id and passes it as ``?job=``;
``GET /import/jobs/{id}`` then reports ``stage``, ``done`` and ``total`` while the upload
runs (docs/import-export.md).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from aiohttp import web

from doorkeep import imports
from doorkeep.errors import NotFound
from doorkeep.web import ApiError, ErrorCode
from edge.web.context import HANDLERS, Call, audit

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _kind(call: Call, kinds: Any) -> str:
    kind = str(call.path["kind"])
    if kind not in kinds:
        raise NotFound(f"no such kind {kind[:40]!r}: one of {', '.join(sorted(kinds))}")
    return kind


def _too_large(size: int | None = None) -> ApiError:
    got = f" ({size // 2**20} MB)" if size else ""
    return ApiError(
        413,
        ErrorCode.PAYLOAD_TOO_LARGE,
        f"the file is too large{got}: at most {MAX_UPLOAD_BYTES // 2**20} MB; split it",
    )


async def read_upload(request: web.Request) -> bytes:
    """The raw file of an upload, refused (413) past ``MAX_UPLOAD_BYTES``."""
    if request.content_type in _FORM_TYPES:
        raise ApiError(
            400,
            ErrorCode.BAD_CONTENT_TYPE,
            "send the .xlsx or .csv file itself as the body, not a form",
        )
    length = request.content_length
    if length is not None and length > MAX_UPLOAD_BYTES:
        raise _too_large(length)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(256 * 1024):
        size += len(chunk)
        if size > MAX_UPLOAD_BYTES:
            raise _too_large()
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data.strip():
        raise ApiError(
            400, ErrorCode.BODY_REQUIRED, "send the .xlsx or .csv file as the request body"
        )
    return data


@HANDLERS
async def import_file(call: Call) -> Any:
    kind = _kind(call, imports.IMPORT_KINDS)
    job = call.query.get("job")
    if job is not None:
        if not _JOB_ID.fullmatch(job):
            raise ApiError(400, ErrorCode.BAD_QUERY, "job must be 8-64 of A-Z a-z 0-9 _ -", "job")
        call.site.imports.start_job(kind, job)
    data = await read_upload(call.request)
    return await call.site.imports.run(
        kind, data, actor=call.actor, dry_run=call.query.get("dry_run", False), job=job
    )


@HANDLERS
async def import_job(call: Call) -> Any:
    return call.site.imports.job(call.path["id"])


def _file(call: Call, body: bytes, fmt: str, name: str) -> web.Response:
    stamp = datetime.now(call.site.tz).strftime("%Y%m%d-%H%M")
    return web.Response(
        body=body,
        content_type=imports.MEDIA_TYPES[fmt].split(";")[0],
        charset="utf-8" if fmt == "csv" else None,
        headers={"Content-Disposition": f'attachment; filename="doorkeep-{name}-{stamp}.{fmt}"'},
    )


@HANDLERS
async def export_file(call: Call) -> Any:
    kind = _kind(call, imports.EXPORT_KINDS)
    fmt = call.query.get("format", "xlsx")
    body = await call.site.imports.export(kind, fmt)
    await audit(call, f"export.{kind}", "policy", {"format": fmt})
    return _file(call, body, fmt, f"{call.site.site_id}-{kind}")


@HANDLERS
async def get_template(call: Call) -> Any:
    kind = _kind(call, imports.TEMPLATE_KINDS)
    fmt = call.query.get("format", "xlsx")
    return _file(call, await call.site.imports.template(kind, fmt), fmt, f"{kind}-template")
