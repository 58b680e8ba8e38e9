"""Spreadsheet files that tests build themselves (openpyxl, csv), in the reference's
column sets, independent of doorkeep's own writer."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence

import openpyxl

RESIDENTS = (
    "Building", "Accessible Floors", "Apt", "Apt Name", "Account Type", "First Name",
    "Last Name", "Email", "MobileNumber", "TelephoneCallingCode", "1stPhone", "2ndPhone",
    "3rdPhone", "RF Card", "PIN", "License Plate", "UHF Card", "Access Group ID", "Remark",
    "UID",
)  # fmt: skip
CARDS = ("Building", "Apt", "User", "RF Card", "PIN")
STAFF = ("Staff Name", "RF Card", "Access Group ID")


def xlsx(columns: Sequence[str], rows: Sequence[Mapping[str, object]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(list(columns))
    for row in rows:
        sheet.append([row.get(c) for c in columns])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_file(
    columns: Sequence[str], rows: Sequence[Mapping[str, object]], *, bom: bool = True
) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return (("\ufeff" if bom else "") + out.getvalue()).encode()


def read_xlsx(data: bytes) -> list[list[str]]:
    book = openpyxl.load_workbook(io.BytesIO(data))
    sheet = book.active
    assert sheet is not None
    return [["" if v is None else str(v) for v in r] for r in sheet.iter_rows(values_only=True)]


def resident(n: int, **cells: object) -> dict[str, object]:
    """A good new-resident row: apartment 100+n//2 of Tower A, master on even n."""
    row: dict[str, object] = {
        "Building": "Tower A",
        "Accessible Floors": "1;2",
        "Apt": f"{100 + n // 2}",
        "Apt Name": f"Apartment {100 + n // 2}",
        "Account Type": 0 if n % 2 == 0 else 1,
        "First Name": f"First{n}",
        "Last Name": f"Last{n}",
        "Email": f"r{n}@example.org",
        "RF Card": f"{500000 + n}",
        "PIN": f"{1000000 + n}",
    }
    row.update(cells)
    return row
