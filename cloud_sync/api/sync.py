"""The sites' endpoints: enrollment, the bundle long-poll, reports and event uploads.

See cloud_sync/service.py for the protocol; a site authenticates with the bearer
credential it got from enrollment (the auth middleware sets ``request[SITE]``).
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

from aiohttp import web

from cloud_sync import bundle as bundles
from cloud_sync.api.common import HANDLERS, LIMITER, SITE, STORE, read_json
from doorkeep.errors import AuthError
from doorkeep.web import ErrorCode, error_response

#: Longest long-poll a site may ask for; load balancers commonly cut at 60 s.
MAX_WAIT_S = 55.0


@HANDLERS
async def enroll_handler(request: web.Request) -> web.Response:
    limiter = request.app[LIMITER]
    who = request.remote or "?"
    if limiter.blocked(who):
        return error_response(
            429, ErrorCode.TOO_MANY_ATTEMPTS, "too many wrong enrollment codes; wait a minute"
        )
    body = await read_json(request)
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str):
        return error_response(
            400, ErrorCode.BAD_REQUEST, 'send {"code": "<enrollment code>"}', "code"
        )
    adopt = body.get("adopt") if isinstance(body, dict) else None
    if adopt is not None and not isinstance(adopt, dict):
        return error_response(
            400, ErrorCode.BAD_REQUEST, '"adopt" must be {"secret","document","version"}', "adopt"
        )
    try:
        return web.json_response(await request.app[STORE].enroll(code, adopt))
    except AuthError:
        limiter.failed(who)
        raise


#: Content type of the signed "nothing new" answer (same envelope as a bundle).
CURRENT_TYPE = "application/vnd.doorkeep.current+json"
_NONCE = re.compile(rf"[A-Za-z0-9_-]{{8,{bundles.MAX_NONCE}}}")


@HANDLERS
async def bundle_handler(request: web.Request) -> web.Response:
    store = request.app[STORE]
    site_id = request[SITE]
    try:
        version = int(request.query.get("version", "0"))
        wait = min(max(float(request.query.get("wait", "0")), 0.0), MAX_WAIT_S)
    except ValueError:
        return error_response(
            400, ErrorCode.BAD_REQUEST, "version must be an integer and wait a number of seconds"
        )
    digest = request.query.get("digest") or None
    want_snapshot = request.query.get("snapshot") in ("1", "true")
    nonce = request.query.get("nonce")
    if nonce is not None and not _NONCE.fullmatch(nonce):
        return error_response(
            400, ErrorCode.BAD_REQUEST, "nonce must be 8 to 64 letters, digits, '-' or '_'", "nonce"
        )

    async def nothing_new(resend: int | None) -> web.Response:
        headers = {"Doorkeep-Resend-From": str(resend)} if resend is not None else {}
        if nonce is None:  # a site from before signed answers: the old bare 204
            return web.Response(status=204, headers=headers)
        body = bundles.build_current(
            store.keys.signer,
            site_id=site_id,
            version=await store.current_version(site_id),
            edge_version=version,
            nonce=nonce,
            now=datetime.fromtimestamp(store.clock(), UTC),
        )
        return web.Response(body=body, content_type=CURRENT_TYPE, headers=headers)

    await store.touch(site_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        # Watch before checking, so a change between the check and the wait still wakes us.
        woken = store.notifier.watch(site_id)
        data = await store.bundle_for(site_id, version, digest, want_snapshot=want_snapshot)
        resend = await store.resend_from(site_id)
        if data is not None:
            headers = {"Doorkeep-Resend-From": str(resend)} if resend is not None else {}
            return web.Response(body=data, content_type="application/json", headers=headers)
        remaining = deadline - loop.time()
        if remaining <= 0:
            return await nothing_new(resend)
        try:
            async with asyncio.timeout(remaining):  # not wait_for (3.11 can swallow a cancel)
                await woken.wait()
        except TimeoutError:
            return await nothing_new(resend)
        if resend is None and (asked := await store.resend_from(site_id)) is not None:
            return await nothing_new(asked)


@HANDLERS
async def report_handler(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        return error_response(400, ErrorCode.BAD_REQUEST, "send a JSON object")
    version = body.get("version")
    digest = body.get("digest")
    inventory = body.get("inventory")
    if version is not None and not isinstance(version, int):
        return error_response(400, ErrorCode.BAD_REQUEST, "version must be an integer", "version")
    await request.app[STORE].report(
        request[SITE],
        version=version,
        digest=digest if isinstance(digest, str) else None,
        inventory=inventory if isinstance(inventory, dict) else None,
    )
    cloud_version = await request.app[STORE].current_version(request[SITE])
    return web.json_response({"ok": True, "cloud_version": cloud_version})


@HANDLERS
async def events_upload_handler(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        return error_response(400, ErrorCode.BAD_REQUEST, 'send {"epoch": ..., "events": [...]}')
    epoch = body.get("epoch")
    if not isinstance(epoch, str):
        return error_response(400, ErrorCode.BAD_REQUEST, "epoch must be a string", "epoch")
    rows = [e for e in body["events"] if isinstance(e, dict)]
    result = await request.app[STORE].ingest(request[SITE], epoch, rows)
    return web.json_response(result.as_dict())
