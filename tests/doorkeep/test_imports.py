"""The import core (doorkeep.imports) over a hashed site document: files the tests build
themselves in the reference's column sets, every problem reported with its row and
column, nothing changed on a bad file, export -> import a no-op, no secret in a file."""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any

import pytest

from doorkeep import imports, policydoc
from doorkeep.credhash import credential_hmac
from tests.edge.web.sample import sample_policy
from tests.sheets import CARDS, RESIDENTS, STAFF, csv_file, read_xlsx, resident, xlsx

SECRET = b"k" * 32
DOORS = frozenset({"gate", "lobby", "plant"})


@pytest.fixture
def doc() -> dict[str, Any]:
    return policydoc.hash_document(sample_policy(), SECRET)


def plan(kind: str, data: bytes, doc: dict[str, Any]) -> imports.ImportResult:
    return imports.plan_import(kind, data, doc, secret=SECRET, doors=DOORS)


def problems(kind: str, data: bytes, doc: dict[str, Any]) -> set[tuple[str, str]]:
    with pytest.raises(imports.ImportRejected) as caught:
        plan(kind, data, doc)
    return {(i.entity, i.field) for i in caught.value.issues}


@pytest.mark.parametrize("build", [xlsx, csv_file], ids=["xlsx", "csv"])
def test_a_good_residents_file_adds_buildings_apartments_people_and_hashed_credentials(
    doc: dict[str, Any], build: Any
) -> None:
    rows = [resident(n) for n in range(6)] + [
        resident(
            6, **{"License Plate": "7ABC123;B-XY 99", "UHF Card": "E2801160", "Remark": "tenant"}
        )
    ]
    result = plan("residents", build(RESIDENTS, rows), doc)
    new = result.doc
    assert new is not None
    assert result.summary.people_added == 7
    assert result.summary.buildings_added == 1
    assert result.summary.apartments_added == 4
    tower = next(b for b in new["buildings"] if b.get("name") == "Tower A")
    default = next(g for g in new["groups"] if g.get("building_default") == tower["id"])
    first = next(p for p in new["people"] if p.get("first_name") == "First0")
    assert first["role"] == "master"
    assert first["name"] == "First0 Last0"
    assert first["email"] == "r0@example.org"
    assert first["floors"] == {tower["id"]: ["1", "2"]}
    assert first["groups"] == [default["id"]]
    assert next(p for p in new["people"] if p.get("first_name") == "First1")["role"] == "member"
    creds = [c for c in new["credentials"] if c["person"] == first["id"]]
    assert {c["kind"] for c in creds} == {"pin", "rf_card"}
    pin = next(c for c in creds if c["kind"] == "pin")
    assert pin["value_hmac"] == credential_hmac(SECRET, "pin", "1000000")
    assert "value" not in pin and "duress_hmac" in pin
    plates = [c for c in new["credentials"] if c["kind"] == "license_plate"]
    assert len(plates) == 2
    assert policydoc.validate_document(new, doors=DOORS, secret=SECRET) == []
    # no plaintext value anywhere in the new document
    text = policydoc.canonical_json(new).decode()
    assert "1000000" not in text and "500000" not in text and "7ABC123" not in text


def test_a_file_with_errors_on_many_rows_reports_every_row_and_column(doc: dict[str, Any]) -> None:
    rows = [
        resident(0),
        resident(1, Building="B" * 129),  # row 3
        resident(2, Apt="#2#123"),  # row 4: starts with #
        resident(3, Apt="2-12"),  # row 5: not digits/letters/#
        resident(4, **{"First Name": "x" * 65}),  # row 6
        resident(5, **{"Account Type": 3}),  # row 7
        resident(6, PIN="9123"),  # row 8: starts with 9
        resident(7, PIN="1"),  # row 9: too short
        resident(8, **{"RF Card": "not-a-card"}),  # row 10
        resident(9, **{"Access Group ID": "g-b1;g-nope"}),  # row 11
        resident(10, **{"RF Card": "500000"}),  # row 12: same card as row 2
        resident(11, PIN="4711"),  # row 13: Judy's PIN on the site
        resident(12, **{"License Plate": "A1;A2;A3;A4;A5;A6"}),  # row 14: 6 plates
        resident(13, UID="p-nobody"),  # row 15
        resident(14, Email="not-an-email"),  # row 16
        resident(15, **{"Accessible Floors": "129"}),  # row 17
        resident(16, **{"Last Name": "y" * 65}),  # row 18
    ]
    found = problems("residents", xlsx(RESIDENTS, rows), doc)
    assert found == {
        ("row 3", "Building"),
        ("row 4", "Apt"),
        ("row 5", "Apt"),
        ("row 6", "First Name"),
        ("row 7", "Account Type"),
        ("row 8", "PIN"),
        ("row 9", "PIN"),
        ("row 10", "RF Card"),
        ("row 11", "Access Group ID"),
        ("row 12", "RF Card"),
        ("row 13", "PIN"),
        ("row 14", "License Plate"),
        ("row 15", "UID"),
        ("row 16", "Email"),
        ("row 17", "Accessible Floors"),
        ("row 18", "Last Name"),
    }


def test_problem_messages_never_repeat_a_pin_or_card_nor_name_the_holder(
    doc: dict[str, Any],
) -> None:
    rows = [resident(0, PIN="4711", **{"RF Card": "00209CBF"})]
    with pytest.raises(imports.ImportRejected) as caught:
        plan("residents", csv_file(RESIDENTS, rows), doc)
    text = " ".join(str(i) for i in caught.value.issues)
    assert "taken" in text
    for secret_or_holder in ("4711", "00209CBF", "209CBF", "Judy", "p-judy", "Cathy", "c1", "c2"):
        assert secret_or_holder not in text


def test_duplicates_inside_the_file_are_reported_on_the_later_row(doc: dict[str, Any]) -> None:
    rows = [resident(0), resident(2, PIN="1000000"), resident(0, PIN="", **{"RF Card": ""})]
    assert problems("residents", csv_file(RESIDENTS, rows), doc) == {
        ("row 3", "PIN"),
        ("row 4", "First Name"),
    }


def test_two_masters_for_one_apartment_are_refused(doc: dict[str, Any]) -> None:
    rows = [resident(0), resident(1, **{"Account Type": 0})]
    assert ("row 3", "Account Type") in problems("residents", csv_file(RESIDENTS, rows), doc)


def test_a_new_row_for_an_existing_resident_asks_for_the_uid(doc: dict[str, Any]) -> None:
    row = {"Building": "Building 1", "Apt": "2#203", "Account Type": 1, "First Name": "Judy",
           "Last Name": "Z"}  # fmt: skip
    assert problems("residents", csv_file(RESIDENTS, [row]), doc) == {("row 2", "UID")}


def test_export_then_import_unchanged_is_a_no_op(doc: dict[str, Any]) -> None:
    first = plan("residents", xlsx(RESIDENTS, [resident(n) for n in range(8)]), doc)
    assert first.doc is not None
    for fmt in ("xlsx", "csv"):
        for kind in ("residents", "cards", "staff"):
            exported = imports.export_table(kind, first.doc, fmt)
            again = plan(kind, exported, first.doc)
            assert again.doc is None, (kind, fmt)
            assert again.summary.changes == 0


def test_export_masks_credentials_and_a_blank_or_masked_cell_keeps_them(
    doc: dict[str, Any],
) -> None:
    rows = read_xlsx(imports.export_table("residents", doc, "xlsx"))
    assert rows[0] == list(RESIDENTS)
    judy = dict(zip(RESIDENTS, rows[1], strict=True))
    assert judy["PIN"] == imports.MASK
    assert judy["UID"] == "p-judy"
    assert "4711" not in str(rows)
    # batch edit: change only the email; blank the PIN cell
    edit = {"UID": "p-judy", "Email": "judy@example.org"}
    result = plan("residents", csv_file(RESIDENTS, [edit]), doc)
    assert result.doc is not None
    assert result.summary.people_updated == 1
    assert result.summary.credentials_added == result.summary.credentials_removed == 0
    person = next(p for p in result.doc["people"] if p["id"] == "p-judy")
    assert person["email"] == "judy@example.org"
    assert person["name"] == "Judy Z"
    assert person["apartment"] == "B1-203" and person["groups"] == ["g-b1"]
    assert [c["id"] for c in result.doc["credentials"] if c["person"] == "p-judy"] == ["c1"]


def test_a_new_pin_in_a_batch_edit_replaces_the_old_one(doc: dict[str, Any]) -> None:
    result = plan("residents", csv_file(RESIDENTS, [{"UID": "p-judy", "PIN": "2468"}]), doc)
    assert result.doc is not None
    pins = [c for c in result.doc["credentials"] if c["person"] == "p-judy"]
    assert [c["value_hmac"] for c in pins] == [credential_hmac(SECRET, "pin", "2468")]
    assert result.summary.credentials_added == result.summary.credentials_removed == 1


def test_cards_template_sets_cards_and_pins_of_named_residents(doc: dict[str, Any]) -> None:
    rows = [{"Building": "Building 1", "Apt": "2#203", "User": "Judy Z", "RF Card": "12345;0x1F"}]
    result = plan("cards", xlsx(CARDS, rows), doc)
    assert result.doc is not None
    kinds = sorted(c["kind"] for c in result.doc["credentials"] if c["person"] == "p-judy")
    assert kinds == ["pin", "rf_card", "rf_card"]  # the blank PIN cell kept the PIN
    bad = [
        {"Building": "Building 9", "Apt": "1", "User": "x", "PIN": "12"},
        {"Building": "Building 1", "Apt": "1#101", "User": "Nobody"},
        {"Building": "Building 1", "Apt": "2#203", "User": "Judy Z", "RF Card": "00209CBF"},
    ]
    assert problems("cards", csv_file(CARDS, bad), doc) == {
        ("row 2", "Building"),
        ("row 3", "User"),
        ("row 4", "RF Card"),  # Cathy's card
    }


def test_staff_template_adds_staff_with_groups_and_cards(doc: dict[str, Any]) -> None:
    rows = [
        {"Staff Name": "Shirley", "RF Card": "24589", "Access Group ID": "g-staff;g-b1"},
        {"Staff Name": "Cathy", "Access Group ID": "g-b1"},
    ]
    result = plan("staff", xlsx(STAFF, rows), doc)
    assert result.doc is not None
    shirley = next(p for p in result.doc["people"] if p.get("name") == "Shirley")
    assert shirley["kind"] == "staff" and shirley["groups"] == ["g-staff", "g-b1"]
    cathy = next(p for p in result.doc["people"] if p["id"] == "p-cathy")
    assert cathy["groups"] == ["g-b1"]
    assert [c["id"] for c in result.doc["credentials"] if c["person"] == "p-cathy"] == ["c2"]
    assert problems(
        "staff", csv_file(STAFF, [{"Staff Name": "X", "Access Group ID": "g-9"}]), doc
    ) == {("row 2", "Access Group ID")}


def test_apartments_export_has_the_reference_columns(doc: dict[str, Any]) -> None:
    rows = read_xlsx(imports.export_table("apartments", doc, "xlsx"))
    assert rows[0] == ["Building", "Apartment", "APT Name", "Residents", "Devices",
                       "Enabled Access Methods"]  # fmt: skip
    assert rows[1:] == [
        ["Building 1", "1#101 (Floor 1)", "Apt 101", "0", "0", ""],
        ["Building 1", "2#203 (Floor 7)", "Apt 203", "1", "2", "PIN"],
    ]


def test_exports_neutralise_formulas_and_imports_read_them_back(doc: dict[str, Any]) -> None:
    edit = {"UID": "p-judy", "Remark": '=HYPERLINK("http://x")', "Accessible Floors": "-1;G1"}
    result = plan("residents", csv_file(RESIDENTS, [edit]), doc)
    assert result.doc is not None
    for fmt in ("csv", "xlsx"):
        data = imports.export_table("residents", result.doc, fmt)
        if fmt == "csv":
            rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        else:
            rows = read_xlsx(data)
        judy = dict(zip(RESIDENTS, rows[1], strict=False))
        assert judy["Accessible Floors"] == "'-1;G1"
        assert str(judy["Remark"]).startswith("'=")
        assert plan("residents", data, result.doc).doc is None


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
            "not an xlsx workbook nor UTF-8",
        ),
        (b"PK\x03\x04" + b"\x00" * 100, "not an xlsx workbook"),
        (b"", "empty"),
        (b"Name,Card\nx,1\n", "header row is not the residents template"),
        (b"a\x00b\n", "NUL"),
    ],
    ids=["png", "broken-zip", "empty", "wrong-header", "nul"],
)
def test_what_is_not_a_template_is_refused_with_what_to_change(
    doc: dict[str, Any], data: bytes, words: str
) -> None:
    with pytest.raises(imports.ImportRejected) as caught:
        plan("residents", data, doc)
    assert words in str(caught.value)


def test_a_zip_bomb_is_refused_before_it_is_inflated(doc: dict[str, Any]) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"\x00" * (200 * 1024 * 1024))
    with pytest.raises(imports.ImportRejected) as caught:
        plan("residents", out.getvalue(), doc)
    assert "inflates" in str(caught.value)


def test_templates_hold_exactly_the_reference_headers() -> None:
    for kind, columns in (("residents", RESIDENTS), ("cards", CARDS), ("staff", STAFF)):
        assert read_xlsx(imports.template(kind, "xlsx")) == [list(columns)]
        assert imports.template(kind, "csv").decode("utf-8-sig").strip() == ",".join(columns)


def test_xlsx_cells_read_as_a_spreadsheet_shows_them(doc: dict[str, Any]) -> None:
    """Rich text, numbers, booleans, gaps between rows and columns: the row numbers in a
    report are the sheet's own."""
    from openpyxl import Workbook
    from openpyxl.cell.rich_text import CellRichText, TextBlock
    from openpyxl.cell.text import InlineFont

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for index, name in enumerate(STAFF, start=1):
        sheet.cell(row=1, column=index, value=name)
    sheet.cell(row=2, column=1, value=CellRichText("Shir", TextBlock(InlineFont(b=True), "ley")))
    sheet.cell(row=2, column=2, value=24589)  # a number cell
    sheet.cell(row=6, column=1, value=True)  # row 6, after empty rows: a name "1"
    sheet.cell(row=6, column=2, value="9.5")  # not a card
    out = io.BytesIO()
    book.save(out)
    with pytest.raises(imports.ImportRejected) as caught:
        plan("staff", out.getvalue(), doc)
    assert [(i.entity, i.field) for i in caught.value.issues] == [("row 6", "RF Card")]
    sheet.delete_rows(6)
    out = io.BytesIO()
    book.save(out)
    result = plan("staff", out.getvalue(), doc)
    assert result.doc is not None
    shirley = next(p for p in result.doc["people"] if p.get("name") == "Shirley")
    card = next(c for c in result.doc["credentials"] if c["person"] == shirley["id"])
    assert card["value_hmac"] == credential_hmac(SECRET, "rf_card", "24589")
