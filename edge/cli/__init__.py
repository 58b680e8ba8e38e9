"""The ``doorkeep`` command line (INTERFACES.md): the parser and ``main``.

Exit codes: 0 success, 1 a user error (the message says what to change), 2 usage.
Commands that only read or change the policy and logs open the store without the
hardware, so they work beside a running daemon (which picks policy changes up itself).

The commands live in one module per group (``site``, ``policy``, ``logs``, ``tokens``,
``hardware``, ``cloud``); ``_common`` holds what they share.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from doorkeep import __version__
from doorkeep.errors import ConfigError, DoorkeepError, PolicyError
from edge.cli import imports as _imports
from edge.cli._common import UserError
from edge.cli.backup import cmd_backup, cmd_restore
from edge.cli.cloud import cmd_cloud, cmd_enroll, cmd_unenroll
from edge.cli.hardware import cmd_boards, cmd_bus_scan, cmd_discover, cmd_relay_test
from edge.cli.logs import add_commands as add_log_commands
from edge.cli.policy import (
    cmd_decide,
    cmd_policy_apply,
    cmd_policy_export,
    cmd_policy_validate,
)
from edge.cli.readers import cmd_reader_provision
from edge.cli.site import cmd_check, cmd_demo, cmd_init, cmd_run
from edge.cli.status import cmd_status
from edge.cli.tokens import cmd_reader_token, cmd_token_create

__all__ = ["UserError", "build_parser", "main"]


#: Options a user may type before or after the command (INTERFACES.md): defined on the
#: top parser and on every command with SUPPRESS defaults, so whichever is given wins and
#: the default is filled in once, after parsing (``_defaults``).
_SITE_OPTIONS = (
    (("-c", "--config"), {"help": "site.toml (default ./site.toml or $DOORKEEP_CONFIG)"}),
)
_EVERYWHERE = (
    (("-v", "--verbose"), {"action": "store_true", "help": "debug logging"}),
    (
        ("--log-format",),
        {
            "choices": ["text", "json"],
            "help": "text (default) or one JSON object per line ($DOORKEEP_LOG_FORMAT)",
        },
    ),
)
_CLOUD_OPTIONS = (
    (
        ("--db",),
        {
            "metavar": "URL",
            "help": "the cloud database: sqlite:///FILE or postgresql://... "
            "(default $DOORKEEP_CLOUD_DB or sqlite:///doorkeep-cloud.db)",
        },
    ),
    (
        ("--key-dir",),
        {
            "metavar": "DIR",
            "help": "where the signing key lives (default $DOORKEEP_CLOUD_KEYS "
            "or ./doorkeep-cloud-keys); keep it outside the database",
        },
    ),
)


def _add(parser: argparse.ArgumentParser, options: Any) -> None:
    for flags, kwargs in options:
        parser.add_argument(*flags, default=argparse.SUPPRESS, **kwargs)


def _defaults(args: argparse.Namespace) -> argparse.Namespace:
    args.config = getattr(args, "config", None)
    args.verbose = getattr(args, "verbose", False)
    args.log_format = getattr(args, "log_format", None)
    if args.command == "cloud":
        args.db = getattr(args, "db", None) or os.environ.get(
            "DOORKEEP_CLOUD_DB", "sqlite:///doorkeep-cloud.db"
        )
        args.key_dir = getattr(args, "key_dir", None)
    return args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="doorkeep", description="Open-source access controller.")
    parser.add_argument("--version", action="version", version=f"doorkeep {__version__}")
    _add(parser, _EVERYWHERE + _SITE_OPTIONS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def group(name: str, help_: str, parent: Any = sub, **kw: Any) -> Any:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_, description=help_)
        _add(p, _EVERYWHERE + kw.get("options", ()))
        return p.add_subparsers(dest=f"{name}_command", required=True, metavar="ACTION")

    def command(
        name: str,
        fn: Callable[[argparse.Namespace], int],
        help_: str,
        *,
        config: bool = True,
        parent: Any = sub,
        options: Any = (),
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_, description=help_)
        p.set_defaults(fn=fn)
        _add(p, _EVERYWHERE + (_SITE_OPTIONS if config else ()) + options)
        return p

    p = command(
        "init",
        cmd_init,
        "write DIR/site.toml and DIR/data; print the one-time setup code",
        config=False,
    )
    p.add_argument("dir", help="the site's directory (created)")
    p.add_argument("--site-id", default="site", help="the site id, [a-z0-9-] (default: site)")
    p.add_argument("--timezone", default="UTC", help="IANA time zone, e.g. Europe/Berlin")
    p.add_argument(
        "--simulation", action="store_true", help="a simulated site (sim buses and readers)"
    )
    p.add_argument(
        "--tls", action="store_true", help="serve the UI over TLS with a self-signed certificate"
    )
    command(
        "check", cmd_check, "validate site.toml and the stored policy; exit 1 listing every error"
    )
    command("run", cmd_run, "run the site daemon")
    p = command(
        "demo", cmd_demo, "run a throw-away simulated site with a sample policy", config=False
    )
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT of the web UI")
    p.add_argument("--dir", help="keep the demo site in DIR instead of a temporary directory")

    psub = group("policy", "apply, export or validate the policy document")
    p = command(
        "apply", cmd_policy_apply, "replace the site's policy with FILE (- for stdin)", parent=psub
    )
    p.add_argument("file", help="the policy document (JSON), or - for stdin")
    p.add_argument("--actor", default="cli", help="who to name in the audit log")
    p = command(
        "export", cmd_policy_export, "print the policy (credentials as HMACs only)", parent=psub
    )
    p.add_argument("-o", "--output", help="write to FILE instead of stdout")
    p = command(
        "validate", cmd_policy_validate, "check FILE; exit 1 listing every problem", parent=psub
    )
    p.add_argument("file", help="the policy document (JSON), or - for stdin")

    _imports.register(command)  # import / export / template (edge/cli/imports.py)

    p = command("decide", cmd_decide, "a dry-run decision as JSON; changes nothing")
    p.add_argument("--reader", required=True, help="the reader id in site.toml")
    p.add_argument("--kind", required=True, help="pin, rf_card, license_plate, ...")
    p.add_argument(
        "--value",
        required=True,
        help="the credential value; - reads it from stdin (keeps a PIN out of ps and the "
        "shell history)",
    )
    p.add_argument("--at", help="ISO time with offset (default: now)")

    add_log_commands(command)

    tsub = group("token", "API tokens for the REST API")
    p = command(
        "create", cmd_token_create, "print a new API token (shown once, stored hashed)", parent=tsub
    )
    p.add_argument(
        "--role", required=True, choices=["admin", "installer", "viewer"], help="what it may do"
    )
    p.add_argument("--name", help="a name for the audit log (default: role and a unique suffix)")

    rsub = group("reader", "credential readers")
    p = command(
        "token",
        cmd_reader_token,
        'print a new token for one type = "http" reader (shown once, stored hashed; '
        "replaces its old token)",
        parent=rsub,
    )
    p.add_argument("reader", help="the reader id in site.toml")
    p.add_argument("--revoke", action="store_true", help="remove the reader's token instead")
    p.add_argument("--actor", default="cli", help="who to name in the audit log")
    p = command(
        "provision",
        cmd_reader_provision,
        "let an OSDP reader in install mode receive its own Secure Channel key",
        parent=rsub,
    )
    p.add_argument("reader", help='the reader id in site.toml (type = "osdp")')
    p.add_argument(
        "--seconds",
        type=int,
        default=60,
        help="how long the window stays open (10-300, default 60)",
    )

    passphrase = (
        "--passphrase-file",
        {
            "metavar": "FILE",
            "help": "read the encryption passphrase from FILE (- for stdin; or set "
            "$DOORKEEP_BACKUP_PASSPHRASE); never on the command line",
        },
    )
    p = command(
        "backup", cmd_backup, "write a backup of the site (databases, site.toml, keys) to FILE"
    )
    p.add_argument("file", help="the backup file to write")
    p.add_argument(passphrase[0], **passphrase[1])  # type: ignore[arg-type]
    p = command("restore", cmd_restore, "restore a backup onto this gateway")
    p.add_argument("file", help="the backup file")
    p.add_argument(passphrase[0], **passphrase[1])  # type: ignore[arg-type]
    p.add_argument(
        "--dir", help="the site directory to restore into (default: the directory of -c)"
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="replace the site there (its data dir is kept aside, not deleted)",
    )
    p.add_argument("--other-site", action="store_true", help="allow a backup of another site id")

    p = command(
        "status",
        cmd_status,
        "ask the running daemon for every component's health; exit 1 when one is not ok",
    )
    p.add_argument("--json", action="store_true", help="the /health answer as JSON")

    p = command("boards", cmd_boards, "list the hardware catalogue", config=False)
    p.add_argument("--json", action="store_true", help="as JSON")
    bsub = group("bus", "RS485 bus tools (stop the daemon first: one owner per port)")
    p = command("scan", cmd_bus_scan, "list the Modbus addresses that answer on BUS", parent=bsub)
    p.add_argument("bus", help="the bus id in site.toml")
    rsub = group("relay", "relay tools (stop the daemon first: one owner per port)")
    p = command("test", cmd_relay_test, "pulse relay BOARD:N", parent=rsub)
    p.add_argument("target", metavar="BOARD:N", help="board id and 1-based relay channel")
    p.add_argument("--ms", type=int, default=500, help="pulse length in ms (default 500)")

    p = command("discover", cmd_discover, "list doorkeep gateways on the LAN (mDNS)", config=False)
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to listen (default 3)")
    p = command("enroll", cmd_enroll, "pair this site with a cloud using a one-time code")
    p.add_argument("url", help="the cloud service's URL, e.g. https://cloud.example:8700")
    p.add_argument("code", help="the one-time enrollment code from `doorkeep cloud site add`")
    command(
        "unenroll", cmd_unenroll, "leave the cloud: keep the last policy and edit it locally again"
    )

    csub = group("cloud", "the cloud service and its jobs", options=_CLOUD_OPTIONS)

    def cloud_command(name: str, help_: str, parent: Any = csub) -> argparse.ArgumentParser:
        return command(name, cmd_cloud, help_, config=False, parent=parent, options=_CLOUD_OPTIONS)

    p = cloud_command("serve", "run the cloud service")
    p.add_argument("--listen", default="127.0.0.1:8700", help="HOST:PORT (default 127.0.0.1:8700)")
    site = csub.add_parser("site", help="sites", description="sites")
    _add(site, _EVERYWHERE + _CLOUD_OPTIONS)
    ssub = site.add_subparsers(dest="site_command", required=True, metavar="ACTION")
    p = cloud_command("add", "add a site; prints its one-time enrollment code last", ssub)
    p.add_argument("id", help="the site id, [a-z0-9-]")
    p.add_argument("--name", help="a display name (default: the id)")
    p.set_defaults(cloud_command="site-add")
    token_c = csub.add_parser("token", help="admin tokens", description="admin tokens")
    _add(token_c, _EVERYWHERE + _CLOUD_OPTIONS)
    tcsub = token_c.add_subparsers(dest="ctoken_command", required=True, metavar="ACTION")
    p = cloud_command("create", "prints a new admin token last", tcsub)
    p.add_argument("--name", default="admin", help="a name for the token (default: admin)")
    p.set_defaults(cloud_command="token-create")
    p = cloud_command("reconcile", "compare every site with the cloud and repair drift")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.add_argument(
        "--silent-after", type=float, default=3600.0, help="seconds without contact = silent"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = _defaults(parser.parse_args(argv))
    try:
        return int(args.fn(args))
    except PolicyError as err:
        print(f"error: {err}", file=sys.stderr)
        for issue in err.issues:
            print(f"  {issue}", file=sys.stderr)
        return 1
    except (ConfigError, UserError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except DoorkeepError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
