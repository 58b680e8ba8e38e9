"""The Import page in headless Chromium: download a template, a refused file's problems
as a table of rows and columns (nothing changed), then a large good file imported with
the progress bar following the server. Saves docs/screenshots/import.png."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Gateway, login, shot
from tests.sheets import RESIDENTS, read_xlsx, resident, xlsx

pytestmark = pytest.mark.browser

# Collects every text the progress line shows, so the test sees the bar move.
WATCH_STAGES = """() => {
  window.stages = [];
  const el = document.getElementById('import-stage');
  new MutationObserver(() => {
    const bar = document.getElementById('import-progress');
    window.stages.push([el.textContent, bar.value]);
  }).observe(el, {childList: true, characterData: true, subtree: true});
}"""


def b1(n: int, **cells: object) -> dict[str, object]:
    return resident(n, Building="Building 1", **cells)


def test_import_page_reports_every_problem_then_imports_with_progress(
    page: Page, gateway: Gateway, tmp_path: Path
) -> None:
    gateway.make_admin()
    login(page, gateway)
    page.get_by_role("link", name="Import").click()
    expect(page.get_by_role("heading", name="Import")).to_be_visible()

    with page.expect_download() as download:
        page.get_by_role("button", name="Download template").click()
    assert read_xlsx(Path(download.value.path()).read_bytes()) == [list(RESIDENTS)]

    bad = tmp_path / "residents-bad.xlsx"
    rows = [b1(0), b1(1, PIN="9123"), b1(2, Apt="#2#123"), b1(3, **{"Access Group ID": "g-x"})]
    bad.write_bytes(xlsx(RESIDENTS, rows))
    page.get_by_label("File").set_input_files(str(bad))
    page.get_by_label("Dry run (check only)").uncheck()
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#import-error")).to_contain_text("3 problem(s); nothing was changed")
    issues = page.locator("#import-issues tbody tr")
    expect(issues).to_have_count(3)
    expect(issues.nth(0)).to_contain_text("row 3")
    expect(issues.nth(0)).to_contain_text("PIN")
    expect(issues.nth(1)).to_contain_text("Apt")
    expect(issues.nth(2)).to_contain_text("Access Group ID")
    assert "9123" not in page.content()
    assert gateway.api("GET", "/health")["policy_version"] == 1
    shot(page, "import")

    good = tmp_path / "residents.xlsx"
    good.write_bytes(xlsx(RESIDENTS, [b1(n) for n in range(4000)]))
    page.get_by_label("File").set_input_files(str(good))
    page.evaluate(WATCH_STAGES)
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#import-summary")).to_contain_text(
        "import residents: 4000 rows, 4000 people", timeout=60_000
    )
    stages = page.evaluate("window.stages")
    # The bar follows the server through its stages, from below 100 to 100 (how many
    # intermediate values a poll catches depends on the machine's speed).
    labels = [text for text, _ in stages]
    assert stages[0][1] < 100 and stages[-1] == ["Imported.", 100], stages
    assert any(t.startswith(("Checking", "Applying")) for t in labels), stages
    assert page.locator("#import-progress").get_attribute("value") == "100"
    assert gateway.api("GET", "/health")["policy_version"] == 2
    assert page.js_errors == []  # type: ignore[attr-defined]
