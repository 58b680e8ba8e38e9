"""The reliability suite: run every test that records a row, print the table, write
docs/reliability.md.

    .venv/bin/python -m benchmarks.reliability            # the short run (what the test command runs)
    .venv/bin/python -m benchmarks.reliability --scale 5  # every long run 5 times longer
    .venv/bin/python -m benchmarks.reliability --long     # the issue's figures (e.g. 10 min of load)

The rows come from the tests themselves (tests/reliability.py): a test that takes the
``reliability`` fixture is marked ``reliability`` and, once its assertions passed, appends
one JSON line to ``$DOORKEEP_RELIABILITY_OUT``. This script runs ``pytest -m reliability``
with that set, and renders whatever rows came in — a failed test records nothing, and the
script then exits 1 and leaves docs/reliability.md unchanged, so the table only ever shows
results that held. Extra pytest arguments go after ``--`` (``-- -k load``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
# --long without --scale: the crash-safety run's N = 10 x 5 >= 50; the tests that have a
# figure of their own in the issue (the load test's 600 s) ask for it with `long=`.
LONG_SCALE = 5.0

COLUMNS: tuple[tuple[str, str], ...] = (
    ("test", "test"),
    ("load", "load held"),
    ("faults", "faults injected"),
    ("bad_inputs", "bad inputs tried"),
    ("losses", "losses"),
    ("seconds", "seconds"),
    ("figures", "figures"),
)

LEAVES_OUT = """\
## What this leaves out

These rows are what the suite shows on one machine with simulated peers: the RS485 bus is
a pseudo-terminal and pymodbus, readers are simulated, the cloud and the broker run on the
same host. It does not show real boards' electrical faults (a relay welded shut, a cut
cable that still echoes), power loss below the process (a disk that lies about fsync:
SIGKILL is not a power cut), a LAN under attack beyond the requests each test sends, nor
the long figures unless the table says it was made with `--long` (docs/reliability-long.md).
The fuzzers try random and structured inputs for as many cases as the row says: policy
documents, bundles, site.toml, credential values, Wiegand frames, serial reader frames
(RDM6300, Wiegand-to-serial lines), OSDP reads (card data, keypad keys, the reply framing
doorkeep watches), REST presentations and `http` reader posts over loopback HTTP, and MQTT
messages handed to the bridge. They find crashes, not logic errors. Below those parsers,
the libraries' own are not fuzzed here: libosdp's OSDP packets and Secure Channel, the
MQTT client's (aiomqtt, paho), aiohttp's HTTP. A parser they do not list (e.g. a reader protocol
added later) is not covered.
The load row's 200 presentations/s are 3 in 8 grants: a grant waits for its relay's
acknowledgement on the RS485 bus, so grants are bounded by the bus, not the daemon (one
simulated 9600-baud bus carried ~30 grants/s in a trial, answers queueing for seconds).
Speed is measured in docs/performance.md; here a figure is a sanity check of one run,
and the load row's latency varies widely between runs on this VM (the same
10-second test run alone, minutes apart: p99 25 ms, 54 ms and 1,344 ms).
"""


def read_rows(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The rows recorded as JSON lines (blank lines skipped), in the order they came."""
    return [json.loads(line) for line in lines if line.strip()]


def _cell(value: Any) -> str:
    if isinstance(value, Mapping):
        text = ", ".join(f"{k} {_cell(v)}" for k, v in value.items())
    elif isinstance(value, float):
        text = f"{value:g}"
    else:
        text = str(value)
    return (text or "-").replace("|", "\\|").replace("\n", " ")


def render_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The Markdown table, one row per recorded test, sorted by test name; a row may
    lack any column (then ``-``) and carry any figures (shown as ``name value``)."""
    out = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    ordered = sorted(rows, key=lambda r: (str(r.get("test", "")), str(r.get("nodeid", ""))))
    out += ["| " + " | ".join(_cell(r.get(key, "-")) for key, _ in COLUMNS) + " |" for r in ordered]
    return "\n".join(out) + "\n"


def machine() -> str:
    """This machine, as the table's reader needs it: cores and memory."""
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return f"{os.cpu_count()} cores (nproc), {mem} memory, Python {sys.version.split()[0]}"


def render_document(
    rows: Sequence[Mapping[str, Any]], *, command: str, when: datetime, host: str, long: bool
) -> str:
    """docs/reliability.md: how it was made, the table, what it leaves out."""
    kind = "the long run (`--long`: the issue's figures)" if long else "the short run"
    scales = sorted({float(r.get("scale", 1)) for r in rows}) or [1.0]
    return (
        "# Reliability\n\n"
        "Each row is one test of the suite, recorded only after its assertions held: the load\n"
        "it held, the faults it injected, the bad inputs it tried and what was lost (the\n"
        "issue's bar is 0). The tests are ordinary tests: `bash scripts/test` runs the short\n"
        "version of each; this page is written by `benchmarks/reliability.py`.\n\n"
        f"- Command: `{command}`\n"
        f"- Date: {when:%Y-%m-%d %H:%M} UTC\n"
        f"- Machine: {host}\n"
        f"- Run: {kind}, scale {', '.join(f'{s:g}' for s in scales)}, {len(rows)} rows\n\n"
        + render_table(rows)
        + "\n"
        + LEAVES_OUT
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, help="multiply every long run (default 1)")
    parser.add_argument("--long", action="store_true", help="the issue's long figures")
    parser.add_argument("--out", type=Path, default=DOC, help="the Markdown file to write")
    parser.add_argument("pytest_args", nargs="*", help="after --: extra pytest arguments")
    args = parser.parse_args(argv)
    scale = args.scale if args.scale is not None else (LONG_SCALE if args.long else 1.0)

    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        out = Path(tmp) / "rows.jsonl"
        env = {
            **os.environ,
            "DOORKEEP_RELIABILITY_OUT": str(out),
            "DOORKEEP_RELIABILITY_SCALE": f"{scale:g}",
            "DOORKEEP_RELIABILITY_LONG": "1" if args.long else "0",
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        cmd += ["-m", "reliability", *args.pytest_args]
        started = time.monotonic()
        result = subprocess.run(cmd, env=env, cwd=ROOT, check=False)
        rows = read_rows(out.read_text(encoding="utf-8").splitlines() if out.exists() else [])

    print()
    print(render_table(rows), end="")
    print(f"{len(rows)} rows in {time.monotonic() - started:.0f} s")
    if result.returncode != 0 or not rows:
        print(f"pytest exited {result.returncode}: {args.out} left unchanged", file=sys.stderr)
        return 1
    shown = ["-m", "benchmarks.reliability"]
    shown += [f"--scale {scale:g}"] if args.scale is not None else []
    shown += ["--long"] if args.long else []
    shown += ["--", *args.pytest_args] if args.pytest_args else []
    command = ".venv/bin/python " + shlex.join(shown)
    doc = render_document(
        rows, command=command, when=datetime.now(UTC), host=machine(), long=args.long
    )
    args.out.write_text(doc, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
