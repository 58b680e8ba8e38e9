"""``doorkeep reader provision`` against a running ``doorkeep run`` with an OSDP line.

The daemon's control panel opens one end of a socat pty pair; a libosdp PeripheralDevice
in this process, in factory install mode, sits on the other. Before provisioning the
daemon refuses it (``/health`` names it, its card opens nothing); the CLI opens the
window through the daemon's REST API, the reader gets its key, and then its card opens
the door — with the window in the operation log.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from edge.config import write_site_toml
from tests.e2e.conftest import DOORKEEP, Daemon, login
from tests.edge.readers.osdp_pd import Reader, pty_pair

CARD = 0x209CBF  # the sample policy's staff card, lobby among its doors


@pytest.fixture
def osdp_site(tmp_path: Path, site_template: Path) -> Iterator[tuple[Daemon, Reader]]:
    with pty_pair(tmp_path) as (panel_end, reader_end):
        template = tmp_path / "template"
        shutil.copytree(site_template, template)
        cfg = tomllib.loads((template / "site.toml").read_text())
        cfg["bus"].append({"id": "osdp-1", "port": panel_end, "protocol": "osdp"})
        cfg["reader"].append(
            {"id": "lobby-osdp", "door": "lobby", "type": "osdp", "bus": "osdp-1", "address": 1}
        )
        write_site_toml(template / "site.toml", cfg)
        reader = Reader(reader_end)  # factory state: no key, install mode
        try:
            daemon = Daemon(tmp_path / "site", template)
            try:
                daemon.make_admin()
                yield daemon, reader
            finally:
                daemon.close()
        finally:
            reader.close()


def wait(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def reader_row(daemon: Daemon) -> dict[str, Any]:
    rows = daemon.api("GET", "/readers")["items"]
    return next(r for r in rows if r["id"] == "lobby-osdp")


def access(daemon: Daemon) -> list[dict[str, Any]]:
    items = daemon.api("GET", "/events?type=access")["items"]
    return [e for e in items if e["reader"] == "lobby-osdp"]


def test_provision_over_the_cli_then_a_card_opens_the_door(
    osdp_site: tuple[Daemon, Reader],
) -> None:
    daemon, reader = osdp_site
    wait(lambda: reader_row(daemon)["detail"].get("reason"))
    assert reader_row(daemon)["secure"] is False
    health = daemon.request("GET", "/health")
    assert "reader lobby-osdp" in health.get("degraded", [])
    reader.card(CARD)
    time.sleep(2)
    assert access(daemon) == []  # refused: no SCBK-D outside the window

    out = subprocess.run(
        [*DOORKEEP, "reader", "provision", "lobby-osdp", "--seconds", "30", "-c", daemon.config],
        capture_output=True,
        text=True,
        env=daemon.env,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "lobby-osdp: provisioned" in out.stdout
    key = (daemon.root / "data" / "keys" / "osdp" / "lobby-osdp.key").read_text().strip()
    assert reader.key is not None and reader.key.hex() == key
    assert key not in out.stdout + out.stderr
    wait(lambda: reader_row(daemon)["secure"] and reader_row(daemon)["online"])

    reader.card(CARD)
    granted = wait(lambda: access(daemon))
    assert granted[0]["result"] == "success" and granted[0]["door"] == "lobby"
    audit = json.dumps(daemon.api("GET", "/audit"))
    assert "reader.provision" in audit and "reader:lobby-osdp" in audit
    daemon.log.seek(0)
    assert key not in daemon.log.read()


def test_the_hardware_page_shows_the_reader_and_provisions_it(
    page: Page, osdp_site: tuple[Daemon, Reader]
) -> None:
    daemon, reader = osdp_site
    wait(lambda: reader_row(daemon)["detail"].get("reason"))
    login(page, daemon)
    page.get_by_role("link", name="Hardware").click()
    row = page.locator("#readers tr", has_text="lobby-osdp")
    expect(row).to_contain_text("not secure")
    expect(row).to_contain_text("refuses Secure Channel")
    row.get_by_role("button", name="Provision").click()
    expect(page.locator("#toast")).to_contain_text("provisioning window open")
    wait(lambda: reader_row(daemon)["secure"])
    page.reload()
    row = page.locator("#readers tr", has_text="lobby-osdp")
    expect(row).to_contain_text("Secure Channel")
    expect(row).to_contain_text("online")
    page.screenshot(path=str(daemon.root / "readers.png"), full_page=True)
    assert page.js_errors == []  # type: ignore[attr-defined]
    assert reader.key is not None
