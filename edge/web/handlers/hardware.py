"""Hardware: the live view and site.toml tables, bus scans, relay tests, card capture."""

from __future__ import annotations

from typing import Any

from edge.web.context import HANDLERS, Call, audit
from edge.web.schemas import HARDWARE_TABLES

#: How long an OSDP reader's provisioning window stays open unless the request says.
PROVISION_WINDOW_S = 60


def _site_toml(call: Call) -> dict[str, Any]:
    return dict(getattr(call.site.config, "raw", None) or {})


@HANDLERS
async def get_hardware(call: Call) -> Any:
    # The live view plus the site.toml tables as written, which the setup editor edits.
    raw = _site_toml(call)
    config = {t: list(raw.get(t) or []) for t in HARDWARE_TABLES}
    return {**call.site.hardware(), "config": config}


@HANDLERS
async def put_hardware(call: Call) -> Any:
    # Only the hardware tables are replaced: an installer cannot rewrite [web] or [cloud].
    merged = {**_site_toml(call), **{t: call.body[t] for t in HARDWARE_TABLES if t in call.body}}
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
