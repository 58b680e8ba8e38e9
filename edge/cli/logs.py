"""``doorkeep events``, ``events verify``, ``audit`` and ``alarms``: the logs on the CLI.

Every command reads through ``site.logbook`` (edge/site/logbook.py), as the REST API
does: the same filters, the same names next to ids, times in the site's zone, and for
``--format csv|xlsx`` the very exporter of ``GET /events/export`` (same query, same
bytes). ``--format table`` prints names for a person at a terminal; ``json`` (the
default) is the REST API's items.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doorkeep.policydoc import CREDENTIAL_KINDS
from edge.cli._common import UserError, _load_config, _offline_site, _parse_at
from edge.core.decide import Reason

if TYPE_CHECKING:
    from collections.abc import Callable
    from zoneinfo import ZoneInfo

EVENT_TYPES = ["access", "door", "alarm", "emergency", "system"]
FORMATS = ["json", "table", "csv", "xlsx"]
# (flag, query key, help, choices); the REST API's parameters of the same names.
_EVENT_FILTERS: tuple[tuple[str, str, str, list[str] | None], ...] = (
    ("--type", "type", "event type", EVENT_TYPES),
    ("--building", "building", "building id: events of its apartments or at its doors", None),
    ("--apartment", "apartment", "apartment id", None),
    ("--door", "door", "door id", None),
    ("--person", "person", "person id", None),
    ("--initiated-by", "initiated_by", "a person id or an operator (admin:alice, cli, ...)", None),
    ("--credential-kind", "credential_kind", "credential kind", [*CREDENTIAL_KINDS, "remote"]),
    ("--temp-key", "temp_key", "temp key id (a visitor's door log)", None),
    ("--credential", "credential", "credential id", None),
    ("--action", "action", "presentation, remote_unlock, opened, ...", None),
    ("--result", "result", "outcome", ["success", "failed", "offline"]),
    ("--reason", "reason", "why a presentation was refused", [str(r) for r in Reason]),
)
_AUDIT_FILTERS = (
    ("--actor", "actor", "who made the change", None),
    ("--action", "action", "what was done (door.unlock, people.update, ...)", None),
)
_ALARM_FILTERS = (("--kind", "kind", "alarm kind (forced_open, board_offline, ...)", None),)
_FILTERS = {"events": _EVENT_FILTERS, "audit": _AUDIT_FILTERS, "alarms": _ALARM_FILTERS}


def add_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    """The log commands, added with the parser's ``command`` helper (edge/cli/__init__)."""
    p = command("events", cmd_events, "search and export the door and alarm log")
    _log_options(p, "events")
    sub = p.add_subparsers(dest="events_command", required=False, metavar="ACTION")
    v = command(
        "verify",
        cmd_events_verify,
        "recompute the event log's hash chain; exit 1 when a row was changed or removed",
        parent=sub,
    )
    v.add_argument("--json", action="store_true", help="the report as JSON")
    p = command("audit", cmd_audit, "search and export the operation (audit) log")
    _log_options(p, "audit")
    p = command("alarms", cmd_alarms, "search and export the alarm records")
    p.add_argument("--open", action="store_true", help="only unresolved alarms")
    _log_options(p, "alarms")


def _log_options(p: argparse.ArgumentParser, log: str) -> None:
    p.add_argument("--since", help="from this day or time (ISO; a date is a whole day)")
    p.add_argument("--until", help="up to this day or time (ISO; a date is a whole day)")
    for flag, key, help_, choices in _FILTERS[log]:
        p.add_argument(flag, dest=key, help=help_, choices=choices)
    p.add_argument(
        "--limit", type=int, default=None, help="at most this many rows (default and most 100000)"
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="json",
        help="json (default, the REST API's items), table (names, for reading), csv or xlsx",
    )
    p.add_argument("-o", "--output", help="write to FILE instead of stdout (xlsx needs one)")


def cmd_events(args: argparse.Namespace) -> int:
    return _run(args, "events")


def cmd_audit(args: argparse.Namespace) -> int:
    return _run(args, "audit")


def cmd_alarms(args: argparse.Namespace) -> int:
    return _run(args, "alarms")


def cmd_events_verify(args: argparse.Namespace) -> int:
    async def run() -> dict[str, Any]:
        async with _offline_site(args) as site:
            return await site.logbook.verify()

    report = asyncio.run(run())
    if args.json:
        print(json.dumps(report, indent=2))
    elif report["ok"]:
        print(
            f"event log ok: {report['checked']} events checked"
            f" (after seq {report['anchor_seq']}, {report['redacted']} redacted)"
        )
    else:
        print(
            f"event log BROKEN at seq {report['first_bad_seq']}: that event was changed, "
            f"removed or reordered after it was written ({report['checked']} checked before it)",
            file=sys.stderr,
        )
    return 0 if report["ok"] else 1


def _run(args: argparse.Namespace, log: str) -> int:
    from edge import exports  # noqa: PLC0415
    from edge.site.logbook import EXPORT_MAX_ROWS  # noqa: PLC0415

    limit = EXPORT_MAX_ROWS if args.limit is None else args.limit
    if not 1 <= limit <= EXPORT_MAX_ROWS:
        raise UserError(f"--limit must be between 1 and {EXPORT_MAX_ROWS}")
    if args.format == "xlsx" and (not args.output or args.output == "-"):
        raise UserError("xlsx is binary: give -o FILE")
    query = _query(args, log, _load_config(args).tz)

    async def run() -> tuple[bytes, int, bool]:
        async with _offline_site(args) as site:
            book = site.logbook
            if args.format in ("csv", "xlsx"):
                exported = await book.export(log, args.format, max_rows=limit, **query)
                return exported.body, exported.rows, exported.truncated
            rows, truncated = await book.collect(log, max_rows=limit, **query)
            if args.format == "table":
                text = exports.to_table(log, rows, tz=site.tz)
            else:
                text = json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
            return text.encode(), len(rows), truncated

    data, count, truncated = asyncio.run(run())
    if truncated:
        print(
            f"warning: more rows match; showing the newest {count} (narrow the search)",
            file=sys.stderr,
        )
    if args.output and args.output != "-":
        Path(args.output).write_bytes(data)
        print(f"wrote {count} {log} rows to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(data.decode())
    return 0


def _query(args: argparse.Namespace, log: str, tz: ZoneInfo) -> dict[str, Any]:
    query: dict[str, Any] = {
        key: value
        for _, key, _, _ in _FILTERS[log]
        if (value := getattr(args, key, None)) is not None
    }
    if log == "alarms" and args.open:
        query["open"] = True
    for key in ("since", "until"):
        value = getattr(args, key)
        if value is not None:
            query[key] = _moment(key, value, tz)
    return query


def _moment(key: str, value: str, tz: ZoneInfo) -> datetime:
    """A date-time with offset, or a plain date as the whole day in the site's zone."""
    if "T" in value:
        moment = _parse_at(value)
        assert moment is not None
        return moment
    try:
        day = date.fromisoformat(value)
    except ValueError as err:
        raise UserError(
            f"--{key} {value!r} is neither a date (2026-11-20) nor a date-time"
        ) from err
    start = datetime.combine(day + timedelta(days=1 if key == "until" else 0), time.min, tz)
    return start - timedelta(microseconds=1) if key == "until" else start
