"""Import and export in the reference's templates for an enrolled site, with the same
core as the edge (``doorkeep.imports``): ``POST /sites/{site}/import/{kind}`` (the file
as the body, ``?dry_run=true``) applies a good file as one policy version through
``store.change_policy`` (validated, signed, audited, the site woken); a bad file is a
422 listing every row and column, nothing changed. ``GET /sites/{site}/export/{kind}``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from cloud_sync.api.common import ACTOR, HANDLERS, STORE, policy_headers, site_id
from doorkeep import imports
from doorkeep.errors import NotFound
from doorkeep.web import ApiError, ErrorCode


def _kind(request: web.Request, kinds: Any) -> str:
    kind = request.match_info["kind"]
    if kind not in kinds:
        raise NotFound(f"no such kind {kind[:40]!r}: one of {', '.join(sorted(kinds))}")
    return kind


@HANDLERS
async def import_site_file(request: web.Request) -> web.Response:
    kind = _kind(request, imports.IMPORT_KINDS)
    site = site_id(request)
    data = await request.read()
    if not data.strip():
        raise ApiError(400, ErrorCode.BODY_REQUIRED, "send the .xlsx or .csv file as the body")
    store = request.app[STORE]
    _version, _digest, current = await store.policy(site)  # NotFound for an unknown site
    secret = await store.registry.site_secret(site)
    doors = (await store.registry.inventory(site)).get("doors")
    if request.query.get("dry_run", "").lower() in ("1", "true"):
        result = await asyncio.to_thread(
            imports.plan_import, kind, data, current, secret=secret, doors=doors
        )
        body = {"summary": result.summary.text(), **result.summary.as_dict(), "dry_run": True}
        return web.json_response({**body, "version": None})
    summary: dict[str, Any] = {}

    def mutate(doc: dict[str, Any]) -> dict[str, Any]:
        result = imports.plan_import(kind, data, doc, secret=secret, doors=doors)
        summary.update(summary=result.summary.text(), **result.summary.as_dict())
        return doc if result.doc is None else result.doc

    version, digest = await store.change_policy(site, mutate, actor=request[ACTOR])
    return web.json_response(
        {**summary, "dry_run": False, "version": version},
        headers=policy_headers(version, digest),
    )


@HANDLERS
async def export_site_file(request: web.Request) -> web.Response:
    kind = _kind(request, imports.EXPORT_KINDS)
    fmt = request.query.get("format", "xlsx")
    if fmt not in imports.FORMATS:
        raise ApiError(400, ErrorCode.BAD_QUERY, "format must be csv or xlsx", "format")
    store = request.app[STORE]
    site = site_id(request)
    _version, _digest, doc = await store.policy(site)
    doors = (await store.registry.inventory(site)).get("doors")
    body = await asyncio.to_thread(imports.export_table, kind, doc, fmt, doors=doors)
    return web.Response(
        body=body,
        content_type=imports.MEDIA_TYPES[fmt].split(";")[0],
        charset="utf-8" if fmt == "csv" else None,
        headers={"Content-Disposition": f'attachment; filename="{site}-{kind}.{fmt}"'},
    )
