"""Reads posted by ``http`` readers (LPR cameras, IP door phones) and the car parks.

The auth middleware has already checked the bearer token is the one made for the reader
in the path (edge/web/middleware.py, ``DeviceAuth.READER``); the read then takes the
readers hub's path, the same as every physical reader's (``Site.present``).
"""

from __future__ import annotations

from typing import Any

from doorkeep.web import ForbiddenError
from edge.web.context import HANDLERS, Call


@HANDLERS
async def reader_input(call: Call) -> Any:
    reader = call.path["id"]
    section = next((r for r in call.site.config.readers if r.id == reader), None)
    if section is None or section.type != "http":
        # a token made while the reader was an http reader, and site.toml changed since
        raise ForbiddenError(f'reader {reader!r} is not a type = "http" reader in site.toml')
    return await call.site.readers.read(reader, call.body["kind"], call.body["value"])


@HANDLERS
async def list_parking(call: Call) -> Any:
    return {"items": call.site.parking.status()}
