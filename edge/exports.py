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
import re
import zipfile
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
    Column("Seq", "seq", "int", 8),
    Column("Time", "at", "time", 20),
    Column("Type", "type"),
    Column("Action", "action"),
    Column("Result", "result", width=10),
    Column("Reason", "reason", width=22),
    Column("Door", "door"),
    Column("Door name", "door_name", width=20),
    Column("Reader", "reader"),
    Column("Initiated by", "initiated_by_name", width=22),
    Column("Person", "person"),
    Column("Person name", "person_name", width=22),
    Column("Apartment", "apartment"),
    Column("Apartment name", "apartment_name", width=20),
    Column("Credential", "credential_kind"),
    Column("Temp key", "temp_key"),
    Column("Temp key name", "temp_key_name", width=20),
    Column("Operator", "actor", width=20),
    Column("Detail", "detail", "json", 40),
)
AUDIT_COLUMNS: tuple[Column, ...] = (
    Column("Id", "id", "int", 8),
    Column("Time", "at", "time", 20),
    Column("Actor", "actor", width=20),
    Column("Action", "action", width=24),
    Column("Target", "target", width=24),
    Column("Target name", "target_name", width=24),
    Column("Detail", "detail", "json", 40),
)
ALARM_COLUMNS: tuple[Column, ...] = (
    Column("Id", "id", "int", 8),
    Column("Time", "at", "time", 20),
    Column("Kind", "kind", width=16),
    Column("Source", "source", width=20),
    Column("Source name", "source_name", width=20),
    Column("Door name", "door_name", width=20),
    Column("Person name", "person_name", width=20),
    Column("Apartment name", "apartment_name", width=20),
    Column("Detail", "detail", "json", 30),
    Column("Resolved", "resolved", "bool", 9),
    Column("Resolved at", "resolved_at", "time", 20),
    Column("Resolved by", "resolved_by", width=20),
    Column("Note", "note", width=30),
)
#: The columns of each log's files, by the name the CLI and the REST paths use.
LOG_COLUMNS: dict[str, tuple[Column, ...]] = {
    "events": EVENT_COLUMNS,
    "audit": AUDIT_COLUMNS,
    "alarms": ALARM_COLUMNS,
}
#: The sheet title of each log's workbook.
LOG_TITLES: dict[str, str] = {"events": "Door events", "audit": "Operation log", "alarms": "Alarms"}
#: The columns ``doorkeep events|audit|alarms --format table`` prints (names, not ids).
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "events": ("Seq", "Time", "Type", "Action", "Result", "Reason", "Door name",
               "Initiated by", "Apartment name"),
    "audit": ("Id", "Time", "Actor", "Action", "Target", "Target name"),
    "alarms": ("Id", "Time", "Kind", "Source name", "Resolved", "Resolved by"),
}  # fmt: skip
#: Export format -> content type.
CONTENT_TYPES: dict[str, str] = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


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
    newest: datetime | None = None
    for row in rows:
        sheet.append([_xlsx_cell(sheet, c, row.get(c.key), zone) for c in cols])
        moment = _local(row.get("at"), UTC)
        if moment is not None and (newest is None or moment > newest):
            newest = moment
    out = io.BytesIO()
    book.save(out)
    return _reproducible(out.getvalue(), newest or _EPOCH)


# A workbook is a zip whose entries and properties carry the time it was written; the
# same rows must give the same bytes whoever exports them (CLI, REST, UI), so every
# entry gets one fixed time and the document's created/modified the newest row's time.
_EPOCH = datetime(1980, 1, 1, tzinfo=UTC)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_CORE_TIME = re.compile(rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)")


def _reproducible(data: bytes, as_of: datetime) -> bytes:
    stamp = as_of.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "docProps/core.xml":
                body = _CORE_TIME.sub(rb"\g<1>" + stamp + rb"\g<3>", body)
            entry = zipfile.ZipInfo(info.filename, _ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o600 << 16
            dst.writestr(entry, body)
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
    "csv": (CONTENT_TYPES["csv"], events_csv),
    "xlsx": (CONTENT_TYPES["xlsx"], events_xlsx),
}


def render(log: str, fmt: str, rows: Iterable[Mapping[str, Any]], *, tz: Any) -> bytes:
    """The one exporter: ``log`` (events | audit | alarms) as ``fmt`` (csv | xlsx).

    The CLI (``doorkeep events|audit|alarms --format csv|xlsx``), the REST exports
    (``GET /events/export`` ...) and the UI's download buttons all come here with rows
    that carry their names (edge/site/logbook.py), so one query gives the same bytes.
    """
    columns = LOG_COLUMNS[log]
    if fmt == "csv":
        return to_csv(columns, rows, tz=tz)
    if fmt == "xlsx":
        return to_xlsx(columns, rows, tz=tz, title=LOG_TITLES[log])
    raise ValueError(f"format {fmt!r}: use csv or xlsx")


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def to_table(log: str, rows: Iterable[Mapping[str, Any]], *, tz: Any) -> str:
    """A plain-text table for a terminal: names rather than ids, local times, no escapes.

    Control characters (a name could carry a terminal escape sequence) become ``?``.
    """
    zone = _zone(tz)
    wanted = TABLE_COLUMNS[log]
    cols = [c for c in LOG_COLUMNS[log] if c.header in wanted]

    def cell(column: Column, value: Any) -> str:
        if column.kind == "time":
            moment = _local(value, zone)
            text = "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")
        else:
            text = _text(column, value, zone)
        return _CONTROL.sub("?", text)

    lines = [[_header(c, zone) for c in cols]]
    lines += [[cell(c, row.get(c.key)) or "-" for c in cols] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(cols))]
    return "".join(
        "  ".join(text.ljust(w) for text, w in zip(line, widths, strict=True)).rstrip() + "\n"
        for line in lines
    )
