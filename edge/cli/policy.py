"""``doorkeep policy``, ``decide`` and ``events``: the policy, dry-run decisions, the log."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from doorkeep import policydoc
from doorkeep.errors import PolicyError
from edge.cli._common import (
    UserError,
    _load_config,
    _offline_site,
    _parse_at,
    _print_json,
    _read_json,
)


def cmd_policy_apply(args: argparse.Namespace) -> int:
    doc = _read_json(args.file)

    async def run() -> int:
        async with _offline_site(args) as site:
            return await site.apply_policy(doc, actor=args.actor)

    version = asyncio.run(run())
    print(f"policy applied: version {version}")
    return 0


def cmd_policy_export(args: argparse.Namespace) -> int:
    async def run() -> dict[str, Any]:
        async with _offline_site(args) as site:
            return site.policy_document()

    text = json.dumps(asyncio.run(run()), indent=2, ensure_ascii=False) + "\n"
    if args.output and args.output != "-":
        Path(args.output).write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_policy_validate(args: argparse.Namespace) -> int:
    doc = _read_json(args.file)
    doors = None
    if args.config or os.environ.get("DOORKEEP_CONFIG") or Path("site.toml").exists():
        doors = {d.id for d in _load_config(args).doors}
    issues = policydoc.validate_document(doc, doors=doors)
    if issues:
        raise PolicyError(f"{args.file}: {len(issues)} problem(s)", issues)
    print(
        f"{args.file}: valid"
        + ("" if doors is not None else " (door ids not checked: no site.toml)")
    )
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    at = _parse_at(args.at)
    if args.value == "-":  # from stdin: a PIN on the command line shows in ps and history
        args.value = sys.stdin.readline().rstrip("\r\n")

    async def run() -> dict[str, Any]:
        async with _offline_site(args) as site:
            try:
                d = site.dry_run(args.reader, args.kind, args.value, at=at)
            except ValueError as err:
                raise UserError(str(err)) from err
            return {
                "granted": d.granted,
                "reason": None if d.reason is None else str(d.reason),
                "reader": d.reader,
                "door": d.door,
                "person": d.person,
                "apartment": d.apartment,
                "credential": d.credential,
                "temp_key": d.temp_key,
                "floors": list(d.floors),
                "duress": d.duress,
                "policy_version": site.snapshot.version,
            }

    _print_json(asyncio.run(run()))
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    from edge import exports  # noqa: PLC0415

    query: dict[str, Any] = {
        k: v for k in ("type", "door", "person", "result") if (v := getattr(args, k)) is not None
    }
    tz = _load_config(args).tz
    for key in ("since", "until"):
        value = getattr(args, key)
        if value is None:
            continue
        if "T" in value:
            query[key] = _parse_at(value)
            continue
        try:  # a plain date is the whole day in the site's time zone
            day = date.fromisoformat(value)
        except ValueError as err:
            raise UserError(
                f"--{key} {value!r} is neither a date (2026-11-20) nor a date-time"
            ) from err
        start = datetime.combine(day + timedelta(days=1 if key == "until" else 0), time.min, tz)
        query[key] = start - timedelta(microseconds=1) if key == "until" else start

    async def run() -> tuple[list[dict[str, Any]], Any]:
        async with _offline_site(args) as site:
            rows: list[dict[str, Any]] = []
            cursor = None
            while len(rows) < args.limit:
                page, cursor = await site.events(
                    **query, limit=min(1000, args.limit - len(rows)), cursor=cursor
                )
                rows += page
                if cursor is None:
                    break
            return rows, site.tz

    rows, tz = asyncio.run(run())
    if args.format == "json":
        data = (json.dumps(rows, indent=2, ensure_ascii=False) + "\n").encode()
    elif args.format == "csv":
        data = exports.events_csv(rows, tz=tz)
    else:
        data = exports.events_xlsx(rows, tz=tz)
    if args.output and args.output != "-":
        Path(args.output).write_bytes(data)
        print(f"wrote {len(rows)} events to {args.output}", file=sys.stderr)
    elif args.format == "xlsx":
        raise UserError("xlsx is binary: give -o FILE")
    else:
        sys.stdout.write(data.decode())
    return 0
