"""The dashboard's parking card in real headless Chromium: an LPR camera posts a plate to
its http reader, the card's occupancy and vehicle list follow live, and a full lot says so.
"""

from __future__ import annotations

import copy
import json
import urllib.request
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Gateway, login, shot
from tests.edge.web import sample

pytestmark = pytest.mark.browser


@pytest.fixture
def with_garage(monkeypatch: pytest.MonkeyPatch) -> None:
    """The web tests' site plus a garage door, its LPR camera and a car park of 2."""
    toml = sample.SITE_TOML + (
        f'\n[[door]]\nid = "garage"\nname = "Garage"\nrelay = "{sample.BOARD}:4"\n'
        'pulse_ms = 200\nmethods = ["license_plate", "uhf_card"]\n'
        '\n[[reader]]\nid = "garage-lpr"\ndoor = "garage"\ntype = "http"\n'
        '\n[[reader]]\nid = "garage-exit"\ndoor = "garage"\ntype = "http"\ndirection = "out"\n'
        '\n[[parking]]\nid = "garage"\nname = "Garage B1"\ncapacity = 2\n'
        'entry = ["garage-lpr"]\nexit = ["garage-exit"]\n'
    )
    policy = copy.deepcopy(sample.POLICY)
    policy["credentials"] += [
        {"id": "c-judy-car", "person": "p-judy", "kind": "license_plate", "value": "B-JZ 203"},
        {"id": "c-cathy-car", "person": "p-cathy", "kind": "license_plate", "value": "B-CW 1"},
    ]
    for group in policy["groups"]:
        group["doors"].append("garage")
    monkeypatch.setattr(sample, "SITE_TOML", toml)
    monkeypatch.setattr(sample, "POLICY", policy)


def camera(gateway: Gateway, reader: str, token: str, plate: str) -> dict[str, Any]:
    """What an LPR camera does: POST its read with its own reader token."""
    req = urllib.request.Request(
        f"{gateway.url}/api/v1/readers/{reader}/input",
        method="POST",
        data=json.dumps({"kind": "license_plate", "value": plate}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, context=gateway._client_ssl, timeout=10) as resp:
        return json.loads(resp.read())


def test_the_parking_card_follows_the_cameras_reads(
    with_garage: None, page: Page, gateway: Gateway
) -> None:
    gateway.make_admin()
    tokens = {r: gateway.auth.readers.create(r) for r in ("garage-lpr", "garage-exit")}
    login(page, gateway)
    card = page.locator("#parking")
    expect(card).to_contain_text("Garage B1")
    expect(card).to_contain_text("0 / 2")
    assert camera(gateway, "garage-lpr", tokens["garage-lpr"], "bjz203")["granted"] is True
    # the live feed refreshes the card: no reload
    expect(card).to_contain_text("1 / 2", timeout=10_000)
    expect(card).to_contain_text("p-judy")
    camera(gateway, "garage-lpr", tokens["garage-lpr"], "B CW 1")
    expect(card).to_contain_text("2 / 2 full", timeout=10_000)
    expect(card.locator("meter")).to_have_attribute("value", "2")
    shot(page, "parking")
    camera(gateway, "garage-exit", tokens["garage-exit"], "B-JZ-203")
    expect(card).to_contain_text("1 / 2", timeout=10_000)
    expect(card).not_to_contain_text("p-judy")
    assert page.js_errors == []  # type: ignore[attr-defined]


def test_no_parking_card_on_a_site_without_lots(page: Page, gateway: Gateway) -> None:
    gateway.make_admin()
    login(page, gateway)
    expect(page.locator("#parking")).to_be_hidden()
    assert page.js_errors == []  # type: ignore[attr-defined]
