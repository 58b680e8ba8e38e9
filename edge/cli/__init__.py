"""The ``doorkeep`` command line (INTERFACES.md): the parser and ``main``.

Exit codes: 0 success, 1 a user error (the message says what to change), 2 usage.
Commands that only read or change the policy and logs open the store without the
hardware, so they work beside a running daemon (which picks policy changes up itself).

The commands live in one module per group (``site``, ``policy``, ``tokens``, ``hardware``,
``cloud``); ``_common`` holds what they share.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from doorkeep import __version__
from doorkeep.errors import ConfigError, DoorkeepError, PolicyError
from edge.cli._common import UserError
from edge.cli.cloud import cmd_cloud, cmd_enroll, cmd_unenroll
from edge.cli.hardware import cmd_boards, cmd_bus_scan, cmd_discover, cmd_relay_test
from edge.cli.policy import (
    cmd_decide,
    cmd_events,
    cmd_policy_apply,
    cmd_policy_export,
    cmd_policy_validate,
)
from edge.cli.site import cmd_check, cmd_demo, cmd_init, cmd_run
from edge.cli.tokens import cmd_token_create

__all__ = ["UserError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="doorkeep", description="Open-source access controller.")
    parser.add_argument("--version", action="version", version=f"doorkeep {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str,
        fn: Callable[[argparse.Namespace], int],
        help_: str,
        *,
        config: bool = True,
        parent: Any = sub,
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_, description=help_)
        p.set_defaults(fn=fn)
        if config:
            p.add_argument(
                "-c", "--config", help="site.toml (default ./site.toml or $DOORKEEP_CONFIG)"
            )
        return p

    p = command(
        "init",
        cmd_init,
        "write DIR/site.toml and DIR/data; print the one-time setup code",
        config=False,
    )
    p.add_argument("dir")
    p.add_argument("--site-id", default="site")
    p.add_argument("--timezone", default="UTC")
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
    p.add_argument("--listen", default="127.0.0.1:8080")
    p.add_argument("--dir", help="keep the demo site in DIR instead of a temporary directory")

    policy = sub.add_parser("policy", help="apply, export or validate the policy document")
    psub = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    p = command(
        "apply", cmd_policy_apply, "replace the site's policy with FILE (- for stdin)", parent=psub
    )
    p.add_argument("file")
    p.add_argument("--actor", default="cli", help="who to name in the audit log")
    p = command(
        "export", cmd_policy_export, "print the policy (credentials as HMACs only)", parent=psub
    )
    p.add_argument("-o", "--output")
    p = command(
        "validate", cmd_policy_validate, "check FILE; exit 1 listing every problem", parent=psub
    )
    p.add_argument("file")

    p = command("decide", cmd_decide, "a dry-run decision as JSON; changes nothing")
    p.add_argument("--reader", required=True)
    p.add_argument("--kind", required=True)
    p.add_argument("--value", required=True)
    p.add_argument("--at", help="ISO time with offset (default: now)")

    p = command("events", cmd_events, "search and export the door and alarm log")
    p.add_argument("--since")
    p.add_argument("--until")
    p.add_argument("--type", choices=["access", "door", "alarm", "emergency", "system"])
    p.add_argument("--door")
    p.add_argument("--person")
    p.add_argument("--result", choices=["success", "failed", "offline"])
    p.add_argument("--limit", type=int, default=10_000)
    p.add_argument("--format", choices=["json", "csv", "xlsx"], default="json")
    p.add_argument("-o", "--output")

    token = sub.add_parser("token", help="API tokens for the REST API")
    tsub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    p = command(
        "create", cmd_token_create, "print a new API token (shown once, stored hashed)", parent=tsub
    )
    p.add_argument("--role", required=True, choices=["admin", "installer", "viewer"])
    p.add_argument("--name")

    p = command("boards", cmd_boards, "list the hardware catalogue", config=False)
    p.add_argument("--json", action="store_true")
    bus = sub.add_parser("bus", help="RS485 bus tools (stop the daemon first: one owner per port)")
    bsub = bus.add_subparsers(dest="bus_command", required=True, metavar="ACTION")
    p = command("scan", cmd_bus_scan, "list the Modbus addresses that answer on BUS", parent=bsub)
    p.add_argument("bus")
    relay = sub.add_parser("relay", help="relay tools (stop the daemon first: one owner per port)")
    rsub = relay.add_subparsers(dest="relay_command", required=True, metavar="ACTION")
    p = command("test", cmd_relay_test, "pulse relay BOARD:N", parent=rsub)
    p.add_argument("target", metavar="BOARD:N")
    p.add_argument("--ms", type=int, default=500)

    p = command("discover", cmd_discover, "list doorkeep gateways on the LAN (mDNS)", config=False)
    p.add_argument("--timeout", type=float, default=3.0)
    p = command("enroll", cmd_enroll, "pair this site with a cloud using a one-time code")
    p.add_argument("url")
    p.add_argument("code")
    command(
        "unenroll", cmd_unenroll, "leave the cloud: keep the last policy and edit it locally again"
    )

    cloud = sub.add_parser("cloud", help="the cloud service and its jobs")
    cloud.add_argument(
        "--db", default=os.environ.get("DOORKEEP_CLOUD_DB", "sqlite:///doorkeep-cloud.db")
    )
    csub = cloud.add_subparsers(dest="cloud_command", required=True, metavar="ACTION")
    cloud.add_argument(
        "--key-dir",
        help="where the signing key lives (default $DOORKEEP_CLOUD_KEYS "
        "or ./doorkeep-cloud-keys); keep it outside the database",
    )
    p = command("serve", cmd_cloud, "run the cloud service", config=False, parent=csub)
    p.add_argument("--listen", default="127.0.0.1:8700")
    site = csub.add_parser("site", help="sites")
    ssub = site.add_subparsers(dest="site_command", required=True, metavar="ACTION")
    p = command(
        "add",
        cmd_cloud,
        "add a site; prints its one-time enrollment code last",
        config=False,
        parent=ssub,
    )
    p.add_argument("id")
    p.add_argument("--name")
    p.set_defaults(cloud_command="site-add")
    token_c = csub.add_parser("token", help="admin tokens")
    tcsub = token_c.add_subparsers(dest="ctoken_command", required=True, metavar="ACTION")
    p = command("create", cmd_cloud, "prints a new admin token last", config=False, parent=tcsub)
    p.add_argument("--name", default="admin")
    p.set_defaults(cloud_command="token-create")
    p = command(
        "reconcile",
        cmd_cloud,
        "compare every site with the cloud and repair drift",
        config=False,
        parent=csub,
    )
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--silent-after", type=float, default=3600.0, help="seconds without contact = silent"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
