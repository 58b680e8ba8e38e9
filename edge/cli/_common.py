"""What the command modules share: the site, JSON and time arguments, user errors, logging."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doorkeep import policydoc
from doorkeep.errors import DoorkeepError

if TYPE_CHECKING:  # the commands import the daemon's modules only when they run
    from edge.service import Site

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


class UserError(DoorkeepError):
    """A mistake the user can fix; printed without a traceback, exit 1."""


def _config_path(args: argparse.Namespace) -> Path:
    return Path(args.config or os.environ.get("DOORKEEP_CONFIG") or "site.toml")


def _load_config(args: argparse.Namespace) -> Any:
    from edge.config import load_site_config  # noqa: PLC0415
    from edge.hardware import Hardware  # noqa: PLC0415

    return load_site_config(_config_path(args), board_types=Hardware.board_types())


@contextlib.asynccontextmanager
async def _offline_site(args: argparse.Namespace) -> AsyncIterator[Site]:
    """The site's store and policy, without opening any bus or board."""
    from edge.service import Site  # noqa: PLC0415

    async with Site.open(_load_config(args), with_hardware=False) as site:
        yield site


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def _read_json(path: str) -> Any:
    """The policy document in ``path`` (``-``: stdin), parsed as bytes so that a file
    that is not UTF-8, not JSON or nested absurdly deep is one clear error."""
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as err:
        raise UserError(f"{path}: cannot be read: {err.strerror}") from err
    return policydoc.loads(data, source="stdin" if path == "-" else path)


def _parse_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise UserError(f"--at {text!r} is not an ISO 8601 date-time") from err
    if moment.tzinfo is None:
        raise UserError("--at needs a UTC offset, e.g. 2026-11-17T14:00:00+01:00")
    return moment


def _setup_logging(args: argparse.Namespace) -> None:
    from edge import logs  # noqa: PLC0415

    try:
        logs.setup(verbose=getattr(args, "verbose", False), fmt=getattr(args, "log_format", None))
    except ValueError as err:
        raise UserError(str(err)) from err
