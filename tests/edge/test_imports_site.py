"""Imports on a real site (SQLite store, the real apply path): a good file is one policy
change and one audit row; a bad file or a failure half-way through the write leaves the
site exactly as it was; export -> import changes nothing; the CLI as the docs show it."""

from __future__ import annotations

import copy
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from doorkeep import imports
from doorkeep.errors import StorageError
from edge.cli import main
from edge.service import Site
from tests.edge.sites import open_site
from tests.edge.web import sample
from tests.sheets import RESIDENTS, csv_file, read_xlsx, resident, xlsx


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with open_site(tmp_path / "site", sample.SITE_TOML, sample.POLICY) as running:
        yield running


def b1(n: int, **cells: object) -> dict[str, object]:
    """A resident of Building 1, whose default group opens the gate and the lobby."""
    return resident(n, Building="Building 1", **cells)


async def imports_in_audit(site: Site) -> list[dict[str, Any]]:
    rows, _ = await site.store.query_audit(limit=100)
    return [r for r in rows if r["action"].startswith("import.")]


def stored_entities(site: Site) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(site.store.path)
    try:
        return conn.execute(
            "SELECT kind, key, body FROM policy_entity ORDER BY kind, key"
        ).fetchall()
    finally:
        conn.close()


async def test_a_good_file_is_one_policy_change_with_one_audit_row(site: Site) -> None:
    version = site.snapshot.version
    assert site.dry_run("gate-in", "pin", "1000000").granted is False
    outcome = await site.imports.run(
        "residents", xlsx(RESIDENTS, [b1(n) for n in range(10)]), actor="alice"
    )
    assert outcome["version"] == version + 1 == site.snapshot.version
    assert outcome["people_added"] == 10
    # the new resident's PIN and card open the gate (Building 1's default group)
    assert site.dry_run("gate-in", "pin", "1000000").granted is True
    assert site.dry_run("gate-in", "rf_card", "500003").granted is True
    audit = await imports_in_audit(site)
    assert len(audit) == 1
    assert audit[0]["actor"] == "alice"
    assert audit[0]["detail"]["summary"].startswith("import residents: 10 rows, 10 people")
    assert "1000000" not in str(audit) and "500003" not in str(audit)


async def test_a_dry_run_reports_and_changes_nothing(site: Site) -> None:
    before, version = site.policy.document(), site.snapshot.version
    outcome = await site.imports.run(
        "residents", csv_file(RESIDENTS, [b1(0)]), actor="a", dry_run=True
    )
    assert outcome["dry_run"] is True and outcome["people_added"] == 1
    assert site.policy.document() == before and site.snapshot.version == version
    assert await imports_in_audit(site) == []


async def test_a_file_with_errors_changes_nothing(site: Site) -> None:
    before, stored = site.policy.document(), stored_entities(site)
    rows = [b1(n) for n in range(20)] + [b1(20, PIN="9"), b1(21, Apt="#1")]
    with pytest.raises(imports.ImportRejected) as caught:
        await site.imports.run("residents", xlsx(RESIDENTS, rows), actor="a")
    assert {(i.entity, i.field) for i in caught.value.issues} == {
        ("row 22", "PIN"),
        ("row 23", "Apt"),
    }
    assert site.policy.document() == before
    assert stored_entities(site) == stored
    assert await imports_in_audit(site) == []


async def test_a_failure_half_way_through_the_write_leaves_the_site_as_it_was(
    site: Site,
) -> None:
    before, stored, version = site.policy.document(), stored_entities(site), site.snapshot.version
    audit_before, _ = await site.store.query_audit(limit=1000)
    # The disk "fails" once 50 of the 200 new people are written, inside the transaction.
    conn = sqlite3.connect(site.store.path)
    conn.execute(
        "CREATE TRIGGER fail_half_way BEFORE INSERT ON policy_entity "
        "WHEN NEW.kind = 'people' AND "
        "(SELECT count(*) FROM policy_entity WHERE kind = 'people') >= 52 "
        "BEGIN SELECT RAISE(ABORT, 'injected disk failure'); END"
    )
    conn.commit()
    conn.close()
    with pytest.raises(StorageError):
        await site.imports.run("residents", xlsx(RESIDENTS, [b1(n) for n in range(200)]), actor="a")
    assert stored_entities(site) == stored
    assert site.policy.document() == before
    assert site.snapshot.version == version == site.policy.header()[0]
    assert site.dry_run("gate-in", "pin", "1000000").granted is False
    audit_after, _ = await site.store.query_audit(limit=1000)
    assert [r for r in audit_after if r["action"] == "import.residents"] == []
    assert len(audit_after) == len(audit_before)


async def test_export_then_import_is_a_no_op_saying_0_changes(site: Site) -> None:
    await site.imports.run("residents", xlsx(RESIDENTS, [b1(n) for n in range(6)]), actor="a")
    version, doc = site.snapshot.version, copy.deepcopy(site.policy.document())
    for kind in ("residents", "cards", "staff"):
        exported = await site.imports.export(kind, "xlsx")
        outcome = await site.imports.run(kind, exported, actor="a")
        assert outcome["version"] is None and outcome["changes"] == 0
    assert site.snapshot.version == version and site.policy.document() == doc
    audit = await imports_in_audit(site)
    assert [a["detail"]["changes"] for a in audit] == [0, 0, 0, 6 + 12 + 3]


async def test_a_batch_edit_changes_only_the_edited_cells(site: Site) -> None:
    await site.imports.run("residents", xlsx(RESIDENTS, [b1(n) for n in range(4)]), actor="a")
    rows = read_xlsx(await site.imports.export("residents", "xlsx"))
    header, body = rows[0], [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    first = next(r for r in body if r["First Name"] == "First2")
    first["Last Name"] = "Married"
    first["PIN"] = "2468"
    outcome = await site.imports.run("residents", xlsx(header, body), actor="a")
    assert outcome["people_updated"] == 1
    assert outcome["credentials_added"] == outcome["credentials_removed"] == 1
    person = site.get_entity("people", first["UID"])
    assert person["name"] == "First2 Married"
    assert site.dry_run("gate-in", "pin", "2468").person == first["UID"]
    assert site.dry_run("gate-in", "pin", "1000002").granted is False
    assert site.dry_run("gate-in", "rf_card", "500002").granted is True  # kept


# --- the command line, as docs/import-export.md shows it ------------------------------


@pytest.fixture
def cli_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Path:
    assert main(["init", str(tmp_path / "s"), "--simulation"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("DOORKEEP_CONFIG", str(tmp_path / "s" / "site.toml"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_documented_cli_round_trip(cli_site: Path, capsys: Any) -> None:
    assert main(["template", "residents", "-o", "residents.xlsx"]) == 0
    assert read_xlsx((cli_site / "residents.xlsx").read_bytes()) == [list(RESIDENTS)]
    (cli_site / "residents.csv").write_bytes(csv_file(RESIDENTS, [resident(n) for n in range(600)]))
    capsys.readouterr()
    assert main(["import", "residents", "residents.csv", "--dry-run"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("dry run, nothing changed: import residents: 600 rows, 600 people")
    assert "checking 600 rows" in out.err  # the progress (one line per stage off a terminal)
    assert main(["import", "residents", "residents.csv"]) == 0
    assert "policy version 1" in capsys.readouterr().out
    assert main(["export", "residents", "-o", "export.xlsx"]) == 0
    assert main(["import", "residents", "export.xlsx"]) == 0
    assert "0 changes; policy unchanged" in capsys.readouterr().out
    assert main(["export", "apartments", "-o", "apartments.csv"]) == 0
    text = (cli_site / "apartments.csv").read_text(encoding="utf-8-sig")
    assert (
        text.splitlines()[0]
        == "Building,Apartment,APT Name,Residents,Devices,Enabled Access Methods"
    )
    assert len(text.splitlines()) == 301


def test_the_cli_exits_1_listing_every_bad_row_and_column(cli_site: Path, capsys: Any) -> None:
    rows = [resident(0), resident(1, PIN="9999"), resident(2, Apt="#5", **{"Account Type": 7})]
    (cli_site / "bad.xlsx").write_bytes(xlsx(RESIDENTS, rows))
    capsys.readouterr()
    assert main(["import", "residents", "bad.xlsx"]) == 1
    err = capsys.readouterr().err
    assert "3 problem(s); nothing was changed" in err
    assert "row 3: PIN:" in err and "row 4: Apt:" in err and "row 4: Account Type:" in err
    assert "9999" not in err
    assert main(["export", "residents", "-o", "-"]) == 0
    assert capsys.readouterr().out.count("\n") == 1  # the header only: nothing was added
