"""``doorkeep import``, ``export`` and ``template``: the reference's xlsx/csv templates.

``import KIND FILE [--dry-run]`` checks every row and applies a good file as one policy
change (exit 1 listing every row and column problem, nothing changed); a progress bar
goes to stderr. ``export KIND -o FILE`` and ``template KIND -o FILE`` write xlsx or csv by
the file's suffix (``--format`` to choose). docs/import-export.md has the rules.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from doorkeep import imports
from edge.cli._common import UserError, _offline_site

Command = Callable[..., argparse.ArgumentParser]


class ProgressBar:
    """``stage [#####.....] done/total`` on a terminal; one line per stage otherwise."""

    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.stage = ""
        self.last = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        new_stage = stage != self.stage
        if not new_stage and now - self.last < 0.1 and done < total:
            return
        self.last = now
        if self.tty:
            filled = self.WIDTH * done // total if total else 0
            bar = "#" * filled + "." * (self.WIDTH - filled)
            end = "\n" if total and done >= total else ""
            self.stream.write(f"\r{stage:<10} [{bar}] {done}/{total}{end}")
        elif new_stage:
            self.stream.write(f"{stage} {total} rows\n" if total else f"{stage}\n")
        self.stage = stage
        self.stream.flush()


def _read(path: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as err:
        raise UserError(f"{path}: cannot be read: {err.strerror}") from err


def _write(path: str, data: bytes, fmt: str, what: str) -> None:
    if path == "-":
        if fmt == "xlsx":
            raise UserError("xlsx is binary: give -o FILE")
        sys.stdout.write(data.decode("utf-8-sig"))
        return
    try:
        Path(path).write_bytes(data)
    except OSError as err:
        raise UserError(f"{path}: cannot be written: {err.strerror}") from err
    print(f"wrote {what} to {path}", file=sys.stderr)


def cmd_import(args: argparse.Namespace) -> int:
    data = _read(args.file)
    bar = ProgressBar(sys.stderr)

    async def run() -> dict[str, Any]:
        async with _offline_site(args) as site:
            return await site.imports.run(
                args.kind, data, actor=args.actor, dry_run=args.dry_run, progress=bar
            )

    outcome = asyncio.run(run())
    if args.dry_run:
        print(f"dry run, nothing changed: {outcome['summary']}")
    elif outcome["version"] is None:
        print(f"{outcome['summary']}; policy unchanged")
    else:
        print(f"{outcome['summary']}; policy version {outcome['version']}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    fmt = args.format or imports.format_of(args.output, "csv" if args.output == "-" else "xlsx")

    async def run() -> bytes:
        async with _offline_site(args) as site:
            return await site.imports.export(args.kind, fmt)

    _write(args.output, asyncio.run(run()), fmt, f"the {args.kind}")
    return 0


def cmd_template(args: argparse.Namespace) -> int:
    fmt = args.format or imports.format_of(args.output, "csv" if args.output == "-" else "xlsx")
    _write(args.output, imports.template(args.kind, fmt), fmt, f"the {args.kind} template")
    return 0


def register(command: Command) -> None:
    """Add the three commands to the parser (edge/cli/__init__.py)."""
    fmt_help = "csv or xlsx (default: by the file's suffix, else xlsx)"
    p = command("import", cmd_import, "import a template file; exit 1 listing every bad row")
    p.add_argument("kind", choices=sorted(imports.IMPORT_KINDS), help="which template")
    p.add_argument("file", help="the .xlsx or .csv file (- for stdin)")
    p.add_argument("--dry-run", action="store_true", help="check every row, change nothing")
    p.add_argument("--actor", default="cli", help="who to name in the audit log")
    p = command("export", cmd_export, "export residents, apartments, cards or staff")
    p.add_argument("kind", choices=sorted(imports.EXPORT_KINDS), help="what to export")
    p.add_argument("-o", "--output", required=True, help="the file to write (.xlsx or .csv)")
    p.add_argument("--format", choices=imports.FORMATS, help=fmt_help)
    p = command("template", cmd_template, "write an empty import template", config=False)
    p.add_argument("kind", choices=sorted(imports.TEMPLATE_KINDS), help="which template")
    p.add_argument("-o", "--output", required=True, help="the file to write (.xlsx or .csv)")
    p.add_argument("--format", choices=imports.FORMATS, help=fmt_help)
