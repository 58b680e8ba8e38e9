"""Exports read back with csv and openpyxl show what the store holds, in site time."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import openpyxl
import pytest

from edge import exports
from edge.store import EdgeStore

if TYPE_CHECKING:
    from pathlib import Path

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # Berlin springs forward at 01:00 UTC
NASTY = '=HYPERLINK("http://evil","click") ,"; ümlaut\n'


async def sample(tmp_path: Path) -> tuple[list[dict], list[dict], list[dict]]:
    async with EdgeStore.open(tmp_path / "x.db", site_id="demo") as store:
        for i in range(3):
            await store.record_event(
                {
                    "at": T0 + timedelta(hours=i),
                    "type": "access",
                    "action": "card",
                    "result": "failed" if i == 1 else "success",
                    "reason": "outside_schedule" if i == 1 else None,
                    "door": "gate",
                    "person": NASTY if i == 2 else f"p{i}",
                    "credential_kind": "rf_card",
                    "detail": {"floors": ["7"], "i": i},
                }
            )
        await store.audit("admin:alice", "door.unlock", "door:gate", {"seconds": 5})
        alarm = await store.raise_alarm("forced_open", source="door:gate", at=T0)
        await store.resolve_alarm(alarm["id"], actor="admin:alice", note="-1 checked")
        events = [row async for row in exports.all_pages(store.query_events, limit=2)]
        audit = [row async for row in exports.all_pages(store.query_audit)]
        alarms = await store.query_alarms()
    return events, audit, alarms


def read_csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def read_xlsx(data: bytes) -> list[dict[str, object]]:
    sheet = openpyxl.load_workbook(io.BytesIO(data)).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


async def test_events_csv_round_trip_in_site_time(tmp_path: Path) -> None:
    events, _, _ = await sample(tmp_path)
    rows = read_csv(exports.events_csv(events, tz="Europe/Berlin"))
    assert [r["Seq"] for r in rows] == ["3", "2", "1"]
    # 00:30 UTC is 01:30 CET; one and two hours later Berlin is on CEST (+02:00).
    times = [r["Time (Europe/Berlin)"] for r in rows]
    assert times == [
        "2026-03-29T04:30:00+02:00",
        "2026-03-29T03:30:00+02:00",
        "2026-03-29T01:30:00+01:00",
    ]
    assert rows[1]["Reason"] == "outside_schedule"
    assert rows[2]["Reason"] == ""
    assert rows[0]["Detail"] == '{"floors":["7"],"i":2}'
    # A formula-looking name is shown, never run: CSV gets a leading apostrophe.
    assert rows[0]["Person"] == "'" + NASTY


async def test_events_xlsx_round_trip(tmp_path: Path) -> None:
    events, _, _ = await sample(tmp_path)
    rows = read_xlsx(exports.events_xlsx(events, tz="Europe/Berlin"))
    assert [r["Seq"] for r in rows] == [3, 2, 1]
    assert rows[2]["Time (Europe/Berlin)"] == datetime(2026, 3, 29, 1, 30)
    assert rows[0]["Time (Europe/Berlin)"] == datetime(2026, 3, 29, 4, 30)
    # Stored as a string cell, so the text is intact and Excel runs no formula.
    assert rows[0]["Person"] == NASTY
    assert rows[0]["Credential"] == "rf_card"
    assert rows[1]["Door"] == "gate"


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
async def test_audit_and_alarms_export(tmp_path: Path, fmt: str) -> None:
    _, audit, alarms = await sample(tmp_path)
    read = read_csv if fmt == "csv" else read_xlsx
    audit_rows = read(getattr(exports, f"audit_{fmt}")(audit, tz="UTC"))
    actions = [r["Action"] for r in audit_rows]
    assert actions == ["alarm.resolve", "door.unlock"]
    assert audit_rows[1]["Actor"] == "admin:alice"
    alarm_rows = read(getattr(exports, f"alarms_{fmt}")(alarms, tz="UTC"))
    (alarm,) = alarm_rows
    assert alarm["Kind"] == "forced_open"
    assert alarm["Resolved by"] == "admin:alice"
    if fmt == "csv":
        assert alarm["Resolved"] == "yes"
        assert alarm["Note"] == "'-1 checked"
        assert alarm["Time (UTC)"] == "2026-03-29T00:30:00+00:00"
    else:
        assert alarm["Resolved"] is True
        assert alarm["Note"] == "-1 checked"
        assert alarm["Time (UTC)"] == datetime(2026, 3, 29, 0, 30)


def test_empty_export_still_has_headers() -> None:
    rows = list(csv.reader(io.StringIO(exports.events_csv([]).decode("utf-8-sig"))))
    assert rows == [[c.header if c.kind != "time" else "Time (UTC)" for c in exports.EVENT_COLUMNS]]
    sheet = openpyxl.load_workbook(io.BytesIO(exports.events_xlsx([]))).worksheets[0]
    assert sheet.max_row == 1


def test_columns_are_validated() -> None:
    with pytest.raises(ValueError, match="kind"):
        exports.Column("x", "x", "colour")  # type: ignore[arg-type]


async def test_collect_stops_at_the_row_cap_and_closes_the_pages() -> None:
    asked: list[str | None] = []

    async def fetch(*, limit: int, cursor: str | None = None) -> tuple[list[dict], str | None]:
        asked.append(cursor)
        start = int(cursor or 0)
        return [{"seq": start + i} for i in range(limit)], str(start + limit)

    rows = await exports.collect(fetch, max_rows=5, limit=2)
    assert [r["seq"] for r in rows] == [0, 1, 2, 3, 4]
    assert asked == [None, "2", "4"]  # never a page past the cap
    content_type, write = exports.EVENT_FILES["csv"]
    assert content_type == "text/csv"
    assert write(rows, tz="Europe/Berlin").startswith("\ufeff".encode())
