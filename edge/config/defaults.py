"""The site.toml a new site starts with (``doorkeep init``)."""

from __future__ import annotations

from typing import Any

from edge.config.sections import SIM_PORT


def default_site_dict(site_id: str, timezone: str, simulation: bool) -> dict[str, Any]:
    """The site.toml ``doorkeep init`` writes, as a dict for :func:`write_site_toml`.

    A real site listens on the LAN with TLS (the installer's laptop is another machine)
    and starts with no hardware: the installer adds it in the UI. A simulated site
    listens on localhost without TLS and gets one simulated bus, board, door and reader,
    so it can open a door straight away.
    """
    cfg: dict[str, Any] = {
        "site": {
            "id": site_id,
            "name": site_id,
            "timezone": timezone,
            "data_dir": "data",
            "simulation": simulation,
        },
        "web": {"listen": "127.0.0.1:8080", "tls": False}
        if simulation
        else {"listen": "0.0.0.0:8443", "tls": True},
    }
    if simulation:
        cfg["bus"] = [{"id": "sim-1", "port": SIM_PORT, "baudrate": 9600}]
        cfg["board"] = [
            {"id": "relays-a", "type": "waveshare-rtu-relay-8d", "bus": "sim-1", "address": 1}
        ]
        cfg["door"] = [
            {
                "id": "gate",
                "name": "Main gate",
                "relay": "relays-a:1",
                "contact": "relays-a:in1",
                "exit_button": "relays-a:in2",
                "pulse_ms": 3000,
                "held_open_s": 60,
                "methods": ["pin", "rf_card", "qr", "remote", "temp_key"],
                "fail_mode": "secure",
            }
        ]
        cfg["reader"] = [{"id": "gate-in", "door": "gate", "type": "sim", "direction": "in"}]
    return cfg
