"""The shipped demo site (config/demo-site.toml + config/demo-policy.json) runs as documented."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edge.service import Site

from .conftest import ROOT, until


@pytest.fixture
async def demo(tmp_path: Path):
    shutil.copy(ROOT / "config" / "demo-site.toml", tmp_path / "site.toml")
    async with Site.open(tmp_path / "site.toml") as site:
        await site.apply_policy(
            json.loads((ROOT / "config" / "demo-policy.json").read_text()), actor="demo"
        )
        yield site


def lift_relays(site: Site) -> list[bool]:
    return site.hw.sims["rs485-2"].board(1).coils


async def test_lift_card_enables_exactly_the_persons_floors(demo: Site):
    result = await demo.present("lift-b1-car", "rf_card", "00209CBF")
    assert result["granted"] and sorted(result["floors"]) == ["1", "7"]
    coils = lift_relays(demo)
    # floor outputs: G0 -> relay 1, floor 1 -> relay 2, floor 2 -> relay 3, floor 7 -> relay 8
    assert coils[1] and coils[7] and not coils[0] and not coils[2]
    events, _ = await demo.events(type="access")
    assert events[0]["detail"]["floors"] == ["1", "7"]


async def test_gate_anti_passback_needs_an_exit_before_the_next_entry(demo: Site):
    assert (await demo.present("gate-in", "pin", "1234"))["granted"]
    assert (await demo.present("gate-in", "pin", "1234"))["reason"] == "anti_passback"
    assert (await demo.present("gate-out", "pin", "1234"))["granted"]
    assert (await demo.present("gate-in", "pin", "1234"))["granted"]


async def test_demo_guide_examples_hold(demo: Site):
    assert (await demo.present("parcel-in", "pin", "1234"))["reason"] == "no_access"
    results = [await demo.present(r, "pin", "91487640") for r in ("lobby-in", "parcel-in") * 4]
    # 2 uses per door x 3 doors = 6 grants in all, at any of its doors
    assert [r["granted"] for r in results] == [True] * 6 + [False] * 2
    assert results[-1]["reason"] == "temp_key_used_up"
    await until(lambda: demo.door("lobby")["state"] == "locked", timeout=5)
