"""Editing site.toml from the UI keeps the installer's comments (tomlkit) and a backup."""

from __future__ import annotations

import tomllib
from pathlib import Path

from edge.config import write_site_toml

ORIGINAL = """\
# Tower A gateway: wired by M. Keller, 2026-11 (panel in the basement)
[site]
id = "tower-a"
timezone = "Europe/Berlin"
simulation = true  # until the boards arrive

[web]
listen = "127.0.0.1:8080"

[[bus]]
id = "rs485-1"
port = "sim"

[[board]]
id = "relays-a"
type = "waveshare-rtu-relay-8"
bus = "rs485-1"
address = 1

# The main gate: strike on NO, contact on in1
[[door]]
id = "gate"
relay = "relays-a:1"  # channel 1 = the gate
pulse_ms = 3000
methods = ["pin", "rf_card"]

[[door]]
id = "lobby"
relay = "relays-a:2"
pulse_ms = 3000
methods = ["pin"]
"""


def test_a_ui_edit_keeps_comments_changes_values_and_keeps_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(ORIGINAL)
    cfg = tomllib.loads(ORIGINAL)
    cfg["door"][0]["pulse_ms"] = 5000  # the gate changed
    del cfg["door"][1]  # the lobby removed
    cfg["door"].append(
        {"id": "garage", "relay": "relays-a:3", "pulse_ms": 2000, "methods": ["license_plate"]}
    )
    write_site_toml(path, cfg)
    text = path.read_text()
    for comment in (
        "# Tower A gateway: wired by M. Keller",
        "# until the boards arrive",
        "# channel 1 = the gate",
    ):
        assert comment in text
    written = tomllib.loads(text)
    assert [d["id"] for d in written["door"]] == ["gate", "garage"]
    assert written["door"][0]["pulse_ms"] == 5000
    assert (tmp_path / "site.toml.bak").read_text() == ORIGINAL
