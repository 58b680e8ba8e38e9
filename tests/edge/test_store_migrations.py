"""Opening a database written by an older doorkeep migrates it in place; one written by a
newer doorkeep is refused in one line (the event store and the auth store)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from edge.auth import AUTH_SCHEMA, AuthStore
from edge.store import SCHEMA_VERSION, EdgeStore, SchemaTooNewError, event_hash, genesis_hash
from edge.store._schema import migrate

if TYPE_CHECKING:
    from pathlib import Path


def make_v1_database(path: Path) -> str:
    """A version-1 database (before redaction existed) holding two chained events."""
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, target=1) == 1
    epoch = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0]
    prev = genesis_hash(epoch)
    for seq in (1, 2):
        event = {
            "seq": seq,
            "at": f"2026-01-0{seq}T10:00:00+01:00",
            "type": "access",
            "action": "card",
            "result": "success",
            "reason": None,
            "door": "gate",
            "reader": "gate-in",
            "person": "p-old",
            "apartment": "B1-101",
            "credential_kind": "rf_card",
            "detail": {},
        }
        prev = event_hash(prev, event)
        conn.execute(
            "INSERT INTO events (seq, at, ts, type, action, result, door, reader, person, "
            "apartment, credential_kind, detail, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                seq,
                event["at"],
                seq,
                "access",
                "card",
                "success",
                "gate",
                "gate-in",
                "p-old",
                "B1-101",
                "rf_card",
                json.dumps({}),
                prev,
            ),
        )
    conn.executemany(
        "INSERT INTO meta VALUES (?, ?)",
        [("head_seq", "2"), ("head_hash", prev), ("site_id", "demo")],
    )
    conn.execute("INSERT INTO memory VALUES ('tk:t1', '{\"uses\": 3}')")
    conn.close()
    return epoch


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
async def test_a_database_of_every_earlier_schema_is_migrated_and_keeps_its_history(
    tmp_path: Path, version: int
) -> None:
    """History written at version 1, then carried to ``version`` by the migrations an
    older doorkeep ran, then opened by this one: every earlier release's database."""
    path = tmp_path / "old.db"
    epoch = make_v1_database(path)
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, target=version) == version
    conn.close()
    async with EdgeStore.open(path, site_id="demo") as store:
        assert store.epoch == epoch
        assert store.load_memory_rows() == {"tk:t1": {"uses": 3}}
        assert (await store.verify_chain()).checked == 2
        new = await store.record_event(
            {
                "at": "2026-01-03T10:00:00+01:00",
                "type": "door",
                "action": "opened",
                "result": "success",
                "door": "gate",
            }
        )
        assert new["seq"] == 3
        # The migration added what redaction needs.
        assert await store.redact_apartment_events("B1-101", actor="cli") == 2
        report = await store.verify_chain()
        assert (report.ok, report.checked, report.redacted) == (True, 3, 2)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION


async def test_a_database_from_a_newer_doorkeep_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    async with EdgeStore.open(path, site_id="demo"):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(SchemaTooNewError, match="upgrade doorkeep"):
        async with EdgeStore.open(path, site_id="demo"):
            pass


def test_check_and_run_refuse_a_database_from_a_newer_doorkeep_in_one_line(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "edge.cli"]
    env = {**os.environ, "DOORKEEP_MDNS": "0"}
    subprocess.run([*cli, "init", str(tmp_path / "s"), "--simulation"], check=True, env=env)
    toml = str(tmp_path / "s" / "site.toml")
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps({"format": "doorkeep.policy/1"}))
    subprocess.run([*cli, "policy", "apply", str(policy), "-c", toml], check=True, env=env)
    with sqlite3.connect(tmp_path / "s" / "data" / "doorkeep.db") as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    for command in ("check", "run"):
        result = subprocess.run(
            [*cli, command, "-c", toml],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1, (command, result.stderr)
        assert "Traceback" not in result.stderr
        assert "upgrade doorkeep" in result.stderr, (command, result.stderr)


def test_an_auth_database_from_before_its_schema_was_counted_keeps_its_logins(
    tmp_path: Path,
) -> None:
    path = tmp_path / "auth.db"
    with AuthStore.open(path) as auth:
        auth.create_user("alice", "correct horse battery staple", "admin")
        token = auth.create_token("installer", "ci")
    with sqlite3.connect(path) as conn:  # as every release before the version was written
        conn.execute("PRAGMA user_version = 0")
    with AuthStore.open(path) as auth:
        user = auth.authenticate("alice", "correct horse battery staple")
        api = auth.token(token)
        assert user is not None and user.role == "admin"
        assert api is not None and api.role == "installer"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == AUTH_SCHEMA


def test_run_refuses_an_auth_database_from_a_newer_doorkeep_in_one_line(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "edge.cli"]
    env = {**os.environ, "DOORKEEP_MDNS": "0"}
    subprocess.run([*cli, "init", str(tmp_path / "s"), "--simulation"], check=True, env=env)
    toml = str(tmp_path / "s" / "site.toml")
    with AuthStore.open(tmp_path / "s" / "data" / "auth.db"):
        pass
    with sqlite3.connect(tmp_path / "s" / "data" / "auth.db") as conn:
        conn.execute(f"PRAGMA user_version = {AUTH_SCHEMA + 1}")
    result = subprocess.run(
        [*cli, "run", "-c", toml], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "auth schema version" in result.stderr and "upgrade doorkeep" in result.stderr
