"""A 10,000-resident xlsx file through the real import path: the ``doorkeep`` command
line (a fresh process: Python start, site store opened, file read and checked, one
policy transaction, snapshot rebuilt) against a real site made by ``doorkeep init``.
Results go to docs/performance.md ("Import and export"). Target: import <= 10 s.

    .venv/bin/python -m benchmarks.import_residents [--residents 10000] [--dir /tmp/bench]
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openpyxl

RESIDENTS = (
    "Building", "Accessible Floors", "Apt", "Apt Name", "Account Type", "First Name",
    "Last Name", "Email", "MobileNumber", "TelephoneCallingCode", "1stPhone", "2ndPhone",
    "3rdPhone", "RF Card", "PIN", "License Plate", "UHF Card", "Access Group ID", "Remark",
    "UID",
)  # fmt: skip
DOORKEEP = [sys.executable, "-m", "edge.cli"]


def workbook(n: int) -> bytes:
    """n residents in 4 towers, 4 per apartment (1 master, 3 members), each with a PIN
    and an RF card, a third with a licence plate: the shape of a real community."""
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Residents")
    sheet.append(list(RESIDENTS))
    for i in range(n):
        apt = i // 4
        row = {
            "Building": f"Tower {apt % 4 + 1}",
            "Accessible Floors": str(apt // 40 % 30 + 1),
            "Apt": f"{apt // 40 % 30 + 1}#{apt:05d}",
            "Apt Name": f"Apartment {apt}",
            "Account Type": "0" if i % 4 == 0 else "1",
            "First Name": f"Given{i}",
            "Last Name": f"Family{apt}",
            "Email": f"resident{i}@example.org",
            "MobileNumber": f"+86 138{i:08d}",
            "TelephoneCallingCode": "86",
            "RF Card": f"{0x10000000 + i:08X}",
            "PIN": f"{1000000 + i}",
            "License Plate": f"B{i:06d}" if i % 3 == 0 else "",
            "Remark": "tenant" if i % 5 == 0 else "",
        }
        sheet.append([row.get(c, "") for c in RESIDENTS])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def run(env: dict[str, str], *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([*DOORKEEP, *args], env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"doorkeep {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return elapsed, done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--residents", type=int, default=10_000)
    parser.add_argument("--dir", type=Path, help="work here instead of a temporary directory")
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="doorkeep-import-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DOORKEEP_CONFIG": str(base / "site" / "site.toml")}
    subprocess.run([*DOORKEEP, "init", str(base / "site"), "--simulation"], env=env,
                   capture_output=True, check=True)  # fmt: skip
    start = time.perf_counter()
    data = workbook(args.residents)
    (base / "residents.xlsx").write_bytes(data)
    print(f"wrote {args.residents} residents ({len(data) / 2**20:.1f} MB xlsx) in "
          f"{time.perf_counter() - start:.1f} s")  # fmt: skip
    baseline, _ = run(env, "--version")
    print(f"doorkeep --version (process start only): {baseline:.2f} s")
    rows = []
    for label, argv in (
        ("import --dry-run (check only)", ("import", "residents", "residents.xlsx", "--dry-run")),
        ("import (applied, one transaction)", ("import", "residents", "residents.xlsx")),
        ("export residents -o export.xlsx", ("export", "residents", "-o", "export.xlsx")),
        ("import export.xlsx (unchanged: no-op)", ("import", "residents", "export.xlsx")),
        ("export apartments -o apartments.xlsx", ("export", "apartments", "-o", "apartments.xlsx")),
    ):
        os.chdir(base)
        elapsed, out = run(env, *argv)
        rows.append((label, elapsed))
        print(f"{label:<42} {elapsed:6.2f} s   {out[:110]}")
    applied = dict(rows)["import (applied, one transaction)"]
    verdict = "met" if applied <= 10 else "NOT met"
    print(f"target: a {args.residents}-resident import in <= 10 s: {verdict} ({applied:.2f} s)")


if __name__ == "__main__":
    main()
