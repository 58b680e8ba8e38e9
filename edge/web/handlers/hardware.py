"""Hardware: the live view and site.toml tables, bus scans, relay tests, card capture."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path
from typing import Any

from edge.web.context import HANDLERS, Call, audit
from edge.web.schemas import HARDWARE_TABLES

#: How long an OSDP reader's provisioning window stays open unless the request says.
PROVISION_WINDOW_S = 60


def _read_site_toml(config: Any) -> dict[str, Any]:
    # The file as it is now: an edit is written there and takes effect on restart, so the
    # running config (``raw``, parsed at start) would show the editor stale tables and make
    # the next edit write them back over the last one.
    path = getattr(config, "path", None)
    if path is not None:
        try:
            return tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            pass  # a file broken by hand: start from what the daemon runs
    return dict(getattr(config, "raw", None) or {})


async def _site_toml(call: Call) -> dict[str, Any]:
    return await asyncio.to_thread(_read_site_toml, call.site.config)


@HANDLERS
async def get_hardware(call: Call) -> Any:
    # The live view plus the site.toml tables as written, which the setup editor edits.
    raw = await _site_toml(call)
    config = {t: list(raw.get(t) or []) for t in HARDWARE_TABLES}
    return {**call.site.hardware(), "config": config}


@HANDLERS
async def put_hardware(call: Call) -> Any:
    # Only the hardware tables are replaced: an installer cannot rewrite [web] or [cloud].
    merged = {
        **await _site_toml(call),
        **{t: call.body[t] for t in HARDWARE_TABLES if t in call.body},
    }
    return await call.site.update_hardware(merged, actor=call.actor)


@HANDLERS
async def scan_bus(call: Call) -> Any:
    bus = call.path["id"]
    addresses = await call.site.bus_scan(bus)
    await audit(call, "bus.scan", f"bus:{bus}", {"found": addresses})
    return {"bus": bus, "addresses": addresses}


@HANDLERS
async def test_relay(call: Call) -> Any:
    ms = (call.body or {}).get("ms", 500)
    return await call.site.relay_test(call.path["board"], call.path["n"], ms=ms, actor=call.actor)


@HANDLERS
async def capture_card(call: Call) -> Any:
    timeout_s = (call.body or {}).get("timeout_s", 20.0)
    return await call.site.capture_next_card(call.path["id"], timeout_s)


@HANDLERS
async def list_readers(call: Call) -> Any:
    return {"items": call.site.readers.status()}


@HANDLERS
async def provision_reader(call: Call) -> Any:
    # An installer's explicit act: for a short window the reader may use the default key
    # (SCBK-D) to receive its own; the opened window is in the operation log.
    reader = call.path["id"]
    seconds = (call.body or {}).get("seconds", PROVISION_WINDOW_S)
    window = await call.site.readers.provision(reader, seconds)
    await audit(call, "reader.provision", f"reader:{reader}", {"window_s": seconds, **window})
    return window
