"""``doorkeep policy`` and ``decide``: the policy document and dry-run decisions."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
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
