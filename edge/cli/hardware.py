"""``doorkeep boards``, ``bus``, ``relay`` and ``discover``: the hardware and the LAN."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from edge.cli._common import (
    UserError,
    _load_config,
    _print_json,
)

if TYPE_CHECKING:  # imported when the command runs
    from edge.hardware import Hardware


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
async def _hardware(args: argparse.Namespace) -> AsyncIterator[Hardware]:
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
