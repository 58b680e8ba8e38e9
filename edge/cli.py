"""The ``doorkeep`` command line (INTERFACES.md).

Exit codes: 0 success, 1 a user error (the message says what to change), 2 usage.
Commands that only read or change the policy and logs open the store without the
hardware, so they work beside a running daemon (which picks policy changes up itself).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from doorkeep import __version__, policydoc
from doorkeep.errors import ConfigError, DoorkeepError, PolicyError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


class UserError(DoorkeepError):
    """A mistake the user can fix; printed without a traceback, exit 1."""


def _config_path(args: argparse.Namespace) -> Path:
    return Path(args.config or os.environ.get("DOORKEEP_CONFIG") or "site.toml")


def _load_config(args: argparse.Namespace) -> Any:
    from edge.config import load_site_config  # noqa: PLC0415
    from edge.hardware import Hardware  # noqa: PLC0415

    return load_site_config(_config_path(args), board_types=Hardware.board_types())


@contextlib.asynccontextmanager
async def _offline_site(args: argparse.Namespace) -> AsyncIterator[Any]:
    """The site's store and policy, without opening any bus or board."""
    from edge.service import Site  # noqa: PLC0415

    async with Site.open(_load_config(args), with_hardware=False) as site:
        yield site


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def _read_json(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise UserError(f"{path}: cannot be read: {err.strerror}") from err
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(
            f"{path}: not JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from err


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


# --- init, check, run, demo ----------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from edge.auth import AuthStore  # noqa: PLC0415
    from edge.config import default_site_dict, write_site_toml  # noqa: PLC0415
    from edge.service import load_or_create_secret  # noqa: PLC0415

    target = Path(args.dir)
    site_toml = target / "site.toml"
    if site_toml.exists():
        raise UserError(f"{site_toml} exists already; choose an empty directory")
    target.mkdir(parents=True, exist_ok=True)
    cfg = default_site_dict(args.site_id, args.timezone, args.simulation)
    if args.tls:
        cfg.setdefault("web", {})["tls"] = True
    write_site_toml(site_toml, cfg)
    data = target / cfg["site"].get("data_dir", "data")
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    load_or_create_secret(data)
    print(f"wrote {site_toml} and {data}/")
    if args.tls:
        from edge.tls import ensure_certificate, fingerprint  # noqa: PLC0415

        cert, _key = ensure_certificate(data, hostname=f"doorkeep-{args.site_id}.local")
        print(f"TLS certificate fingerprint (SHA-256): {fingerprint(cert)}")
    auth = AuthStore.open(data / "auth.db")
    try:
        code = auth.new_setup_code()
    finally:
        auth.close()
    print(f"one-time setup code (create the admin account in the web UI with it): {code}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from edge.service import Site  # noqa: PLC0415

    config = _load_config(args)

    async def run() -> list[str]:
        async with Site.open(config, with_hardware=False) as site:
            issues = policydoc.validate_document(
                site.policy_document(), doors={d.id for d in config.doors}
            )
            return [str(i) for i in issues]

    problems = asyncio.run(run())
    if problems:
        print(
            f"{_config_path(args)}: the stored policy has {len(problems)} problem(s):",
            file=sys.stderr,
        )
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(
        f"{_config_path(args)}: configuration and policy are valid "
        f"({len(config.doors)} doors, {len(config.readers)} readers, {len(config.boards)} boards)"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from edge.daemon import run_daemon  # noqa: PLC0415

    _setup_logging(args)
    asyncio.run(run_daemon(_load_config(args)))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """A throw-away simulated site with the sample policy; Ctrl-C ends it."""
    from edge.daemon import run_daemon  # noqa: PLC0415

    _setup_logging(args)
    keep = Path(args.dir) if args.dir else None
    root = keep or Path(tempfile.mkdtemp(prefix="doorkeep-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    site_toml = root / "site.toml"
    if not site_toml.exists():
        text = (CONFIG_DIR / "demo-site.toml").read_text()
        text = text.replace('listen = "127.0.0.1:8080"', f'listen = "{args.listen}"')
        site_toml.write_text(text)
    ns = argparse.Namespace(config=str(site_toml))
    config = _load_config(ns)

    async def prepare() -> None:
        async with _offline_site(ns) as site:
            if site.snapshot.version == 0:
                await site.apply_policy(
                    _read_json(str(CONFIG_DIR / "demo-policy.json")), actor="demo"
                )

    asyncio.run(prepare())
    print(f"doorkeep demo: a simulated site in {root} (simulated RS485 boards on pseudo-terminals)")
    print("  try:  PIN 1234 at gate-in, card 00209CBF, visitor PIN 91487640 — see docs/demo.md")
    try:
        asyncio.run(run_daemon(config))
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


# --- policy --------------------------------------------------------------------------


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


# --- decide, events, tokens ----------------------------------------------------------


def cmd_decide(args: argparse.Namespace) -> int:
    at = _parse_at(args.at)

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


def cmd_token_create(args: argparse.Namespace) -> int:
    from edge.auth import AuthStore  # noqa: PLC0415
    from edge.daemon import auth_path  # noqa: PLC0415

    config = _load_config(args)
    auth = AuthStore.open(auth_path(config))
    try:
        token = auth.create_token(
            args.role, args.name or f"{args.role}-{datetime.now(UTC):%Y%m%d%H%M%S}"
        )
    except ValueError as err:
        raise UserError(str(err)) from err
    finally:
        auth.close()
    print(token)
    return 0


# --- hardware ------------------------------------------------------------------------


def cmd_boards(args: argparse.Namespace) -> int:
    from drivers.catalogue import list_board_types  # noqa: PLC0415

    rows = list_board_types()
    if args.json:
        _print_json(rows)
        return 0
    print(f"{'type':28} {'relays':>6} {'inputs':>6}  {'transport':10} description")
    for row in rows:
        counts = f"{row['relays']:>6} {row['inputs']:>6}"
        print(f"{row['name']:28} {counts}  {row['transport']:10} {row['description']}")
    return 0


@contextlib.asynccontextmanager
async def _hardware(args: argparse.Namespace) -> AsyncIterator[Any]:
    from edge.hardware import Hardware  # noqa: PLC0415

    async with Hardware.open(_load_config(args), start=False) as hw:
        yield hw


def cmd_bus_scan(args: argparse.Namespace) -> int:
    async def run() -> list[int]:
        async with _hardware(args) as hw:
            return await hw.scan(args.bus)

    found = asyncio.run(run())
    print(f"bus {args.bus}: {len(found)} board(s) answer: {', '.join(map(str, found)) or 'none'}")
    return 0


def cmd_relay_test(args: argparse.Namespace) -> int:
    board, _, channel = args.target.partition(":")
    if not channel.isdigit():
        raise UserError(f"{args.target!r}: write BOARD:N, e.g. relays-a:1")

    async def run() -> bool:
        async with _hardware(args) as hw:
            return (await hw.relay_test(board, int(channel), args.ms)).confirmed

    ok = asyncio.run(run())
    outcome = f"pulsed for {args.ms} ms" if ok else "board did not answer"
    print(f"relay {args.target}: {outcome}")
    return 0 if ok else 1


def cmd_discover(args: argparse.Namespace) -> int:
    from edge.mdns import discover  # noqa: PLC0415

    gateways = asyncio.run(discover(args.timeout))
    if not gateways:
        print("no doorkeep gateway answered on this network")
        return 0
    for gw in gateways:
        print(
            f"{gw.site_id:20} {gw.name:30} {gw.url}"
            + (f"  TLS {gw.fingerprint}" if gw.fingerprint else "")
        )
    return 0


# --- cloud ---------------------------------------------------------------------------


def cmd_enroll(args: argparse.Namespace) -> int:
    from edge.sync import enroll_site  # noqa: PLC0415

    config = _load_config(args)
    result = asyncio.run(enroll_site(config, args.url, args.code))
    print(f"enrolled site {result['site_id']} with {args.url}; the cloud now owns the policy")
    return 0


def cmd_cloud(args: argparse.Namespace) -> int:
    from cloud_sync import commands  # noqa: PLC0415
    from cloud_sync.service import serve  # noqa: PLC0415

    key_dir = getattr(args, "key_dir", None) or commands.key_dir_default()
    if args.cloud_command == "serve":
        _setup_logging(args)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(
                serve(
                    args.db,
                    args.listen,
                    key_dir,
                    ready=lambda: print(
                        f"doorkeep cloud: serving http://{args.listen}/", flush=True
                    ),
                )
            )
        return 0
    if args.cloud_command == "site-add":
        code = asyncio.run(
            commands.site_add(args.db, args.id, name=args.name or args.id, key_dir=key_dir)
        )
        print(
            f"site {args.id} added; one-time enrollment code (use with `doorkeep enroll URL CODE`):"
        )
        print(code)
        return 0
    if args.cloud_command == "token-create":
        token = asyncio.run(commands.token_create(args.db, name=args.name, key_dir=key_dir))
        print("admin token (shown once; send it as 'Authorization: Bearer ...'):")
        print(token)
        return 0
    report = asyncio.run(
        commands.reconcile(args.db, key_dir=key_dir, silent_after_s=args.silent_after)
    )
    print(report.to_json() if args.json else report.table())
    return 0


# --- parser --------------------------------------------------------------------------


def _setup_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if getattr(args, "verbose", False) else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pymodbus").setLevel(
        logging.WARNING
    )  # its INFO lines are per-request chatter


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


if __name__ == "__main__":
    sys.exit(main())
