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


def _syscalls(name: str) -> set[str]:
    """A syscall, or a systemd group (``@clock``) expanded by systemd-analyze itself."""
    if not name.startswith("@"):
        return {name}
    assert ANALYZE
    listed = subprocess.run(
        [ANALYZE, "syscall-filter", name], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()[1:]
    members = [line.strip() for line in listed if line.strip() and not line.strip().startswith("#")]
    return set().union(*(_syscalls(member) for member in members))


def _permitted(unit: str, syscall: str) -> bool:
    """Whether the unit's SystemCallFilter= lines, read as systemd does, let ``syscall`` run.

    The first line sets the default (an allow list or a deny list); each later line adds
    to or takes from it. ProtectClock=yes installs a filter of its own that blocks every
    @clock call outright, read-only ones included (systemd.exec(5)).
    """
    if re.search(r"^ProtectClock=(yes|true|1|on)$", unit, re.MULTILINE) and syscall in _syscalls(
        "@clock"
    ):
        return False
    allow_list: bool | None = None
    chosen: set[str] = set()
    for value in re.findall(r"^SystemCallFilter=(.*)$", unit, re.MULTILINE):
        deny = value.startswith("~")
        names = set().union(*(_syscalls(n) for n in value.removeprefix("~").split()))
        if allow_list is None:
            allow_list, chosen = not deny, names
        elif deny == allow_list:  # a deny line on an allow list, or an allow line on a deny list
            chosen -= names
        else:
            chosen |= names
    return allow_list is None or (syscall in chosen) == allow_list


def test_the_edge_unit_lets_the_daemon_read_the_ntp_status() -> None:
    # edge/site/clock.py reads "NTP synchronised" with a read-only adjtimex(2). Blocked
    # (it returns EPERM) the clock guard never sees a confirmation: after an NTP step on a
    # gateway that booted with a stale clock, time-limited credentials stay refused
    # (clock_untrusted). Setting the clock stays impossible: no CAP_SYS_TIME.
    unit = (UNITS / "doorkeep.service").read_text(encoding="utf-8")
    assert _permitted(unit, "adjtimex")
    assert re.search(r"^CapabilityBoundingSet=$", unit, re.MULTILINE)
    assert not _permitted(unit, "reboot") and not _permitted(unit, "settimeofday")


@pytest.mark.parametrize("name", ["doorkeep-cloud.service", "doorkeep-reconcile.service"])
def test_a_cloud_unit_starts_on_a_fresh_host(name: str) -> None:
    # systemd refuses to start a unit whose ReadWritePaths=/ReadOnlyPaths= name a path that
    # does not exist (226/NAMESPACE), and makes only StateDirectory= (owned by User=)
    # itself: ConfigurationDirectory= stays root's. Nothing else installs the cloud, so every
    # path it needs must be one of its StateDirectory= (or optional, "-"), the key directory
    # included, which the service writes on first start; kept apart from the database's.
    unit = (UNITS / name).read_text(encoding="utf-8")
    made = {
        f"/var/lib/{d}"
        for line in re.findall(r"^StateDirectory=(.*)$", unit, re.MULTILINE)
        for d in line.split()
    }
    needed = [
        path
        for line in re.findall(r"^(?:ReadWritePaths|ReadOnlyPaths)=(.*)$", unit, re.MULTILINE)
        for path in line.split()
        if not path.startswith("-")
    ]
    env = dict(re.findall(r"^Environment=(\w+)=(\S*)$", unit, re.MULTILINE))
    keys, database = env["DOORKEEP_CLOUD_KEYS"], env["DOORKEEP_CLOUD_DB"]
    assert [p for p in [*needed, keys] if p not in made] == []
    assert not database.startswith(f"sqlite:///{keys}/")
    assert re.search(r"^StateDirectoryMode=0700$", unit, re.MULTILINE)  # the keys are secret
