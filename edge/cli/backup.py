"""``doorkeep backup FILE`` and ``doorkeep restore FILE`` (edge/backup.py, docs/operations.md)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from edge.cli._common import UserError, _config_path, _load_config

PASSPHRASE_ENV = "DOORKEEP_BACKUP_PASSPHRASE"  # noqa: S105 - the name of a variable


def _passphrase(args: argparse.Namespace) -> str | None:
    """From --passphrase-file (``-`` = stdin) or $DOORKEEP_BACKUP_PASSPHRASE; never argv."""
    source = getattr(args, "passphrase_file", None)
    if source is None:
        return os.environ.get(PASSPHRASE_ENV) or None
    try:
        text = sys.stdin.readline() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as err:
        raise UserError(f"--passphrase-file {source}: cannot be read: {err.strerror}") from err
    phrase = text.strip("\r\n")
    if len(phrase) < 8:
        raise UserError("the passphrase must have at least 8 characters")
    return phrase


def cmd_backup(args: argparse.Namespace) -> int:
    from edge.backup import BackupError, make_backup  # noqa: PLC0415

    config = _load_config(args)
    dest = Path(args.file)
    try:
        manifest = make_backup(
            _config_path(args), config.site.data_dir, dest, passphrase=_passphrase(args)
        )
    except BackupError as err:
        raise UserError(str(err)) from err
    sealed = "encrypted" if manifest["encrypted"] else "NOT encrypted: keep it as safe as the site"
    print(
        f"backup of site {manifest['site_id']!r} written to {dest} "
        f"({len(manifest['files'])} files, {sealed})"
    )
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from edge.backup import BackupError, restore_backup  # noqa: PLC0415

    target = Path(args.dir) if args.dir else _config_path(args).parent
    try:
        done = restore_backup(
            Path(args.file),
            target,
            passphrase=_passphrase(args),
            other_site=args.other_site,
            replace=args.replace,
        )
    except BackupError as err:
        raise UserError(str(err)) from err
    print(f"restored site {done.site_id!r} into {done.site_toml} ({done.files} files)")
    print(f"check it with: doorkeep check -c {done.site_toml}")
    return 0
