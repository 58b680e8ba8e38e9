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
