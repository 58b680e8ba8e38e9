"""The installer UI in real headless Chromium against a TLS gateway.

Covers what an installer does on site: onboarding with the setup code, login, a relay
test, creating a person with a PIN and seeing that PIN open a door, watching door
state change live, and exporting logs. Saves the screenshots used in docs/web-ui.md.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ADMIN, Daemon, Gateway, login, shot

pytestmark = pytest.mark.browser


def test_onboarding_with_setup_code_creates_admin_and_kills_the_code(
    page: Page, daemon: Daemon
) -> None:
    gateway = daemon
    page.goto(gateway.url + "/")
    expect(page.get_by_role("heading", name="Set up this gateway")).to_be_visible()
    shot(page, "onboarding")

    page.get_by_label("Setup code").fill("AAAA-BBBB-CCCC-DDDD")
    page.get_by_label("Admin user name").fill(ADMIN[0])
    page.get_by_label("Password (12 characters or more)").fill(ADMIN[1])
    page.get_by_label("Repeat the password").fill(ADMIN[1])
    page.get_by_role("button", name="Create admin").click()
    expect(page.get_by_role("alert")).to_contain_text("setup code is wrong")

    page.get_by_label("Setup code").fill(gateway.setup_code.lower())  # case does not matter
    page.get_by_role("button", name="Create admin").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.locator("#who")).to_have_text("admin · admin")

    # The code is dead: onboarding is closed, the setup URL leads to the login page.
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.goto(gateway.url + "/#/setup")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    shot(page, "login")

    page.get_by_label("User name").fill(ADMIN[0])
    page.get_by_label("Password").fill("wrong password!!")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("wrong username or password")
    page.get_by_label("Password").fill(ADMIN[1])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    assert page.js_errors == []  # type: ignore[attr-defined]


def test_relay_test_pulses_the_chosen_relay(page: Page, daemon: Daemon) -> None:
    gateway = daemon
    gateway.make_admin()
    login(page, gateway)
    page.get_by_role("link", name="Hardware").click()
    board = page.locator("[data-board=relays-a]")
    board.get_by_label("Relay channel").select_option("3")
    board.get_by_role("button", name="Test relay").click()
    expect(page.locator("#toast")).to_contain_text("relay relays-a:3 pulsed")
    audit = gateway.api("GET", "/audit")["items"]
    test = next(a for a in audit if a["action"] == "relay.test")
    assert test["actor"] == "admin:admin"
    assert test["target"] == "board/relays-a:3"
    assert test["detail"] == {"ms": 500, "ok": True}
    # (Bus scan is covered by the API tests: all 247 addresses take ~20 s on a real bus.)
    expect(page.locator("[data-bus=sim-1]")).to_contain_text("online")
    shot(page, "hardware")


def test_new_person_with_pin_opens_a_door_and_the_door_changes_live(
    page: Page, daemon: Daemon
) -> None:
    gateway = daemon
    gateway.make_admin()
    login(page, gateway)

    page.get_by_role("link", name="People").click()
    page.get_by_role("button", name="New").click()
    form = page.locator("#entity-form")
    form.get_by_label("Id", exact=True).fill("p-max")
    form.get_by_label("Name", exact=True).fill("Max <img src=x>Mustermann")
    form.get_by_label("Kind", exact=True).select_option("staff")
    form.get_by_label("Access groups (comma separated)").fill("g-staff")
    page.get_by_role("button", name="Create").click()
    # Markup in a name stays text: the UI builds pages from text nodes only.
    expect(page.get_by_role("cell", name="Max <img src=x>Mustermann")).to_be_visible()
    assert page.locator("td img").count() == 0
    shot(page, "people")

    page.get_by_role("link", name="Credentials").click()
    page.get_by_role("button", name="New").click()
    form = page.locator("#entity-form")
    form.get_by_label("Id", exact=True).fill("c-max-pin")
    form.get_by_label("Person", exact=True).select_option("p-max")
    form.get_by_label("Kind", exact=True).select_option("pin")
    form.get_by_label("Value (PIN, card number, plate)").fill("2580")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("cell", name="c-max-pin")).to_be_visible()
    assert "2580" not in page.content()  # the PIN is write-only: never shown back
    shot(page, "credentials")

    page.get_by_role("link", name="Doors").click()
    gate = page.locator("[data-door=gate]")
    expect(gate.locator(".badge")).to_have_text("locked")
    present = page.locator("#present-form")
    present.get_by_label("Reader", exact=True).select_option("gate-in")
    present.get_by_label("Credential", exact=True).select_option("pin")
    present.get_by_label("Value", exact=True).fill("2580")
    present.get_by_role("button", name="Present").click()
    expect(page.locator("#present-result")).to_contain_text("granted")
    expect(page.locator("#present-result")).to_contain_text("p-max")
    # The state arrives over the live stream: unlocked now, locked again after the pulse.
    expect(gate.locator(".badge")).to_have_text("unlocked")
    expect(gate.locator(".badge")).to_have_text("locked", timeout=8000)

    # A change made elsewhere (another client, over the REST API) shows up without reload.
    lobby = page.locator("[data-door=lobby]")
    expect(lobby.locator(".badge")).to_have_text("locked")
    gateway.api("POST", "/doors/lobby/unlock", {"seconds": 30})
    expect(lobby.locator(".badge")).to_have_text("unlocked")
    shot(page, "doors")

    # A wrong PIN is refused with a reason.
    present.get_by_label("Value", exact=True).fill("1111")
    present.get_by_role("button", name="Present").click()
    expect(page.locator("#present-result")).to_contain_text("denied")
    assert page.js_errors == []  # type: ignore[attr-defined]


def test_logs_export_as_csv_and_xlsx(page: Page, daemon: Daemon, tmp_path: Path) -> None:
    gateway = daemon
    gateway.make_admin()
    gateway.api("POST", "/presentations", {"reader": "gate-in", "kind": "pin", "value": "4711"})
    gateway.api("POST", "/presentations", {"reader": "plant-in", "kind": "pin", "value": "4711"})
    login(page, gateway)
    page.get_by_role("link", name="Logs").click()
    expect(page.get_by_role("cell", name="no_access")).to_be_visible()
    shot(page, "logs")

    with page.expect_download() as info:
        page.locator("#export-csv").click()
    download = info.value
    assert download.suggested_filename.endswith(".csv")
    text = Path(download.path()).read_text(encoding="utf-8")
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r["Type"] == "access"]
    assert [r["Result"] for r in rows] == ["failed", "success"]
    assert rows[0]["Reason"] == "no_access"
    assert rows[1]["Person"] == "p-judy"
    assert "4711" not in text

    with page.expect_download() as info:
        page.locator("#export-xlsx").click()
    assert info.value.suggested_filename.endswith(".xlsx")
    info.value.save_as(tmp_path / "events.xlsx")
    sheet = load_workbook(tmp_path / "events.xlsx").active
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert values[0][:3] == ["Seq", "Time (Europe/Berlin)", "Type"]  # edge/exports.py headers
    assert [r[4] for r in values[1:] if r[2] == "access"] == ["failed", "success"]
    assert not any("4711" in str(v) for r in values for v in r)

    # An emergency unlock raises an alarm; resolving it records who did.
    gateway.api("POST", "/emergency", {"action": "unlock"})
    gateway.api("POST", "/emergency", {"action": "clear"})
    page.get_by_role("button", name="Alarms").click()
    page.get_by_role("button", name="Resolve").click()
    expect(page.locator("#toast")).to_contain_text("Alarm resolved")
    expect(page.get_by_role("cell", name="admin:admin")).to_be_visible()


def seed_today(daemon: Daemon, n: int = 40) -> None:
    """Presentations spread over today so far ('at' is allowed on simulation sites)."""
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    tries = [
        ("gate-in", "pin", "4711"),  # Judy: granted
        ("plant-in", "rf_card", "00209CBF"),  # Cathy's card: granted
        ("lobby-in", "pin", "4711"),  # granted
        ("plant-in", "pin", "4711"),  # Judy may not enter the plant room
        ("gate-in", "pin", "5555"),  # unknown PIN
    ]
    for i in range(n):
        at = midnight + (now - midnight) * (i + 0.5) / (n + 1)
        reader, kind, value = tries[(i * 7 + i // 3) % len(tries)]
        daemon.api("POST", "/presentations", {
            "reader": reader, "kind": kind, "value": value, "at": at.isoformat()})  # fmt: skip


def test_dashboard_settings_and_phone_layout(page: Page, daemon: Daemon) -> None:
    gateway = daemon
    gateway.make_admin()
    seed_today(daemon)
    login(page, gateway)
    expect(page.locator(".chart svg")).to_have_attribute(
        "aria-label", re.compile(r"Today: [1-9][0-9]* granted, [1-9][0-9]* denied")
    )
    shot(page, "dashboard")
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Lockout after failures").fill("7")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#toast")).to_contain_text("Policy saved")
    assert gateway.api("GET", "/policy")["settings"]["lockout"]["failures"] == 7
    shot(page, "settings")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(gateway.url + "/#/doors")
    expect(page.get_by_role("heading", name="Doors")).to_be_visible()
    expect(page.locator("#nav")).to_be_hidden()  # the menu folds away on a phone
    page.get_by_role("button", name="Menu").click()
    expect(page.get_by_role("link", name="Hardware")).to_be_visible()
    page.get_by_role("button", name="Menu").click()
    shot(page, "phone-doors")


def test_cloud_owned_site_shows_entities_read_only(page: Page, gateway: Gateway) -> None:
    gateway.make_admin()
    gateway.site.policy.owner = "cloud"
    login(page, gateway)
    page.get_by_role("link", name="People").click()
    expect(page.locator("#cloud-banner")).to_be_visible()
    expect(page.get_by_role("button", name="New")).to_have_count(0)


def test_present_a_card_now_enrols_the_card_without_showing_its_number(
    page: Page, daemon: Daemon
) -> None:
    daemon.make_admin()
    login(page, daemon)
    page.get_by_role("link", name="Credentials").click()
    page.get_by_role("button", name="New").click()
    form = page.locator("#entity-form")
    form.get_by_label("Id", exact=True).fill("c-cathy-card")
    form.get_by_label("Person", exact=True).select_option("p-cathy")
    form.get_by_label("Reader", exact=True).select_option("gate-in")
    page.get_by_role("button", name="Present a card now").click()
    note = page.locator("#capture-note")
    expect(note).to_contain_text("Present the card at gate-in")
    card = {"reader": "gate-in", "kind": "rf_card", "value": "00A1B2C3"}
    # The card is held to the (simulated) reader until the UI has it.
    for _ in range(50):
        assert daemon.api("POST", "/presentations", card)["granted"] is False
        if "Card read" in (note.text_content() or ""):
            break
        page.wait_for_timeout(100)
    expect(note).to_contain_text("Card read (****)")
    shot(page, "enrol-card")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("cell", name="c-cathy-card")).to_be_visible()
    assert "A1B2C3" not in page.content().upper()
    out = daemon.api("POST", "/presentations", card)
    assert out["granted"] is True
    assert out["person"] == "p-cathy"
    assert "A1B2C3" not in daemon.logs().upper()
