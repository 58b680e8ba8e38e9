"""``doorkeep enroll`` and ``doorkeep cloud``: pairing with a cloud; the cloud's commands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from edge.cli._common import (
    _load_config,
    _setup_logging,
)


def cmd_enroll(args: argparse.Namespace) -> int:
    from edge.sync import enroll_site  # noqa: PLC0415

    config = _load_config(args)
    result = asyncio.run(enroll_site(config, args.url, args.code))
    how = (
        "it adopted this site's policy and secret; every credential keeps working"
        if result["adopted"]
        else "its policy replaces this site's on the first sync"
    )
    print(
        f"enrolled site {result['site_id']} with {args.url}; the cloud now owns the policy ({how})"
    )
    return 0


def cmd_unenroll(args: argparse.Namespace) -> int:
    from edge.sync import unenroll_site  # noqa: PLC0415

    config = _load_config(args)
    result = asyncio.run(unenroll_site(config))
    print(
        f"site {result['site_id']} left the cloud; it keeps its last policy and edits it "
        "locally again (restart `doorkeep run`)"
    )
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
