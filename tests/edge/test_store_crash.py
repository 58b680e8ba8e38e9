"""A writer killed with SIGKILL mid-stream leaves a consistent, verifiable prefix."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

from edge.store import EdgeStore

# The child records events in concurrent bursts; event i carries memory rows that a
# consistent database must show together with it: a running counter set to i and a
# per-event key m<i>. It prints each seq as soon as record_event returns (= durable).
CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from edge.store import EdgeStore

    async def main(path):
        async with EdgeStore.open(Path(path), site_id="demo") as store:
            i = 0
            while True:
                burst = []
                for _ in range(25):
                    i += 1
                    burst.append(store.record_event(
                        {"at": "2026-11-20T08:00:00+00:00", "type": "access",
                         "action": "card", "result": "success", "door": "gate",
                         "detail": {"i": i}},
                        memory_rows={"last": i, f"m{i}": {"i": i}},
                    ))
                for event in await asyncio.gather(*burst):
                    print(event["seq"], event["detail"]["i"], flush=True)

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_sigkill_mid_stream_leaves_a_consistent_prefix(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    root = Path(__file__).resolve().parents[2]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(path),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(root)},
        cwd=root,
    )
    assert proc.stdout is not None
    confirmed = 0
    while confirmed < 400:
        line = await proc.stdout.readline()
        assert line, "the child died before it was killed"
        confirmed = max(confirmed, int(line.split()[0]))
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    assert proc.returncode == -signal.SIGKILL

    async with EdgeStore.open(path, site_id="demo") as store:
        report = await store.verify_chain()
        events = []
        seq = 0
        while batch := await store.events_above(seq, 1000):
            events += batch
            seq = batch[-1]["seq"]
        memory = store.load_memory_rows()
    assert report.ok
    # Every event the child saw confirmed is there, with no gap below the last one.
    last = events[-1]["seq"]
    assert last >= confirmed
    assert [e["seq"] for e in events] == list(range(1, last + 1))
    # The event that wrote counter value v is the one with detail i == v: memory and
    # log describe the same moment, and each event's own row is present ...
    by_i = {e["detail"]["i"] for e in events}
    assert memory["last"] == max(by_i)
    assert {f"m{i}" for i in by_i} <= set(memory)
    # ... and no memory row exists without its event.
    assert {key for key in memory if key != "last"} == {f"m{i}" for i in by_i}
