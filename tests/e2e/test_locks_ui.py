"""The third-party locks page in headless Chromium: what a lock family cannot take."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Gateway, login, shot

pytestmark = pytest.mark.browser


def test_the_locks_page_lists_what_cannot_be_synced_without_values(
    page: Page, gateway: Gateway
) -> None:
    gateway.make_admin()
    doc = gateway.api("GET", "/policy")
    doc["settings"]["lock_families"] = {"lobby": "dormakaba"}
    gateway.api("PUT", "/policy", doc)
    login(page, gateway)
    page.get_by_role("link", name="Third-party locks").click()
    expect(page.get_by_role("heading", name="Third-party locks")).to_be_visible()
    expect(page.locator("#lock-summary")).to_have_text("2 checked, 2 cannot be synced")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("tbody")).to_contain_text("a Dormakaba PIN must be exactly 6 digits")
    expect(page.locator("tbody")).to_contain_text("Judy Z")
    body = page.locator("body").inner_text()
    assert "4711" not in body and "00209CBF" not in body
    shot(page, "locks")
    page.get_by_label("Lock family").select_option("itec")
    expect(page.locator("#lock-summary")).to_have_text("0 checked, 0 cannot be synced")
    assert not page.js_errors  # type: ignore[attr-defined]
