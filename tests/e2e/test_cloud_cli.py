"""The cloud commands of the doorkeep CLI, and `doorkeep enroll` against a live cloud."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.edge.conftest import POLICY, ROOT, SITE_TOML


def doorkeep(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        check=False,
        timeout=120,
    )


def test_site_add_token_create_and_reconcile_print_what_scripts_need(tmp_path: Path):
    db = f"sqlite:///{tmp_path}/cloud.db"
    keys = str(tmp_path / "keys")
    added = doorkeep("cloud", "--db", db, "--key-dir", keys, "site", "add", "tower-a", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    code = added.stdout.strip().splitlines()[-1]
    assert len(code) >= 8 and " " not in code
    token = doorkeep("cloud", "--db", db, "--key-dir", keys, "token", "create", cwd=tmp_path)
    assert token.returncode == 0 and len(token.stdout.strip().splitlines()[-1]) >= 20
    report = doorkeep("cloud", "--db", db, "--key-dir", keys, "reconcile", "--json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "tower-a" in json.dumps(json.loads(report.stdout))
    again = doorkeep("cloud", "--db", db, "--key-dir", keys, "site", "add", "tower-a", cwd=tmp_path)
    assert again.returncode == 1 and "tower-a" in again.stderr


def test_enroll_pairs_the_site_and_hands_the_policy_to_the_cloud(tmp_path: Path):
    db = f"sqlite:///{tmp_path}/cloud.db"
    keys = str(tmp_path / "keys")
    code = doorkeep(
        "cloud", "--db", db, "--key-dir", keys, "site", "add", "test", cwd=tmp_path
    ).stdout.split()[-1]
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge.cli",
            "cloud",
            "--db",
            db,
            "--key-dir",
            keys,
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert server.stdout is not None
        started = []
        while not any("serving" in line for line in started):  # after the migration log lines
            started.append(server.stdout.readline())
            assert started[-1], f"the cloud did not start: {started}"
        site = tmp_path / "edge"
        site.mkdir()
        (site / "site.toml").write_text(SITE_TOML)
        config = str(site / "site.toml")
        wrong = doorkeep(
            "enroll", f"http://127.0.0.1:{port}", "WRONG-CODE", "-c", config, cwd=tmp_path
        )
        assert wrong.returncode == 1 and "error" in wrong.stderr
        done = doorkeep("enroll", f"http://127.0.0.1:{port}", code, "-c", config, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "[cloud]" in (site / "site.toml").read_text()
        assert (site / "data" / "keys" / "cloud.json").stat().st_mode & 0o077 == 0
        policy = tmp_path / "policy.json"
        policy.write_text(json.dumps(POLICY))
        applied = doorkeep("policy", "apply", str(policy), "-c", config, cwd=tmp_path)
        assert applied.returncode == 1 and "managed by the cloud" in applied.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
