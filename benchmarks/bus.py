"""Relay command to acknowledgement latency on the simulated RS485 bus.

Run: .venv/bin/python benchmarks/bus.py [--samples 300] [--boards 4] [--path bus|presentation|both]

``--path presentation`` measures the whole site path instead of one bus request: a PIN
presented to ``Site.present`` -> decision -> door machine -> relay "flash on" -> board's
answer, timed from the call to the moment the relay command is acknowledged (the event
row is written after that and is not counted). "Polled" there means every board's inputs
are read at 10 Hz by the daemon's own door-input pollers (each door has a contact and an
exit button wired).

For each baud rate (9600, 115200) and load (idle; every board's 8 inputs polled at 10 Hz),
sends Waveshare "flash on" commands (FC05, 8-byte request, 8-byte echo) at COMMAND priority
at random moments and times ``Bus.request`` from call to returned answer. The simulator
holds every frame for its real wire time, so results compare with:

- wire time of one exchange: request + t3.5 (slave sees the end) + response;
- the brief's lower bound: request + response + 2 x t3.5 (24.0 ms at 9600 8N1).

"End-to-end overhead" = measured - wire time of one exchange: it includes the simulator's
own four pty hops and pymodbus' server, which a real line does not have. "Bus overhead" is
our code alone: call -> frame written, plus last answer byte read -> answer returned
(taken idle, where nothing else waits in front). Under load a command may find a poll
already on the wire; priority ordering means it waits for that one frame, no more.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rs485 import rtu
from rs485.bus import Bus, Priority
from rs485.sim import SimulatedBus

POLL_HZ = 10
READ_INPUTS = rtu.pdu_read_bits(2, 0, 8)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def poller(bus: Bus, address: int) -> None:
    # Offset each board's phase so polls spread over the period, as a real poll loop would.
    await asyncio.sleep(random.uniform(0, 1 / POLL_HZ))
    while True:
        started = time.perf_counter()
        await bus.request(address, READ_INPUTS, priority=Priority.POLL)
        await asyncio.sleep(max(0.0, 1 / POLL_HZ - (time.perf_counter() - started)))


async def scenario(baud: int, boards: int, samples: int, *, loaded: bool) -> dict[str, float]:
    layout = dict.fromkeys(range(1, boards + 1), "waveshare-rtu-relay-8d")
    async with (
        SimulatedBus(layout, baudrate=baud) as sim,
        Bus("bench", sim.port, baudrate=baud) as bus,
    ):
        pollers = [asyncio.create_task(poller(bus, a)) for a in layout] if loaded else []
        await asyncio.sleep(0.3)
        latencies, own = [], []
        marks: dict[str, float] = {}
        link = bus._link
        real_write, real_feed = link.write, link._feed

        def write(data: bytes) -> None:
            marks.setdefault("write", time.perf_counter())
            real_write(data)

        def feed(data: bytes) -> None:
            marks["rx"] = time.perf_counter()
            real_feed(data)

        link.write, link._feed = write, feed  # type: ignore[method-assign]
        for _ in range(samples):
            # Random gaps: commands land at every phase of the poll traffic.
            await asyncio.sleep(random.uniform(0.005, 0.05))
            address = random.randint(1, boards)
            pdu = rtu.pdu_write_coil(0x0200 + random.randrange(8), 30)
            marks.clear()
            started = time.perf_counter()
            await bus.request(address, pdu, priority=Priority.COMMAND)
            done = time.perf_counter()
            latencies.append((done - started) * 1000)
            own.append(((marks["write"] - started) + (done - marks["rx"])) * 1000)
        for task in pollers:
            task.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)
        del sim
    return {
        **summary(baud, latencies, loaded=loaded),
        "bus_p50_ms": pct(own, 50),
        "bus_p99_ms": pct(own, 99),
    }


def summary(baud: int, latencies: list[float], *, loaded: bool) -> dict[str, float]:
    """Percentiles of one run, with the wire-time figures they are compared against."""
    exchange = (2 * rtu.frame_time(8, baud) + rtu.t35(baud)) * 1000
    bound = (2 * rtu.frame_time(8, baud) + 2 * rtu.t35(baud)) * 1000
    p50, p99 = pct(latencies, 50), pct(latencies, 99)
    return {
        "baud": baud,
        "loaded": loaded,
        "exchange_ms": exchange,
        "bound_ms": bound,
        "p50_ms": p50,
        "p99_ms": p99,
        "max_ms": max(latencies),
        "mean_ms": statistics.fmean(latencies),
        "overhead_p99_ms": p99 - exchange,
        "ratio_p99": p99 / bound,
    }


def _site_toml(baud: int, boards: int, *, loaded: bool) -> str:
    lines = [
        '[site]\nid = "bench"\nname = "Bench"\ntimezone = "UTC"\ndata_dir = "data"\nsimulation = true',
        f'[[bus]]\nid = "b"\nport = "sim"\nbaudrate = {baud}\ntimeout_ms = 300\nretries = 2',
    ]
    for a in range(1, boards + 1):
        lines.append(
            f'[[board]]\nid = "r{a}"\ntype = "waveshare-rtu-relay-8d"\nbus = "b"\naddress = {a}'
        )
        wiring = f'contact = "r{a}:in1"\nexit_button = "r{a}:in2"\n' if loaded else ""
        lines.append(
            f'[[door]]\nid = "d{a}"\nname = "Door {a}"\nrelay = "r{a}:1"\npulse_ms = 300\n{wiring}'
            'methods = ["pin"]\nbuilding = "B"'
        )
        lines.append(f'[[reader]]\nid = "d{a}-in"\ndoor = "d{a}"\ntype = "sim"')
    return "\n\n".join(lines) + "\n"


POLICY = {
    "format": "doorkeep.policy/1",
    "buildings": [{"id": "B"}],
    "people": [{"id": "p", "kind": "staff", "groups": ["g"]}],
    "credentials": [{"id": "c", "person": "p", "kind": "pin", "value": "2580"}],
    "groups": [
        {
            "id": "g",
            "building_default": "B",
            "doors": [],
            "schedule": {"repeat": "daily", "start": "00:00", "end": "23:59:59"},
        }
    ],
}


async def presentation_scenario(
    baud: int, boards: int, samples: int, *, loaded: bool
) -> dict[str, float]:
    import copy
    import tempfile

    from edge.service import Site

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "site.toml").write_text(_site_toml(baud, boards, loaded=loaded))
        policy = copy.deepcopy(POLICY)
        policy["groups"][0]["doors"] = [f"d{a}" for a in range(1, boards + 1)]
        async with Site.open(Path(tmp) / "site.toml") as site:
            await site.apply_policy(policy, actor="bench")
            await asyncio.sleep(0.5)
            acked: list[float] = []
            real_grant = site.hw.grant

            async def grant(door_id: str, **kw: object) -> bool:
                ok = await real_grant(door_id, **kw)  # type: ignore[arg-type]
                acked.append(time.perf_counter())
                return ok

            site.hw.grant = grant  # type: ignore[method-assign]
            latencies = []
            for _ in range(samples):
                await asyncio.sleep(random.uniform(0.005, 0.05))
                reader = f"d{random.randint(1, boards)}-in"
                acked.clear()
                started = time.perf_counter()
                result = await site.present(reader, "pin", "2580")
                assert result["result"] == "success", result
                latencies.append((acked[0] - started) * 1000)
    return summary(baud, latencies, loaded=loaded)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--boards", type=int, default=4)
    parser.add_argument("--path", choices=["bus", "presentation", "both"], default="both")
    args = parser.parse_args()
    if args.path in ("presentation", "both"):
        await print_presentation(args)
    if args.path == "presentation":
        return
    rows = [
        await scenario(baud, args.boards, args.samples, loaded=loaded)
        for baud in (9600, 115200)
        for loaded in (False, True)
    ]
    print(
        "| baud | load | wire exchange ms | lower bound ms | p50 ms | p99 ms | max ms "
        "| end-to-end overhead p99 ms | p99 / bound | bus overhead p50 / p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        load = f"{args.boards} boards polled at {POLL_HZ} Hz" if r["loaded"] else "idle"
        print(
            f"| {r['baud']} | {load} | {r['exchange_ms']:.1f} | {r['bound_ms']:.1f} "
            f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} "
            f"| {r['overhead_p99_ms']:.2f} | {r['ratio_p99']:.2f} "
            f"| {r['bus_p50_ms']:.2f} / {r['bus_p99_ms']:.2f} |"
        )


async def print_presentation(args: argparse.Namespace) -> None:
    rows = [
        await presentation_scenario(baud, args.boards, args.samples, loaded=loaded)
        for baud in (9600, 115200)
        for loaded in (False, True)
    ]
    print("Presentation -> decision -> relay acknowledged (Site.present):")
    print(
        "| baud | load | lower bound ms | p50 ms | p99 ms | max ms | overhead p99 ms | p99 / bound |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        load = f"{args.boards} boards polled at {POLL_HZ} Hz" if r["loaded"] else "idle"
        print(
            f"| {r['baud']} | {load} | {r['bound_ms']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['max_ms']:.1f} | {r['overhead_p99_ms']:.2f} | {r['ratio_p99']:.2f} |"
        )
    print()


if __name__ == "__main__":
    asyncio.run(main())
