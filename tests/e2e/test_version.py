"""`doorkeep --version` and the running daemon's /health name the same version."""

from __future__ import annotations

import subprocess

from tests.e2e.conftest import DOORKEEP, Daemon


def test_the_cli_and_the_daemon_report_one_version(daemon: Daemon) -> None:
    out = subprocess.run([*DOORKEEP, "--version"], capture_output=True, text=True, check=True)
    health = daemon.request("GET", "/health")
    assert out.stdout.strip() == f"doorkeep {health['version']}"
