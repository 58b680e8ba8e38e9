"""CSV and XLSX files of the door events, the operation (audit) log and the alarms.

The columns of each file are declared as data (``EVENT_COLUMNS`` ...); one writer per
format turns any table of columns into bytes. Times are shown in the site's time zone:
CSV cells carry ISO 8601 with the offset, XLSX cells are real spreadsheet date-times in
local wall time (spreadsheets have no offsets; the header names the zone).

Text that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first) is
neutralised: in CSV it gets a leading apostrophe (the OWASP advice), in XLSX it is
stored as a plain string cell. People's names come from many hands; opening an export
must never execute one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, WriteOnlyCell

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping

Kind = Literal["text", "int", "time", "json", "bool"]
_KINDS = frozenset({"text", "int", "time", "json", "bool"})
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_XLSX_TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"


@dataclass(frozen=True, slots=True)
class Column:
    """One exported column: its header, the row key it reads and how to show it."""

    header: str
    key: str
    kind: Kind = "text"
    width: int = 14

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"Column {self.header!r}: kind {self.kind!r} not in {sorted(_KINDS)}")


EVENT_COLUMNS: tuple[Column, ...] = (
    Column("seq", "seq", "int", 8),
    Column("time", "at", "time", 20),
    Column("type", "type"),
    Column("action", "action"),
    Column("result", "result", width=10),
    Column("reason", "reason", width=22),
    Column("door", "door"),
    Column("reader", "reader"),
    Column("person", "person"),
    Column("apartment", "apartment"),
    Column("credential", "credential_kind"),
    Column("detail", "detail", "json", 40),
)
AUDIT_COLUMNS: tuple[Column, ...] = (
    Column("id", "id", "int", 8),
    Column("time", "at", "time", 20),
    Column("actor", "actor", width=20),
    Column("action", "action", width=24),
    Column("target", "target", width=24),
    Column("detail", "detail", "json", 40),
)
ALARM_COLUMNS: tuple[Column, ...] = (
    Column("id", "id", "int", 8),
    Column("time", "at", "time", 20),
    Column("kind", "kind", width=16),
    Column("source", "source", width=20),
    Column("detail", "detail", "json", 30),
    Column("resolved", "resolved", "bool", 9),
    Column("resolved at", "resolved_at", "time", 20),
    Column("resolved by", "resolved_by", width=20),
    Column("note", "note", width=30),
)


def _zone(tz: tzinfo | str | None) -> tzinfo:
    if tz is None:
        return UTC
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def _zone_name(zone: tzinfo) -> str:
    return str(getattr(zone, "key", None) or zone.tzname(None) or "UTC")


def _header(column: Column, zone: tzinfo) -> str:
    return f"{column.header} ({_zone_name(zone)})" if column.kind == "time" else column.header


def _local(value: Any, zone: tzinfo) -> datetime | None:
    if value in (None, ""):
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone)


def _text(column: Column, value: Any, zone: tzinfo) -> str:
    """The cell's text for CSV ('' for a missing value)."""
    if value is None:
        return ""
    if column.kind == "time":
        moment = _local(value, zone)
        return "" if moment is None else moment.isoformat()
    if column.kind == "json":
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    if column.kind == "bool":
        return "yes" if value else "no"
    return str(value)


def _csv_safe(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(
    columns: Iterable[Column], rows: Iterable[Mapping[str, Any]], *, tz: Any = None
) -> bytes:
    """A UTF-8 CSV (with BOM, so spreadsheet programs detect UTF-8) of ``rows``."""
    cols = tuple(columns)
    zone = _zone(tz)
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow([_header(c, zone) for c in cols])
    for row in rows:
        writer.writerow(
            [
                _csv_safe(_text(c, row.get(c.key), zone))
                if c.kind in ("text", "json")
                else _text(c, row.get(c.key), zone)
                for c in cols
            ]
        )
    return out.getvalue().encode("utf-8-sig")


def _xlsx_cell(sheet: Any, column: Column, value: Any, zone: tzinfo) -> WriteOnlyCell:
    if value is None:
        return WriteOnlyCell(sheet, None)
    if column.kind == "time":
        moment = _local(value, zone)
        cell = WriteOnlyCell(sheet, None if moment is None else moment.replace(tzinfo=None))
        cell.number_format = _XLSX_TIME_FORMAT
        return cell
    if column.kind == "int":
        return WriteOnlyCell(sheet, int(value))
    if column.kind == "bool":
        return WriteOnlyCell(sheet, bool(value))
    text = ILLEGAL_CHARACTERS_RE.sub("", _text(column, value, zone))
    cell = WriteOnlyCell(sheet, text)
    cell.data_type = "s"  # never a formula or an error code, whatever the text says
    return cell


def to_xlsx(
    columns: Iterable[Column],
    rows: Iterable[Mapping[str, Any]],
    *,
    tz: Any = None,
    title: str = "Sheet",
) -> bytes:
    """An XLSX workbook with one sheet of ``rows`` (streamed: fine for large logs)."""
    cols = tuple(columns)
    zone = _zone(tz)
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title[:31])
    for index, column in enumerate(cols):
        letter = _column_letter(index + 1)
        sheet.column_dimensions[letter].width = column.width
    sheet.freeze_panes = "A2"
    sheet.append([_header(c, zone) for c in cols])
    for row in rows:
        sheet.append([_xlsx_cell(sheet, c, row.get(c.key), zone) for c in cols])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _column_letter(number: int) -> str:
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def events_csv(rows: Iterable[Mapping[str, Any]], *, tz: Any = None) -> bytes:
    """Door events (the store's event dicts) as CSV, times in ``tz`` (an IANA name or tzinfo)."""
    return to_csv(EVENT_COLUMNS, rows, tz=tz)


def events_xlsx(rows: Iterable[Mapping[str, Any]], *, tz: Any = None) -> bytes:
    """Door events as an XLSX workbook, times in ``tz``."""
    return to_xlsx(EVENT_COLUMNS, rows, tz=tz, title="Door events")


def audit_csv(rows: Iterable[Mapping[str, Any]], *, tz: Any = None) -> bytes:
    """The operation log as CSV."""
    return to_csv(AUDIT_COLUMNS, rows, tz=tz)


def audit_xlsx(rows: Iterable[Mapping[str, Any]], *, tz: Any = None) -> bytes:
    """The operation log as an XLSX workbook."""
    return to_xlsx(AUDIT_COLUMNS, rows, tz=tz, title="Operation log")


def alarms_csv(rows: Iterable[Mapping[str, Any]], *, tz: Any = None) -> bytes:
    """Alarm records as CSV."""
    return to_csv(ALARM_COLUMNS, rows, tz=tz)


def alarms_xlsx(rows: Iterable[Mapping[str, Any]], *, tz: Any = None) -> bytes:
    """Alarm records as an XLSX workbook."""
    return to_xlsx(ALARM_COLUMNS, rows, tz=tz, title="Alarms")


async def all_pages(
    fetch: Callable[..., Awaitable[tuple[list[dict[str, Any]], str | None]]],
    **query: Any,
) -> AsyncGenerator[dict[str, Any], None]:
    """Every row of a paged store query (``store.query_events``, ``store.query_audit``).

    ``async for row in all_pages(store.query_events, door="gate")`` walks the cursor
    so an export of a whole month needs no paging code at the call site.
    """
    cursor = None
    query.setdefault("limit", 1000)
    while True:
        page, cursor = await fetch(**query, cursor=cursor)
        for row in page:
            yield row
        if cursor is None:
            return


async def collect(
    fetch: Callable[..., Awaitable[tuple[list[dict[str, Any]], str | None]]],
    *,
    max_rows: int,
    **query: Any,
) -> list[dict[str, Any]]:
    """Up to ``max_rows`` rows of a paged query (what one export file holds)."""
    rows: list[dict[str, Any]] = []
    async with contextlib.aclosing(all_pages(fetch, **query)) as pages:
        async for row in pages:
            rows.append(row)
            if len(rows) >= max_rows:
                break
    return rows


#: Export format -> (content type, writer of door events).
EVENT_FILES: dict[str, tuple[str, Callable[..., bytes]]] = {
    "csv": ("text/csv", events_csv),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", events_xlsx),
}
