"""Car parks: counted by their readers' grants over real HTTP and a real site; a full lot
refuses or alarms; counts survive a restart; site.toml mistakes are named."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.config import SiteConfigError, parse_site_config
from edge.config.parking import ParkingSection
from edge.service import Site
from edge.site.parking import Parking
from tests.edge.readers.garage import GARAGE_RELAY, PLATE, UHF, garage, site_toml

PLATE_READ = {"kind": "license_plate", "value": "ab 123-cd"}
UHF_READ = {"kind": "uhf_card", "value": UHF}
TOM_READ = {"kind": "license_plate", "value": "TOM1"}


async def test_counts_go_up_on_entry_and_down_on_exit(tmp_path: Path) -> None:
    async with garage(tmp_path) as g:
        assert (await g.parking())["occupied"] == 0
        _, body = await g.post("garage-lpr", PLATE_READ)
        assert body["granted"] is True
        lot = await g.parking()
        assert lot["occupied"] == 1 and lot["capacity"] == 2
        assert [v["person"] for v in lot["vehicles"]] == ["p-judy"]
        assert datetime.fromisoformat(lot["vehicles"][0]["since"]).tzinfo is not None
        await g.post("garage-lpr", UHF_READ)
        assert (await g.parking())["occupied"] == 2
        _, body = await g.post("garage-exit", PLATE_READ)
        assert body["granted"] is True
        lot = await g.parking()
        assert lot["occupied"] == 1 and [v["person"] for v in lot["vehicles"]] == ["p-cathy"]
        events, _ = await g.site.events(type="access")
        out, *_ = events
        assert out["reader"] == "garage-exit"
        parking = out["detail"]["parking"]
        assert parking["lot"] == "garage" and parking["direction"] == "out"
        assert parking["counted_in"] is True and parking["occupied"] == 1
        assert parking["duration_s"] >= 0 and parking["since"]
        assert events[-1]["detail"]["parking"]["direction"] == "in"
        assert PLATE.replace(" ", "") not in str(events)


async def test_a_denied_read_counts_nothing(tmp_path: Path) -> None:
    async with garage(tmp_path) as g:
        _, body = await g.post("garage-lpr", {"kind": "license_plate", "value": "XX 1"})
        assert body["granted"] is False
        assert (await g.parking())["occupied"] == 0
        await g.post("garage-lpr", PLATE_READ)
        _, body = await g.post("garage-exit", {"kind": "license_plate", "value": "XX 1"})
        assert body["granted"] is False
        assert (await g.parking())["occupied"] == 1


async def test_the_parking_duration_is_in_the_exit_event(tmp_path: Path) -> None:
    async with garage(tmp_path) as g:
        tz = ZoneInfo("Europe/Berlin")
        t0 = datetime(2026, 11, 20, 8, 0, tzinfo=tz)
        await g.site.present("garage-lpr", "license_plate", PLATE, at=t0)
        answer = await g.site.present(
            "garage-exit", "license_plate", PLATE, at=t0 + timedelta(hours=2, minutes=30)
        )
        assert answer["granted"] is True
        (out, _), _ = await g.site.events(type="access")
        assert out["detail"]["parking"]["duration_s"] == 9000
        assert datetime.fromisoformat(out["detail"]["parking"]["since"]) == t0


async def test_an_exit_never_counted_in_does_not_go_negative(tmp_path: Path) -> None:
    async with garage(tmp_path) as g:
        _, body = await g.post("garage-exit", UHF_READ)
        assert body["granted"] is True  # the gate opens: counting never keeps a car in
        lot = await g.parking()
        assert lot["occupied"] == 0
        (out,), _ = await g.site.events(type="access")
        assert out["detail"]["parking"] == {
            "lot": "garage",
            "direction": "out",
            "counted_in": False,
            "occupied": 0,
        }
        await g.post("garage-lpr", PLATE_READ)
        assert (await g.parking())["occupied"] == 1


async def test_a_vehicle_entering_twice_is_counted_once(tmp_path: Path) -> None:
    async with garage(tmp_path) as g:
        await g.post("garage-lpr", PLATE_READ)
        await g.post("garage-lpr", PLATE_READ)  # its exit was missed
        assert (await g.parking())["occupied"] == 1


async def test_a_full_lot_refuses_entry_with_parking_full(tmp_path: Path) -> None:
    async with garage(tmp_path, capacity=1) as g:
        await g.post("garage-lpr", PLATE_READ)
        pulses = len(g.pulses())
        resp, body = await g.post("garage-lpr", UHF_READ)
        assert resp.status == 200
        assert body["granted"] is False and body["reason"] == "parking_full"
        assert len(g.pulses()) == pulses  # the barrier stayed down
        assert (await g.parking())["occupied"] == 1
        # an unknown plate is still told it is unknown, not that the lot is full
        _, body = await g.post("garage-lpr", {"kind": "license_plate", "value": "XX 1"})
        assert body["reason"] == "unknown_credential"
        # the dry run explains it the same way
        assert str(g.site.dry_run("garage-lpr", "uhf_card", UHF).reason) == "parking_full"
        # exits are never refused, and a freed space lets the next car in
        _, body = await g.post("garage-exit", PLATE_READ)
        assert body["granted"] is True
        _, body = await g.post("garage-lpr", UHF_READ)
        assert body["granted"] is True
        events, _ = await g.site.events(type="access", result="failed")
        assert "parking_full" in [e["reason"] for e in events]


async def test_allow_and_alarm_lets_the_car_in_and_alarms_once(tmp_path: Path) -> None:
    async with garage(tmp_path, capacity=1, when_full="allow_and_alarm") as g:

        async def full_alarms() -> int:
            return len([a for a in await g.site.alarms() if a["kind"] == "parking_full"])

        await g.post("garage-lpr", PLATE_READ)
        assert await full_alarms() == 0  # full now, but nobody was let in over capacity yet
        _, body = await g.post("garage-lpr", UHF_READ)
        assert body["granted"] is True
        assert g.pulses()[-1] == GARAGE_RELAY
        lot = await g.parking()
        assert lot["occupied"] == 2 and lot["capacity"] == 1
        assert await full_alarms() == 1
        await g.post("garage-lpr", TOM_READ)
        assert await full_alarms() == 1  # once per full spell
        for read in (PLATE_READ, UHF_READ):
            await g.post("garage-exit", read)
        assert (await g.parking())["occupied"] == 1
        await g.post("garage-exit", TOM_READ)  # below capacity: the spell is over
        await g.post("garage-lpr", PLATE_READ)
        await g.post("garage-lpr", UHF_READ)
        assert await full_alarms() == 2
        alarm = next(a for a in await g.site.alarms() if a["kind"] == "parking_full")
        assert alarm["source"] == "parking:garage"


async def test_counts_survive_a_restart(tmp_path: Path) -> None:
    async with garage(tmp_path) as g:
        await g.post("garage-lpr", PLATE_READ)
        await g.post("garage-lpr", UHF_READ)
        await g.post("garage-exit", UHF_READ)
        before = await g.parking()
    async with Site.open(tmp_path / "site.toml") as site:
        (after,) = site.parking.status()
        assert after["occupied"] == 1
        assert after["vehicles"] == before["vehicles"]
        answer = await site.present("garage-exit", "license_plate", PLATE)
        assert answer["granted"] is True
        assert site.parking.status()[0]["occupied"] == 0
        # the memory table keeps credential ids, never a plate
        rows = site.store.load_memory_rows()
        assert not any(PLATE.replace(" ", "") in str(r) for r in rows.items())


async def test_the_full_spell_of_an_alarming_lot_survives_a_restart(tmp_path: Path) -> None:
    async with garage(tmp_path, capacity=1, when_full="allow_and_alarm") as g:
        await g.post("garage-lpr", PLATE_READ)
        await g.post("garage-lpr", UHF_READ)  # over capacity: the alarm of this spell
    async with Site.open(tmp_path / "site.toml") as site:
        assert (await site.present("garage-lpr", "license_plate", "TOM 1"))["granted"]
        assert len([a for a in await site.alarms() if a["kind"] == "parking_full"]) == 1
        for plate in (PLATE, "TOM 1"):
            await site.present("garage-exit", "license_plate", plate)
        await site.present("garage-exit", "uhf_card", UHF)
    async with Site.open(tmp_path / "site.toml") as site:  # an exactly full lot, no alarm yet
        await site.present("garage-lpr", "license_plate", PLATE)
    async with Site.open(tmp_path / "site.toml") as site:
        await site.present("garage-lpr", "uhf_card", UHF)
        assert len([a for a in await site.alarms() if a["kind"] == "parking_full"]) == 2


async def test_a_full_refusing_lot_stays_full_after_a_restart(tmp_path: Path) -> None:
    async with garage(tmp_path, capacity=1) as g:
        await g.post("garage-lpr", PLATE_READ)
    async with Site.open(tmp_path / "site.toml") as site:
        answer = await site.present("garage-lpr", "uhf_card", UHF)
        assert answer["reason"] == "parking_full"


def _parse(extra: str) -> list[str]:
    text = site_toml().split("[[parking]]")[0] + extra
    with pytest.raises(SiteConfigError) as info:
        parse_site_config(text, "/x/site.toml")
    return info.value.problems


def test_site_toml_mistakes_in_parking_are_named() -> None:
    problems = _parse(
        '[[parking]]\nid = "p1"\ncapacity = 0\nentry = ["nope"]\nexit = ["garage-exit"]\n'
        '[[parking]]\nid = "p2"\ncapacity = 3\nentry = ["garage-lpr"]\nexit = ["garage-lpr"]\n'
        'when_full = "shrug"\n'
        '[[parking]]\nid = "p3"\ncapacity = 3\nentry = ["garage-exit"]\n'
    )
    text = "\n".join(problems)
    assert "[[parking]] \"p1\" key 'capacity': must be between 1 and 100000" in text
    assert "[[parking]] \"p1\" key 'entry': 'nope' is not a [[reader]] id" in text
    assert "[[parking]] \"p2\" key 'exit': reader 'garage-lpr' already counts for" in text
    assert "[[parking]] \"p2\" key 'when_full': must be one of refuse, allow_and_alarm" in text
    assert "[[parking]] \"p3\" key 'entry': reader 'garage-exit' already counts for" in text


def test_a_lot_needs_an_entry_reader_and_its_keys() -> None:
    problems = "\n".join(_parse('[[parking]]\nid = "p1"\nentry = []\nwho = 1\n'))
    assert "key 'capacity': is missing" in problems
    assert "key 'entry': must name at least one reader" in problems
    assert "key 'who': is not a known key" in problems


def test_a_valid_lot_is_parsed() -> None:
    config = parse_site_config(site_toml(capacity=40), "/x/site.toml")
    (lot,) = config.parking
    assert (lot.id, lot.name, lot.capacity, lot.entry, lot.exit, lot.when_full) == (
        "garage",
        "Garage",
        40,
        ("garage-lpr",),
        ("garage-exit",),
        "refuse",
    )


# --- the counter on its own: invariants over any sequence of grants ------------------


_TZ = ZoneInfo("Europe/Berlin")
_T0 = datetime(2026, 11, 20, 8, 0, tzinfo=_TZ)
_READS = st.lists(
    st.tuples(st.sampled_from(["in", "out", "elsewhere"]), st.integers(0, 5)), max_size=60
)


@given(reads=_READS, capacity=st.integers(1, 4))
def test_occupancy_is_the_vehicles_inside_never_negative_and_survives_a_reload(
    reads: list[tuple[str, int]], capacity: int
) -> None:
    lot = ParkingSection("p", "P", capacity, ("in",), ("out",), "allow_and_alarm")
    parking = Parking([lot], {}, tz=_TZ)
    rows: dict[str, object] = {}
    inside: set[int] = set()
    alarms = 0
    for i, (reader, car) in enumerate(reads):
        counted = parking.count(
            reader, person=f"p{car}", credential=f"c{car}", temp_key=None,
            at=_T0 + timedelta(minutes=i),
        )  # fmt: skip
        if reader == "elsewhere":
            assert counted is None
            continue
        assert counted is not None
        was_full = len(inside) >= capacity and car not in inside
        (inside.add if reader == "in" else inside.discard)(car)
        alarms += counted.alarm is not None
        if counted.alarm is not None:
            assert was_full
        rows.update(counted.rows)
        (status,) = parking.status()
        assert status["occupied"] == len(inside) >= 0
        assert {v["credential"] for v in status["vehicles"]} == {f"c{c}" for c in inside}
        assert counted.detail["occupied"] == len(inside)
    assert alarms <= len(reads)
    kept = {k: v for k, v in rows.items() if v is not None}
    assert Parking([lot], kept, tz=_TZ).status() == parking.status()


@given(reads=_READS)
def test_a_refusing_lot_refuses_exactly_when_full(reads: list[tuple[str, int]]) -> None:
    lot = ParkingSection("p", "P", 2, ("in",), ("out",), "refuse")
    parking = Parking([lot], {}, tz=_TZ)
    for i, (reader, car) in enumerate(reads):
        if reader == "in" and "in" in parking.refusing():
            continue  # the engine denies it: nothing is counted
        parking.count(
            reader, person=f"p{car}", credential=f"c{car}", temp_key=None,
            at=_T0 + timedelta(minutes=i),
        )  # fmt: skip
        (status,) = parking.status()
        assert status["occupied"] <= 2
        assert ("in" in parking.refusing()) == (status["occupied"] >= 2)
