"""The admin endpoints: sites, their policy and its entities, events and alarms.

Entity edits are policy changes: each one goes through ``store.change_policy``, which
validates the whole document, signs a new bundle and writes the audit line.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from cloud_sync.api.common import (
    ACTOR,
    ENTITY_PATHS,
    HANDLERS,
    STORE,
    policy_headers,
    read_json,
    site_id,
)
from cloud_sync.reconcile import _site_tz as site_tz
from doorkeep import credfacts, listing, policydoc, policyrules
from doorkeep.errors import Conflict, NotFound, PolicyError
from doorkeep.web import ApiError, ErrorCode, check_int64, error_response


@HANDLERS
async def list_sites(request: web.Request) -> web.Response:
    rows = await request.app[STORE].site_status()
    for row in rows:
        row.pop("inventory", None)
    return web.json_response(rows)


@HANDLERS
async def create_site(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        return error_response(
            400, ErrorCode.BAD_REQUEST, 'send {"id": "site-id", "name": ...}', "id"
        )
    code = await request.app[STORE].add_site(body["id"], str(body.get("name") or ""))
    return web.json_response({"id": body["id"], "enrollment_code": code}, status=201)


@HANDLERS
async def get_site(request: web.Request) -> web.Response:
    (row,) = await request.app[STORE].site_status(site_id(request))
    return web.json_response(row)


@HANDLERS
async def new_code(request: web.Request) -> web.Response:
    code = await request.app[STORE].new_enrollment_code(site_id(request))
    return web.json_response({"id": site_id(request), "enrollment_code": code})


@HANDLERS
async def resync_site(request: web.Request) -> web.Response:
    version = await request.app[STORE].force_snapshot(site_id(request), actor=request[ACTOR])
    return web.json_response({"version": version, "snapshot": True})


@HANDLERS
async def get_policy(request: web.Request) -> web.Response:
    version, digest, doc = await request.app[STORE].policy(site_id(request))
    return web.json_response(doc, headers=policy_headers(version, digest))


@HANDLERS
async def put_policy(request: web.Request) -> web.Response:
    doc = await read_json(request)
    if not isinstance(doc, dict):
        raise PolicyError("the policy must be a JSON object", [])
    version, digest = await request.app[STORE].change_policy(
        site_id(request), lambda _old: doc, actor=request[ACTOR]
    )
    return web.json_response(
        {"version": version, "digest": digest}, headers=policy_headers(version, digest)
    )


def _kind(request: web.Request) -> str:
    kind = ENTITY_PATHS.get(request.match_info["kind"])
    if kind is None:
        raise NotFound(
            f"no entity list {request.match_info['kind']!r}; use one of {sorted(ENTITY_PATHS)}"
        )
    return kind


def _find(doc: dict[str, Any], kind: str, key: str) -> dict[str, Any]:
    for entity in doc.get(kind) or []:
        if policydoc.entity_key(kind, entity) == key:
            return dict(entity)
    raise NotFound(f"no {kind} entry {key!r}")


def _list_query(kind: str, raw: Mapping[str, str]) -> listing.Query:
    """The edge's list contract (doorkeep/listing.py) from the query string."""
    params: dict[str, Any] = dict(raw)
    for name in ("limit", "offset"):
        if name in params:
            try:
                params[name] = int(params[name])
            except ValueError:
                raise ApiError(
                    400, ErrorCode.BAD_QUERY, f"{name} must be an integer", name
                ) from None
    try:
        return listing.Query.of(kind, params)
    except ValueError as err:
        raise ApiError(400, ErrorCode.BAD_QUERY, str(err)) from None


@HANDLERS
async def list_entities(request: web.Request) -> web.Response:
    """The list (a JSON array, as before), searched and paged as on the edge; the
    number of matches before paging is the ``Doorkeep-Total`` header."""
    kind = _kind(request)
    query = _list_query(kind, request.query) if kind in listing.FILTERS else None
    version, digest, doc = await request.app[STORE].policy(site_id(request))
    headers = policy_headers(version, digest)
    if query is None:  # holidays, hold_open: not a searchable list
        return web.json_response(doc.get(kind) or [], headers=headers)
    (status,) = await request.app[STORE].site_status(site_id(request))
    tz = site_tz(status)  # temp-key validity: naive times are the site's wall clock
    answer = await asyncio.to_thread(
        lambda: listing.search(listing.EntityIndex(doc), kind, query, now=datetime.now(tz), tz=tz)
    )
    headers["Doorkeep-Total"] = str(answer["total"])
    return web.json_response(answer["items"], headers=headers)


@HANDLERS
async def get_entity(request: web.Request) -> web.Response:
    kind = _kind(request)
    _v, _d, doc = await request.app[STORE].policy(site_id(request))
    return web.json_response(_find(doc, kind, request.match_info["eid"]))


async def _put(
    request: web.Request, kind: str, key: str, body: Any, *, create: bool
) -> web.Response:
    if not isinstance(body, dict):
        raise PolicyError("send the entity as a JSON object", [])
    field = policydoc.key_field(kind)
    if body.setdefault(field, key) != key:
        raise PolicyError(f"the body's {field} {body[field]!r} differs from the URL's {key!r}", [])

    def mutate(doc: dict[str, Any]) -> dict[str, Any]:
        items = doc.setdefault(kind, [])
        keys = [policydoc.entity_key(kind, e) for e in items]
        old = items[keys.index(key)] if key in keys else None
        if key in keys:
            if create:
                raise Conflict(f"{kind} entry {key!r} exists already; PUT it to replace it")
            items[keys.index(key)] = body
        else:
            items.append(body)
            if kind == "buildings" and policyrules.needs_default_group(doc, key):
                # POLICY.md: every building has its default group; doors added later
                doc.setdefault("groups", []).append(policyrules.default_group(doc, body))
        if kind == "credentials" and key in keys:
            items[keys.index(key)] = credfacts.carry_facts(old, body)
        return doc

    site = site_id(request)
    version, digest = await request.app[STORE].change_policy(site, mutate, actor=request[ACTOR])
    _v, _d, doc = await request.app[STORE].policy(site)
    return web.json_response(
        _find(doc, kind, key),
        status=201 if create else 200,
        headers=policy_headers(version, digest),
    )


@HANDLERS
async def create_entity(request: web.Request) -> web.Response:
    kind = _kind(request)
    body = await read_json(request)
    key = body.get("id") if isinstance(body, dict) else None
    if not isinstance(key, str) or not key:
        raise PolicyError('a new entity needs an "id"', [])
    return await _put(request, kind, key, body, create=True)


@HANDLERS
async def put_entity(request: web.Request) -> web.Response:
    return await _put(
        request, _kind(request), request.match_info["eid"], await read_json(request), create=False
    )


@HANDLERS
async def delete_entity(request: web.Request) -> web.Response:
    kind = _kind(request)
    key = request.match_info["eid"]

    def mutate(doc: dict[str, Any]) -> dict[str, Any]:
        entity = _find(doc, kind, key)
        if kind == "groups" and entity.get("building_default"):
            raise Conflict(
                f"group {key!r} is the default group of a building and cannot be deleted"
            )
        doc[kind] = [e for e in doc.get(kind) or [] if policydoc.entity_key(kind, e) != key]
        if kind == "people":
            # POLICY.md: deleting a person deletes their credentials.
            doc["credentials"] = [c for c in doc.get("credentials") or [] if c.get("person") != key]
        return doc

    version, digest = await request.app[STORE].change_policy(
        site_id(request), mutate, actor=request[ACTOR]
    )
    return web.Response(status=204, headers=policy_headers(version, digest))


@HANDLERS
async def site_events(request: web.Request) -> web.Response:
    q = request.query
    try:
        limit = min(max(int(q.get("limit", "100")), 1), 1000)
    except ValueError:
        return error_response(400, ErrorCode.BAD_REQUEST, "limit must be an integer", "limit")
    before = None
    if q.get("cursor"):
        try:
            at_ts, epoch, seq = json.loads(base64.urlsafe_b64decode(q["cursor"]))
            before = (float(at_ts), str(epoch), check_int64(int(seq), "cursor"))
        except (ValueError, TypeError, OverflowError) as err:
            return error_response(
                400, ErrorCode.BAD_REQUEST, f"cursor is not one this API gave: {err}", "cursor"
            )
    site = site_id(request)
    await request.app[STORE].site_status(site)  # 404 for an unknown site
    rows = await request.app[STORE].events(
        site,
        since=q.get("since"),
        until=q.get("until"),
        type_=q.get("type"),
        limit=limit,
        before=before,
    )
    headers = {}
    for row in rows:
        cursor = row.pop("_cursor")
    if len(rows) == limit:
        # The last row's position: pass it as ?cursor= for the next (older) page.
        headers["Doorkeep-Next-Cursor"] = base64.urlsafe_b64encode(
            json.dumps(cursor).encode()
        ).decode()
    return web.json_response(rows, headers=headers)


@HANDLERS
async def list_alarms(request: web.Request) -> web.Response:
    site = site_id(request)
    await request.app[STORE].site_status(site)  # 404 for an unknown site
    open_only = request.query.get("all") not in ("1", "true")
    return web.json_response(await request.app[STORE].alarms(site, open_only=open_only))


@HANDLERS
async def resolve_alarm(request: web.Request) -> web.Response:
    try:
        alarm_id = int(request.match_info["aid"])
    except ValueError:
        return error_response(404, ErrorCode.NOT_FOUND, "alarm ids are integers")
    row = await request.app[STORE].resolve_alarm(site_id(request), alarm_id)
    return web.json_response(row)
