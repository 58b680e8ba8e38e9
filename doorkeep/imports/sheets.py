"""Spreadsheets in and out: xlsx (openpyxl) and csv (UTF-8, a BOM tolerated).

Reading refuses, with a message that says what to change, what is not a spreadsheet:
bytes that are neither an xlsx workbook nor UTF-8 text, a zip that inflates past
``MAX_INFLATED`` (a zip bomb), more than ``MAX_ROWS`` rows, a header row that is not the
template's. Writing neutralises formulas: a text cell that starts with ``= + - @`` (or a
tab or carriage return) is written with a leading ``'`` so no spreadsheet program runs it;
reading strips that ``'`` again, so an export re-imports unchanged.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from xml.etree import ElementTree as ET

from doorkeep.errors import PolicyError, PolicyIssue
from doorkeep.imports import xlsx

MAX_ROWS = 50_000
MAX_COLUMNS = 64
MAX_CELL = 1024
MAX_INFLATED = 128 * 1024 * 1024
FORMATS = ("csv", "xlsx")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class Row:
    """One data row: its number in the sheet (the header is row 1) and its cells."""

    number: int
    cells: dict[str, str]


class ImportRejected(PolicyError):
    """The file has problems: ``issues`` names every row (``row 7``) and column."""


def _refuse(message: str) -> ImportRejected:
    return ImportRejected(message, [PolicyIssue("file", "-", message)])


def neutralise(text: str) -> str:
    """``text`` safe for a spreadsheet cell: a leading formula character gets a ``'``."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def unneutralise(text: str) -> str:
    """The inverse of :func:`neutralise` for what it wrote."""
    if len(text) > 1 and text[0] == "'" and text[1:].startswith(_FORMULA_START):
        return text[1:]
    return text


def format_of(name: str | None, default: str = "xlsx") -> str:
    """``csv`` or ``xlsx`` from a file name's suffix (``default`` when there is none)."""
    if name and name.lower().endswith(".csv"):
        return "csv"
    if name and name.lower().endswith(".xlsx"):
        return "xlsx"
    return default


# --- reading -------------------------------------------------------------------------------


def _xlsx_rows(data: bytes) -> Iterator[tuple[int, list[str]]]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        inflated = 0  # the reader says what is wrong below
    if inflated > MAX_INFLATED:
        raise _refuse(
            f"the workbook inflates to {inflated // 2**20} MB; at most "
            f"{MAX_INFLATED // 2**20} MB (split the file)"
        )
    try:
        yield from xlsx.rows(data, MAX_COLUMNS + 1)
    except (zipfile.BadZipFile, KeyError, ValueError, IndexError, ET.ParseError, OSError) as err:
        raise _refuse(
            f"not an xlsx workbook ({type(err).__name__}); save it as .xlsx or .csv (UTF-8)"
        ) from None


def _csv_rows(data: bytes) -> Iterator[tuple[int, list[str]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise _refuse(
            f"not an xlsx workbook nor UTF-8 text (byte {err.start} is 0x{data[err.start]:02x}); "
            "save the file as .xlsx or as CSV UTF-8"
        ) from None
    if "\x00" in text:
        raise _refuse("the file holds NUL characters: it is not a CSV text file")
    sample = text[:4096]
    delimiter = ";" if sample.count(";") > sample.count(",") and "\t" not in sample else ","
    if sample.count("\t") > sample.count(delimiter):
        delimiter = "\t"
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        for number, values in enumerate(reader, start=1):
            yield number, [v.strip() for v in values]
    except csv.Error as err:
        raise _refuse(f"not a readable CSV file: {err}") from None


def read_rows(data: bytes, columns: Sequence[str], *, what: str) -> list[Row]:
    """The data rows of ``data`` (xlsx or csv) keyed by ``columns``.

    The first non-empty row must hold the template's headers (any order, case and
    surrounding spaces ignored; every column present, no other). Empty rows are skipped.
    """
    if not data.strip():
        raise _refuse("the file is empty: fill in the template and upload it again")
    source = _xlsx_rows(data) if data[:4] == b"PK\x03\x04" else _csv_rows(data)
    wanted = {c.casefold(): c for c in columns}
    header: list[str | None] | None = None
    rows: list[Row] = []
    for number, values in source:
        if not any(values):
            continue
        if header is None:
            header = _header(values, wanted, columns, what)
            continue
        if len(rows) >= MAX_ROWS:
            raise _refuse(f"more than {MAX_ROWS} rows: split the file")
        cells: dict[str, str] = {}
        for name, value in zip(header, values, strict=False):
            if name is not None:
                cells[name] = unneutralise(value[:MAX_CELL] if len(value) > MAX_CELL else value)
        rows.append(Row(number, cells))
    if header is None:
        raise _refuse("the file has no header row: start from the template")
    return rows


def _header(
    values: list[str], wanted: dict[str, str], columns: Sequence[str], what: str
) -> list[str | None]:
    header: list[str | None] = []
    unknown: list[str] = []
    for value in values:
        name = wanted.get(value.strip().casefold()) if value else None
        if value and name is None:
            unknown.append(value[:40])
        header.append(name)
    missing = [c for c in columns if c not in header]
    if unknown or missing:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if unknown:
            parts.append("unknown " + ", ".join(repr(u) for u in unknown[:5]))
        raise _refuse(
            f"the header row is not the {what} template's ({'; '.join(parts)}); its columns "
            f"are: {', '.join(columns)}"
        )
    return header


# --- writing -------------------------------------------------------------------------------


def write_table(columns: Sequence[str], rows: Sequence[Sequence[str]], fmt: str) -> bytes:
    """The table as ``fmt`` (csv or xlsx) bytes, every text cell neutralised."""
    if fmt == "csv":
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(columns)
        writer.writerows([neutralise(str(v)) for v in row] for row in rows)
        return ("\ufeff" + out.getvalue()).encode("utf-8")
    if fmt != "xlsx":
        raise ValueError(f"format must be csv or xlsx, not {fmt!r}")
    import openpyxl  # noqa: PLC0415

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Sheet1")
    for index, name in enumerate(columns):
        letter = openpyxl.utils.get_column_letter(index + 1)
        sheet.column_dimensions[letter].width = max(12, len(name) + 4)
    # Plain string cells (a string cell is text to Excel: a PIN's leading zero stays);
    # a blank is no cell at all, which keeps a 10,000-row export quick.
    sheet.append(list(columns))
    for row in rows:
        sheet.append([neutralise(str(v)) if v != "" else None for v in row])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
