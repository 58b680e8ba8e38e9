"""``doorkeep token``: API tokens for the REST API."""

from __future__ import annotations

import argparse
import secrets
from datetime import UTC, datetime

from edge.cli._common import (
    UserError,
    _load_config,
)


def cmd_token_create(args: argparse.Namespace) -> int:
    from edge.auth import AuthStore  # noqa: PLC0415
    from edge.daemon import auth_path  # noqa: PLC0415

    config = _load_config(args)
    auth = AuthStore.open(auth_path(config))
    try:
        token = auth.create_token(
            # the time says when; the random suffix keeps two in one second apart
            args.role,
            args.name or f"{args.role}-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}",
        )
    except ValueError as err:
        raise UserError(str(err)) from err
    finally:
        auth.close()
    print(token)
    return 0


def cmd_reader_token(args: argparse.Namespace) -> int:
    """``doorkeep reader token READER [--revoke]``: the token of one ``http`` reader."""
    import asyncio  # noqa: PLC0415

    from edge.auth import AuthStore  # noqa: PLC0415
    from edge.cli._common import _offline_site  # noqa: PLC0415
    from edge.daemon import auth_path  # noqa: PLC0415

    config = _load_config(args)
    reader = next((r for r in config.readers if r.id == args.reader), None)
    if reader is None:
        known = ", ".join(r.id for r in config.readers) or "none"
        raise UserError(f"reader {args.reader!r} is not in site.toml (readers: {known})")
    if reader.type != "http" and not args.revoke:
        raise UserError(
            f'reader {args.reader!r} is type = "{reader.type}"; only type = "http" readers '
            "(LPR cameras, IP door phones) post their reads with a token"
        )
    auth = AuthStore.open(auth_path(config))
    try:
        if args.revoke:
            had = auth.readers.revoke(reader.id)
            token, action = None, "reader.token.revoke"
        else:
            token, had, action = auth.readers.create(reader.id), True, "reader.token.create"
    finally:
        auth.close()

    async def record() -> None:
        async with _offline_site(args) as site:
            await site.store.audit(args.actor, action, f"reader:{reader.id}", {"existed": had})

    asyncio.run(record())
    if token is None:
        print(f"reader {reader.id}: token revoked" if had else f"reader {reader.id}: had no token")
    else:
        print(token)
    return 0
