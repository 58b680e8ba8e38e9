"""scripts/install-gateway installs, upgrades and uninstalls a gateway as docs/install.md says.

It runs for real as root (the test command runs as root): a system user in dialout and
gpio, a venv with doorkeep, the site directory, the unit. Paths and the user name are
this test's own (the script's environment overrides), so the machine's are untouched.
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install-gateway"


@pytest.fixture
def layout(tmp_path: Path):
    user = f"dk-test-{secrets.token_hex(3)}"
    env = {
        **os.environ,
        "DOORKEEP_PREFIX": str(tmp_path / "opt"),
        "DOORKEEP_ETC": str(tmp_path / "etc"),
        "DOORKEEP_UNIT_DIR": str(tmp_path / "units"),
        "DOORKEEP_USER": user,
    }
    assert os.geteuid() == 0, "the install test runs as root (the test command does)"
    yield tmp_path, user, env
    subprocess.run(["userdel", user], capture_output=True, check=False)


def install(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), "--no-start", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=900,
    )


def test_install_upgrade_and_uninstall_a_gateway(layout) -> None:
    root, user, env = layout
    done = install(env, "--site-id", "tower-a", "--timezone", "Europe/Berlin")
    assert done.returncode == 0, done.stdout + done.stderr
    member_of = {g.gr_name for g in grp.getgrall() if user in g.gr_mem}
    assert {"dialout", "gpio"} <= member_of
    doorkeep = root / "opt" / ".venv" / "bin" / "doorkeep"
    version = subprocess.run([doorkeep, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("doorkeep ")
    site_toml = root / "etc" / "site.toml"
    assert 'id = "tower-a"' in site_toml.read_text()
    assert pwd.getpwuid(site_toml.stat().st_uid).pw_name == user
    unit = (root / "units" / "doorkeep.service").read_text()
    assert f"ExecStart={doorkeep} run -c {root / 'etc'}/site.toml" in unit
    assert f"User={user}" in unit
    check = subprocess.run(
        [doorkeep, "check", "-c", site_toml], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stderr

    again = install(env, "--site-id", "other")  # an upgrade keeps the site as it is
    assert again.returncode == 0, again.stderr
    assert 'id = "tower-a"' in site_toml.read_text()

    gone = install(env, "--uninstall")
    assert gone.returncode == 0, gone.stderr
    assert not (root / "opt").exists() and not (root / "units" / "doorkeep.service").exists()
    assert site_toml.exists()  # the site's data stays unless purged
    assert subprocess.run(["id", user], capture_output=True, check=False).returncode != 0
    purged = install(env, "--uninstall", "--purge")
    assert purged.returncode == 0 and not (root / "etc").exists()


def test_the_installed_unit_verifies(layout) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze
    root, _user, env = layout
    assert install(env).returncode == 0
    result = subprocess.run(
        [analyze, "verify", root / "units" / "doorkeep.service"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
