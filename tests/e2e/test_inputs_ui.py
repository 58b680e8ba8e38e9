"""Site inputs in the installer UI, in real headless Chromium: the doors page shows an
emergency an input started (and that it is latched), the hardware page lists the inputs.

The gateway runs the site in-process, so the test sets the simulated board's input the
way a fire panel's relay would.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Gateway, login
from tests.edge.web import sample

pytestmark = pytest.mark.browser

FIRE_INPUT = 4


@pytest.fixture
def with_fire_panel(monkeypatch: pytest.MonkeyPatch) -> None:
    """The web tests' site with an input board and a fire panel on its input 4."""
    toml = sample.SITE_TOML.replace(
        'type = "waveshare-rtu-relay-8"', 'type = "waveshare-rtu-relay-8d"'
    )
    toml += (
        f'\n[[input]]\nid = "fire-panel"\ninput = "{sample.BOARD}:in{FIRE_INPUT}"\n'
        'function = "emergency"\n'
    )
    monkeypatch.setattr(sample, "SITE_TOML", toml)


def _fire(gateway: Gateway, on: bool) -> None:
    def set_input() -> Any:
        board = gateway.site.hw.sims[sample.BUS].board(sample.BOARD_ADDRESS)
        board.set_input(FIRE_INPUT, on)

    gateway.call(set_input)


def test_doors_page_shows_the_emergency_an_input_started_until_it_is_cleared(
    with_fire_panel: None, page: Page, gateway: Gateway
) -> None:
    gateway.make_admin()
    login(page, gateway)
    page.get_by_role("link", name="Hardware").click()
    inputs = page.locator("#site-inputs")
    expect(inputs).to_contain_text("fire-panel")
    expect(inputs).to_contain_text(f"{sample.BOARD}:in{FIRE_INPUT}")
    expect(inputs).to_contain_text("emergency")

    page.get_by_role("link", name="Doors").click()
    state = page.locator("#emergency-state")
    expect(state).to_contain_text("normal")
    _fire(gateway, True)
    # the live feed refreshes the panel: no reload
    expect(state).to_contain_text("emergency unlock: gate, lobby", timeout=10_000)
    expect(state).to_contain_text("until cleared")
    expect(page.locator("[data-door=gate] .badge").first).to_have_text("emergency")
    _fire(gateway, False)
    page.reload()
    expect(page.locator("#emergency-state")).to_contain_text("until cleared")
    page.get_by_role("button", name="Clear").click()
    expect(page.locator("#toast")).to_contain_text("Back to normal")
    page.reload()
    expect(page.locator("#emergency-state")).to_contain_text("normal")
    assert page.js_errors == []  # type: ignore[attr-defined]
