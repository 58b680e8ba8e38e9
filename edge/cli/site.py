"""``doorkeep init``, ``check``, ``run`` and ``demo``: setting a site up and running it."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from doorkeep import policydoc
from doorkeep.web.listen import parse_listen
from edge.cli._common import (
    CONFIG_DIR,
    UserError,
    _config_path,
    _load_config,
    _offline_site,
    _read_json,
    _setup_logging,
)


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
    tls = bool(cfg.get("web", {}).get("tls"))  # a real site's default is TLS
    write_site_toml(site_toml, cfg)
    data = target / cfg["site"].get("data_dir", "data")
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    load_or_create_secret(data)
    print(f"wrote {site_toml} and {data}/")
    if tls:  # the certificate whose fingerprint the installer compares (docs/security.md)
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
    """Validate site.toml and the stored policy; never writes anything (not even a secret)."""
    from edge.store import StoreError, read_policy  # noqa: PLC0415

    config = _load_config(args)
    data_dir = config.site.data_dir
    if not data_dir.is_dir():
        raise UserError(
            f"{_config_path(args)}: [site] data_dir {str(data_dir)!r} does not exist; "
            "create it (mode 0700, owned by the daemon's user) or fix data_dir"
        )
    try:
        stored = read_policy(data_dir / "doorkeep.db")
    except StoreError as err:
        raise UserError(str(err)) from err
    doc = stored.doc if stored is not None else policydoc.empty_document()
    problems = [
        str(i) for i in policydoc.validate_document(doc, doors={d.id for d in config.doors})
    ]
    if problems:
        print(
            f"{_config_path(args)}: the stored policy has {len(problems)} problem(s):",
            file=sys.stderr,
        )
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    policy = "no policy stored yet" if stored is None else f"policy version {stored.version}"
    print(
        f"{_config_path(args)}: configuration and policy are valid "
        f"({len(config.doors)} doors, {len(config.readers)} readers, {len(config.boards)} boards;"
        f" {policy})"
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
    try:  # before anything is made: a bad address leaves nothing behind
        parse_listen(args.listen)
    except ValueError as err:
        raise UserError(f"--listen: {err}") from err
    keep = Path(args.dir) if args.dir else None
    root = keep or Path(tempfile.mkdtemp(prefix="doorkeep-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    try:  # a throw-away site goes, however the demo ends
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
        print(f"doorkeep demo: a simulated site in {root} (simulated RS485 boards on ptys)")
        print("  try:  PIN 1234 at gate-in, card 00209CBF, visitor PIN 91487640 (docs/demo.md)")
        asyncio.run(run_daemon(config))
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0
