"""The shipped systemd units verify, and are hardened to the exposure the issue set.

`systemd-analyze` comes with Debian's `systemd` package, which the test command
installs (scripts/services). ExecStart paths are pointed at this checkout's doorkeep so
that `verify` checks the unit, not whether the gateway's venv exists on this machine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
ANALYZE = shutil.which("systemd-analyze")
#: The most exposure each unit may show (systemd-analyze security, 0 = best, 10 = worst).
LIMITS = {"doorkeep.service": 4.0, "doorkeep-cloud.service": 3.0, "doorkeep-reconcile.service": 3.0}


def test_systemd_analyze_is_installed() -> None:
    assert ANALYZE, "systemd-analyze is missing: scripts/services installs Debian's systemd"


@pytest.fixture
def units(tmp_path: Path) -> Path:
    doorkeep = Path(sys.executable).with_name("doorkeep")
    assert doorkeep.exists(), doorkeep
    for unit in UNITS.iterdir():
        text = unit.read_text(encoding="utf-8")
        text = text.replace("/opt/doorkeep/.venv/bin/doorkeep", str(doorkeep))
        (tmp_path / unit.name).write_text(text, encoding="utf-8")
    return tmp_path


def test_every_unit_verifies_clean(units: Path) -> None:
    assert ANALYZE
    files = sorted(str(p) for p in units.iterdir())
    result = subprocess.run(
        [ANALYZE, "verify", *files], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_units_are_hardened(units: Path, name: str) -> None:
    assert ANALYZE
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", str(units / name)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= LIMITS[name], result.stdout
