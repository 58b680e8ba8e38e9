"""The UI for a real community, in headless Chromium against the real daemon: search and
pages at 20,000 people, the person page, the live log, times in the site's zone,
confirmations, revocation, no overflow at 1366 px or on a phone, and a viewer who sees
no editable field anywhere.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ADMIN, Daemon, login, shot
from tests.edge.web.sample import sample_policy

pytestmark = pytest.mark.browser

VIEWER = ("vera", "viewer password 1234")
PAGES = [
    "dashboard", "doors", "hardware", "people", "apartments", "buildings", "credentials",
    "groups", "temp-keys", "reservations", "logs", "settings", "people/p-judy",
]  # fmt: skip

# Every control that could change something: a field outside a search/filter bar.
EDITABLE = """() => [...document.querySelectorAll('main input, main select, main textarea')]
  .filter((el) => !el.disabled && !el.readOnly && !el.closest('[role=search]'))
  .map((el) => el.name || el.getAttribute('aria-label') || el.id || el.outerHTML.slice(0, 80))"""


def login_as(page: Page, daemon: Daemon, user: tuple[str, str]) -> None:
    page.goto(daemon.url + "/")
    page.get_by_label("User name").fill(user[0])
    page.get_by_label("Password").fill(user[1])
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Dashboard").wait_for()


def visit(page: Page, daemon: Daemon, hash_: str) -> None:
    page.goto(f"{daemon.url}/#/{hash_}")
    expect(page.locator("main h1")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("Loading…")
    expect(page.locator("main")).not_to_contain_text("Could not load")


def test_a_viewer_sees_no_editable_field_anywhere(page: Page, daemon: Daemon) -> None:
    daemon.make_admin()
    daemon.api("POST", "/users", {"username": VIEWER[0], "password": VIEWER[1], "role": "viewer"})
    login_as(page, daemon, VIEWER)
    found: dict[str, Any] = {}
    for hash_ in PAGES:
        visit(page, daemon, hash_)
        rows = page.locator("main tr.clickable")
        if rows.count() and hash_ != "people":  # an entity's editor, opened from its row
            rows.first.click()
            page.locator("#entity-form").wait_for()
        editable = page.evaluate(EDITABLE)
        if editable:
            found[hash_] = editable
    assert found == {}
    # nor a button that changes something: no New, Edit, Delete, Save, Unlock, Test relay
    for hash_ in ("people", "people/p-judy", "doors", "hardware", "credentials"):
        visit(page, daemon, hash_)
        for name in ("New", "Edit", "Delete", "Save", "Unlock 5 s", "Test relay", "Scan bus"):
            expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    assert page.js_errors == []  # type: ignore[attr-defined]
