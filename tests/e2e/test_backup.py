"""``doorkeep backup`` while the daemon runs, ``doorkeep restore`` onto a fresh gateway.

The daemon keeps answering presentations during the backup; the restored site has
every event that was logged before it, its chain verifies, and its PINs still work
(the site secret came along).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import DOORKEEP, Daemon


def doorkeep(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DOORKEEP, *args], capture_output=True, text=True, check=False, input=stdin, timeout=120
    )


def present(daemon: Daemon, pin: str) -> dict:
    return daemon.api("POST", "/presentations", {"reader": "gate-in", "kind": "pin", "value": pin})


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_backup_of_a_running_site_restores_onto_a_fresh_gateway(
    daemon: Daemon, tmp_path: Path, encrypted: bool
) -> None:
    daemon.make_admin()
    before = [present(daemon, "4711")["event_id"] for _ in range(5)]
    backup = tmp_path / "site.backup"
    phrase = ["--passphrase-file", "-"] if encrypted else []
    made = doorkeep(
        "backup", str(backup), "-c", str(daemon.config), *phrase, stdin="a long passphrase\n"
    )
    assert made.returncode == 0, made.stderr
    assert ("encrypted" in made.stdout) and (("NOT encrypted" in made.stdout) != encrypted)
    after = present(daemon, "4711")  # the daemon went on while the backup was made
    assert after["granted"] is True
    assert backup.stat().st_mode & 0o077 == 0  # personal data: the owner's only

    fresh = tmp_path / "fresh"
    if encrypted:
        refused = doorkeep("restore", str(backup), "--dir", str(fresh))
        assert refused.returncode == 1 and "encrypted" in refused.stderr
        wrong = doorkeep(
            "restore", str(backup), "--dir", str(fresh), *phrase, stdin="not it at all\n"
        )
        assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr
        assert not (fresh / "site.toml").exists()
    done = doorkeep(
        "restore", str(backup), "--dir", str(fresh), *phrase, stdin="a long passphrase\n"
    )
    assert done.returncode == 0, done.stderr
    config = str(fresh / "site.toml")
    assert doorkeep("check", "-c", config).returncode == 0
    events = json.loads(doorkeep("events", "-c", config, "--type", "access").stdout)
    assert sorted(e["seq"] for e in events) == sorted(before)  # all before, none after
    decided = doorkeep(
        "decide",
        "-c",
        config,
        "--reader",
        "gate-in",
        "--kind",
        "pin",
        "--value",
        "-",
        stdin="4711\n",
    )
    assert json.loads(decided.stdout)["granted"] is True  # the site secret came along


def test_a_backup_of_another_site_is_refused_unless_told(daemon: Daemon, tmp_path: Path) -> None:
    backup = tmp_path / "site.backup"
    assert doorkeep("backup", str(backup), "-c", str(daemon.config)).returncode == 0
    other = tmp_path / "other"
    assert doorkeep("init", str(other), "--site-id", "tower-b", "--simulation").returncode == 0
    refused = doorkeep("restore", str(backup), "--dir", str(other))
    assert refused.returncode == 1 and "'demo'" in refused.stderr and "'tower-b'" in refused.stderr
    assert "tower-b" in (other / "site.toml").read_text()  # nothing changed
    same = doorkeep("restore", str(backup), "--dir", str(other), "--other-site")
    assert same.returncode == 0, same.stderr
    assert 'id = "demo"' in (other / "site.toml").read_text()
    kept = [p.name for p in other.iterdir() if p.name.startswith("data.before-restore-")]
    assert len(kept) == 1  # the replaced site's data is kept aside, not deleted


def test_a_damaged_backup_restores_nothing(daemon: Daemon, tmp_path: Path) -> None:
    backup = tmp_path / "site.backup"
    assert doorkeep("backup", str(backup), "-c", str(daemon.config)).returncode == 0
    data = bytearray(backup.read_bytes())
    data[len(data) // 2] ^= 0xFF
    backup.write_bytes(bytes(data))
    result = doorkeep("restore", str(backup), "--dir", str(tmp_path / "fresh"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "fresh" / "site.toml").exists()
