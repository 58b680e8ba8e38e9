"""The edge store as its callers see it: events, chain, memory, policy, audit, alarms."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doorkeep.errors import Conflict, NotFound, PolicyError
from edge.store import (
    SCHEMA_VERSION,
    AuditEntry,
    EdgeStore,
    SensitiveDataError,
    StorageUnavailable,
    StoreQueryError,
)
from tests.reliability import Reliability

if TYPE_CHECKING:
    from pathlib import Path

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def access(i: int, **over: Any) -> dict[str, Any]:
    """A granted card read at door gate, i minutes after T0."""
    event = {
        "at": (T0 + timedelta(minutes=i)).isoformat(),
        "type": "access",
        "action": "card",
        "result": "success",
        "reason": None,
        "door": "gate",
        "reader": "gate-in",
        "person": "p-judy",
        "apartment": "B1-203",
        "credential_kind": "rf_card",
        "detail": {"n": i},
    }
    event.update(over)
    return event


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "edge.db"


@pytest.fixture
async def store(db_path: Path):
    async with EdgeStore.open(db_path, site_id="demo") as s:
        yield s


def raw(db_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(db_path, isolation_level=None)


# --- events and the chain ------------------------------------------------------------


async def test_seq_is_contiguous_and_chain_verifies(store: EdgeStore) -> None:
    stored = [await store.record_event(access(i)) for i in range(5)]
    stored += await asyncio.gather(*(store.record_event(access(i)) for i in range(5, 50)))
    assert sorted(e["seq"] for e in stored) == list(range(1, 51))
    assert all(e["epoch"] == store.epoch and len(e["hash"]) == 64 for e in stored)
    report = await store.verify_chain()
    assert report.ok
    assert report.checked == 50
    assert report.first_bad_seq is None


async def test_stored_event_round_trips_in_the_interface_shape(store: EdgeStore) -> None:
    at = datetime(2026, 11, 20, 9, 30, tzinfo=UTC).astimezone(ZoneInfo("Europe/Berlin"))
    written = await store.record_event(access(0, at=at, detail={"floors": ["7", "G1"]}))
    assert written["at"] == "2026-11-20T10:30:00+01:00"
    (read,), _ = await store.query_events()
    assert read == written
    assert set(read) == {
        "seq",
        "at",
        "type",
        "action",
        "result",
        "reason",
        "door",
        "reader",
        "person",
        "apartment",
        "credential_kind",
        "detail",
        "hash",
        "epoch",
    }


@pytest.mark.parametrize(
    ("column", "value"),
    [("detail", '{"n":999}'), ("person", "p-mallory"), ("result", "failed"), ("at", "x")],
)
async def test_tampering_with_a_row_is_detected(db_path: Path, column: str, value: str) -> None:
    async with EdgeStore.open(db_path, site_id="demo") as store:
        for i in range(10):
            await store.record_event(access(i))
    with raw(db_path) as conn:
        conn.execute(f"UPDATE events SET {column} = ? WHERE seq = 4", (value,))
    async with EdgeStore.open(db_path, site_id="demo") as store:
        report = await store.verify_chain()
    assert not report.ok
    assert report.first_bad_seq == 4


async def test_deleting_a_row_or_the_tail_is_detected(db_path: Path) -> None:
    async with EdgeStore.open(db_path, site_id="demo") as store:
        for i in range(10):
            await store.record_event(access(i))
    with raw(db_path) as conn:
        conn.execute("DELETE FROM events WHERE seq = 6")
    async with EdgeStore.open(db_path, site_id="demo") as store:
        assert (await store.verify_chain()).first_bad_seq == 6
    with raw(db_path) as conn:
        conn.execute("DELETE FROM events WHERE seq >= 6")
    async with EdgeStore.open(db_path, site_id="demo") as store:
        report = await store.verify_chain()
    assert not report.ok
    assert report.first_bad_seq == 6


@pytest.mark.parametrize("key", ["value", "pin", "code", "card", "PIN"])
async def test_refuses_an_event_that_may_hold_a_plaintext_credential(
    store: EdgeStore, key: str
) -> None:
    with pytest.raises(SensitiveDataError) as info:
        await store.record_event(access(0, detail={"presented": {key: "00209CBF"}}))
    assert "00209CBF" not in str(info.value)
    assert (await store.query_events())[0] == []


@pytest.mark.parametrize(
    "bad",
    [
        {"at": "2026-11-20T08:00:00"},  # no offset
        {"type": "party"},
        {"result": "maybe"},
        {"colour": "red"},
        {"action": None},
    ],
)
async def test_refuses_malformed_events(store: EdgeStore, bad: dict[str, Any]) -> None:
    with pytest.raises(StoreQueryError):
        await store.record_event(access(0, **bad))
    # A refused event costs no seq: the next one is still number 1.
    assert (await store.record_event(access(1)))["seq"] == 1


async def test_a_failing_item_does_not_spoil_its_batch(store: EdgeStore) -> None:
    good = [store.record_event(access(i)) for i in range(20)]
    bad = store.set_acknowledged(10_000)  # Conflict inside the writer thread
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert isinstance(results[-1], Conflict)
    assert sorted(r["seq"] for r in results[:-1]) == list(range(1, 21))
    assert (await store.verify_chain()).ok


# --- decision memory ---------------------------------------------------------------------


async def test_memory_rows_are_written_with_the_event(db_path: Path) -> None:
    async with EdgeStore.open(db_path, site_id="demo") as store:
        await store.record_event(access(0), memory_rows={"tk:t1": {"uses": 1}, "pinfail:r1": [1]})
        await store.record_event(access(1), memory_rows={"tk:t1": {"uses": 2}, "pinfail:r1": None})
        # A refused event leaves memory untouched.
        with pytest.raises(SensitiveDataError):
            await store.record_event(access(2, detail={"pin": "1"}), memory_rows={"tk:t1": 99})
    async with EdgeStore.open(db_path, site_id="demo") as store:
        assert store.load_memory_rows() == {"tk:t1": {"uses": 2}}


# --- group commit and the event loop --------------------------------------------------------


async def test_writes_never_block_the_loop_and_are_grouped(store: EdgeStore) -> None:
    """While the writer is stuck inside a transaction, the loop keeps running and the
    queued writes then land together in fewer commits than there were calls."""
    gate = threading.Event()
    entered = threading.Event()

    def stuck(conn: sqlite3.Connection) -> None:
        entered.set()
        gate.wait(timeout=30)

    blocker = store._db.writer.submit(stuck)
    await asyncio.to_thread(entered.wait, 30)
    before = store.writer_stats.commits
    writes = [asyncio.ensure_future(store.record_event(access(i))) for i in range(300)]
    ticks = 0
    for _ in range(20):  # the loop still turns while the writer holds the transaction
        await asyncio.sleep(0)
        ticks += 1
    assert ticks == 20
    assert not any(w.done() for w in writes)  # nothing resolves before it is durable
    gate.set()
    await blocker
    stored = await asyncio.gather(*writes)
    assert sorted(e["seq"] for e in stored) == list(range(1, 301))
    assert store.writer_stats.commits - before < 300 / 2


async def test_loop_lag_stays_small_under_a_write_burst(store: EdgeStore) -> None:
    lags: list[float] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def probe() -> None:
        while not stop.is_set():
            start = loop.time()
            await asyncio.sleep(0.001)
            lags.append(loop.time() - start - 0.001)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(probe(), name="lag-probe")
        for wave in range(20):  # waves of 50 concurrent reads: a very busy site
            await asyncio.gather(
                *(
                    store.record_event(access(i), memory_rows={f"k{i}": i})
                    for i in range(wave * 50, wave * 50 + 50)
                )
            )
        stop.set()
    # A probe, not a proof (the test above is the deterministic one): it catches a
    # regression that does slow work on the loop. Loose bound for shared CI machines.
    assert max(lags) < 0.5
    assert (await store.verify_chain()).checked == 1000


# --- queries -----------------------------------------------------------------------------


async def fill(store: EdgeStore) -> None:
    doors = ["gate", "lobby", "gym"]
    for i in range(60):
        await store.record_event(
            access(
                i,
                door=doors[i % 3],
                person=f"p{i % 4}",
                apartment=f"A{i % 5}",
                result="success" if i % 2 else "failed",
                reason=None if i % 2 else "outside_schedule",
            )
        )
    await store.record_event(access(60, type="alarm", action="forced_open", person=None))


async def test_filters_combine_and_page_newest_first(store: EdgeStore) -> None:
    await fill(store)
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        page, cursor = await store.query_events(
            door="gate", result="failed", limit=4, cursor=cursor
        )
        seen += page
        if cursor is None:
            break
    expected = [i + 1 for i in range(60) if i % 3 == 0 and i % 2 == 0][::-1]
    assert [e["seq"] for e in seen] == expected
    alarms, _ = await store.query_events(type="alarm")
    assert [e["action"] for e in alarms] == ["forced_open"]
    p1, _ = await store.query_events(person="p1", apartment="A1", limit=100)
    assert all(e["person"] == "p1" and e["apartment"] == "A1" for e in p1)
    assert len(p1) == 3  # i = 1, 21, 41
    reasons, _ = await store.query_events(reason="outside_schedule", limit=1000)
    assert len(reasons) == 30


async def test_time_filters_compare_instants_across_offsets(store: EdgeStore) -> None:
    await fill(store)
    since = (T0 + timedelta(minutes=10)).astimezone(timezone(timedelta(hours=-5)))
    window, _ = await store.query_events(
        since=since.isoformat(), until=T0 + timedelta(minutes=20), limit=100
    )
    assert [e["seq"] for e in window] == list(range(20, 10, -1))
    with pytest.raises(StoreQueryError, match="offset"):
        await store.query_events(since="2026-11-20T08:00:00")


async def test_a_foreign_cursor_is_refused(store: EdgeStore) -> None:
    await store.audit("admin:alice", "door.unlock", "door:gate")
    await store.audit("admin:alice", "door.unlock", "door:gate")
    _, audit_cursor = await store.query_audit(limit=1)
    assert audit_cursor is not None
    for bad in (audit_cursor, "garbage", ""):
        with pytest.raises(StoreQueryError):
            await store.query_events(cursor=bad)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(limit=st.integers(1, 12), door=st.sampled_from([None, "gate", "lobby", "gym"]))
async def test_paging_visits_every_match_once(tmp_path: Path, limit: int, door: str | None) -> None:
    path = tmp_path / f"p-{limit}-{door}.db"
    async with EdgeStore.open(path, site_id="demo") as store:
        if not (await store.query_events())[0]:
            await fill(store)
        everything, _ = await store.query_events(door=door, limit=1000)
        seen: list[int] = []
        cursor = None
        while True:
            page, cursor = await store.query_events(door=door, limit=limit, cursor=cursor)
            seen += [e["seq"] for e in page]
            if cursor is None:
                break
    assert seen == [e["seq"] for e in everything]


# --- outbox, acknowledgement, retention ------------------------------------------------------


async def test_outbox_and_acknowledgement(db_path: Path) -> None:
    async with EdgeStore.open(db_path, site_id="demo") as store:
        for i in range(10):
            await store.record_event(access(i))
        assert [e["seq"] for e in await store.events_above(3, 4)] == [4, 5, 6, 7]
        await store.set_acknowledged(7)
        await store.set_acknowledged(5)  # late duplicate: never moves backwards
        assert store.acknowledged() == 7
        with pytest.raises(Conflict):
            await store.set_acknowledged(11)
    async with EdgeStore.open(db_path, site_id="demo") as store:
        assert store.acknowledged() == 7


async def test_prune_keeps_unacknowledged_rows_and_the_chain(store: EdgeStore) -> None:
    for i in range(10):
        await store.record_event(access(i))
    await store.set_acknowledged(4)
    now = T0 + timedelta(days=40)
    assert await store.prune(now=now, door_event_days=30, only_acknowledged=True) == 4
    assert [e["seq"] for e in await store.events_above(0, 100)] == list(range(5, 11))
    report = await store.verify_chain()
    assert report.ok
    assert report.anchor_seq == 4
    assert report.checked == 6
    # Standalone (not enrolled): every old row goes, the anchor keeps the chain.
    assert await store.prune(now=now, only_acknowledged=False) == 6
    await store.record_event(access(60 * 24 * 40))
    report = await store.verify_chain()
    assert (report.ok, report.anchor_seq, report.checked) == (True, 10, 1)
    actions = [a["action"] for a in (await store.query_audit())[0]]
    assert actions.count("events.prune") == 2


async def test_a_large_prune_runs_in_chunks_that_let_card_reads_through(
    store: EdgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("edge.store._events.PRUNE_CHUNK", 7)
    for i in range(50):
        await store.record_event(access(i))
    commits = store.writer_stats.commits
    prune = asyncio.ensure_future(store.prune(now=T0 + timedelta(days=40), only_acknowledged=False))
    await asyncio.sleep(0)
    read = await store.record_event(access(60 * 24 * 40))  # a card read during the prune
    assert await prune == 50
    assert store.writer_stats.commits - commits >= 50 // 7
    assert read["seq"] == 51
    report = await store.verify_chain()
    assert (report.ok, report.anchor_seq, report.checked) == (True, 50, 1)
    (entry,), _ = await store.query_audit(action="events.prune")
    assert entry["detail"] == {"events": 50, "through_seq": 50, "days": 30}


async def test_prune_removes_only_a_prefix_of_old_rows(store: EdgeStore) -> None:
    await store.record_event(access(0))
    await store.record_event(access(60 * 24 * 35))  # young
    await store.record_event(access(1))  # old but after a young row (a clock jump)
    pruned = await store.prune(now=T0 + timedelta(days=40), only_acknowledged=False)
    assert pruned == 1
    assert [e["seq"] for e in await store.events_above(0, 10)] == [2, 3]
    assert (await store.verify_chain()).ok


async def test_apartment_redaction_keeps_the_chain_verifiable(store: EdgeStore) -> None:
    await fill(store)
    count = await store.redact_apartment_events("A2", actor="admin:alice")
    assert count == 12
    assert (await store.query_events(apartment="A2"))[0] == []
    redacted = [e for e in await store.events_above(0, 1000) if e.get("redacted")]
    assert len(redacted) == 12
    assert all(e["person"] is None and e["detail"] == {} for e in redacted)
    assert all(e["door"] and e["at"] for e in redacted)
    report = await store.verify_chain()
    assert report.ok
    assert report.redacted == 12
    (entry,), _ = await store.query_audit(action="apartment.redact_events")
    assert entry["actor"] == "admin:alice"
    assert entry["detail"] == {"events": 12, "alarms": 0}


async def test_a_redacted_rows_hash_is_still_checked_by_its_link(db_path: Path) -> None:
    async with EdgeStore.open(db_path, site_id="demo") as store:
        await fill(store)
        await store.redact_apartment_events("A2", actor="cli")
    with raw(db_path) as conn:
        conn.execute("UPDATE events SET hash = ? WHERE seq = 3", ("0" * 64,))
    async with EdgeStore.open(db_path, site_id="demo") as store:
        assert (await store.verify_chain()).first_bad_seq == 4


# --- policy ------------------------------------------------------------------------------------


def hashed_doc_parts() -> dict[str, list[dict[str, Any]]]:
    return {
        "buildings": [{"id": "B1", "name": "Building 1"}],
        "people": [{"id": "p-judy", "kind": "resident", "name": "Judy"}],
        "credentials": [{"id": "c1", "person": "p-judy", "kind": "pin", "value_hmac": "ab" * 32}],
        "holidays": [{"date": "2026-12-25", "name": "Christmas Day"}],
        "hold_open": [
            {"door": "lobby", "schedule": {"repeat": "daily", "start": "08:00", "end": "09:00"}}
        ],
    }


async def test_policy_changes_apply_atomically_with_their_audit(db_path: Path) -> None:
    async with EdgeStore.open(db_path, site_id="demo") as store:
        empty = store.load_policy()
        assert (empty.version, empty.digest, empty.owner) == (0, "", "local")
        assert empty.doc["format"] == "doorkeep.policy/1"
        await store.apply_policy_change(
            upserts=hashed_doc_parts(),
            deletes={},
            settings={"pin_mode": "apt_pin"},
            replace=True,
            version=1,
            digest="d1",
            owner="local",
            audit=[AuditEntry("cli", "policy.apply", "policy", {"version": 1})],
        )
        await store.apply_policy_change(
            upserts={"people": [{"id": "p-cathy", "kind": "staff", "name": "Cathy"}]},
            deletes={"holidays": ["2026-12-25"], "credentials": ["missing"]},
            settings=None,
            replace=False,
            version=2,
            digest="d2",
            owner="cloud",
            audit=[AuditEntry("cloud", "policy.delta", "policy")],
        )
    async with EdgeStore.open(db_path, site_id="demo") as store:
        state = store.load_policy()
        assert (state.version, state.digest, state.owner) == (2, "d2", "cloud")
        assert store.policy_header() == (2, "d2")
        assert state.doc["settings"] == {"pin_mode": "apt_pin"}
        assert [p["id"] for p in state.doc["people"]] == ["p-judy", "p-cathy"]
        assert state.doc["holidays"] == []
        assert state.doc["hold_open"][0]["door"] == "lobby"
        audit, _ = await store.query_audit()
        assert [a["action"] for a in audit] == ["policy.delta", "policy.apply"]
        # A whole-document apply replaces everything.
        await store.apply_policy_change(
            upserts={"buildings": [{"id": "B2"}]},
            deletes={},
            settings=None,
            replace=True,
            version=3,
            digest="d3",
            owner=None,
            audit=[],
        )
        state = store.load_policy()
        assert state.doc["people"] == []
        assert state.doc["buildings"] == [{"id": "B2"}]
        assert state.owner == "cloud"


async def test_policy_with_a_plaintext_credential_is_refused(store: EdgeStore) -> None:
    with pytest.raises(PolicyError) as info:
        await store.apply_policy_change(
            upserts={
                "credentials": [{"id": "c1", "person": "p", "kind": "pin", "value": "1234"}],
                "temp_keys": [{"id": "t1", "kind": "pin", "code": "91487640"}],
                "spaceships": [{"id": "x"}],
            },
            deletes={},
            settings=None,
            replace=True,
            version=1,
            digest="d",
            owner="local",
            audit=[],
        )
    assert {(i.entity, i.field) for i in info.value.issues} == {
        ("credentials/c1", "value"),
        ("temp_keys/t1", "code"),
        ("spaceships", ""),
    }
    assert "1234" not in str([str(i) for i in info.value.issues])
    assert store.load_policy().version == 0


# --- audit, alarms, state ---------------------------------------------------------------------


async def test_audit_filters_and_paging(store: EdgeStore) -> None:
    for i in range(7):
        await store.audit("admin:alice" if i % 2 else "cli", "door.unlock", f"door:d{i}", {"s": i})
    alice, _ = await store.query_audit(actor="admin:alice")
    assert [a["target"] for a in alice] == ["door:d5", "door:d3", "door:d1"]
    first, cursor = await store.query_audit(limit=5)
    rest, end = await store.query_audit(limit=5, cursor=cursor)
    assert end is None
    assert [a["detail"]["s"] for a in first + rest] == [6, 5, 4, 3, 2, 1, 0]


async def test_alarm_lifecycle(store: EdgeStore) -> None:
    alarm = await store.raise_alarm(
        "forced_open",
        source="door:gate",
        detail={"contact": "open"},
        at=T0,
        event=access(0, type="alarm", action="forced_open", person=None, apartment=None),
    )
    other = await store.raise_alarm("board_offline", source="board:relays-a", at=T0)
    assert alarm["resolved"] is False
    assert alarm["event_seq"] == 1
    assert [a["id"] for a in await store.query_alarms(open_only=True)] == [other["id"], alarm["id"]]
    done = await store.resolve_alarm(alarm["id"], actor="admin:alice", note="checked")
    assert done["resolved"]
    assert done["resolved_by"] == "admin:alice"
    assert done["note"] == "checked"
    assert [a["id"] for a in await store.query_alarms(open_only=True)] == [other["id"]]
    assert len(await store.query_alarms()) == 2
    with pytest.raises(Conflict):
        await store.resolve_alarm(alarm["id"], actor="admin:bob")
    with pytest.raises(NotFound):
        await store.resolve_alarm(999, actor="admin:bob")
    with pytest.raises(StoreQueryError):
        await store.raise_alarm("Forced Open!", source="door:gate", at=T0)
    (entry,), _ = await store.query_audit(action="alarm.resolve")
    assert entry["target"] == f"alarm:{alarm['id']}"


async def test_site_state_survives_a_restart(db_path: Path) -> None:
    async with EdgeStore.open(db_path, site_id="demo") as store:
        await store.put_state("emergency", {"mode": "lockdown"})
        await store.put_state("setup", "done")
        await store.put_state("setup", None)
        assert store.get_state("emergency") == {"mode": "lockdown"}
        assert store.get_state("setup", "todo") == "todo"
        epoch = store.epoch
    async with EdgeStore.open(db_path, site_id="demo") as store:
        assert store.get_state("emergency") == {"mode": "lockdown"}
        assert store.epoch == epoch


async def test_a_new_database_gets_a_new_epoch(tmp_path: Path) -> None:
    async with EdgeStore.open(tmp_path / "a.db", site_id="demo") as a:
        pass
    async with EdgeStore.open(tmp_path / "b.db", site_id="demo") as b:
        pass
    assert a.epoch != b.epoch
    assert len(a.epoch) == 32


async def test_opening_another_sites_database_is_refused(db_path: Path) -> None:
    async with EdgeStore.open(db_path, site_id="demo"):
        pass
    with pytest.raises(Conflict, match="demo"):
        async with EdgeStore.open(db_path, site_id="other"):
            pass


async def test_database_is_in_wal_with_full_sync(store: EdgeStore, db_path: Path) -> None:
    assert raw(db_path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.conn is not None
    assert store._db.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert (
        raw(db_path).execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    )


async def test_online_backup_is_a_consistent_openable_copy(tmp_path: Path) -> None:
    async with EdgeStore.open(tmp_path / "live.db", site_id="demo") as store:
        writes = [store.record_event(access(i), memory_rows={"last": i}) for i in range(200)]
        copy = tmp_path / "backup" / "copy.db"
        copy.parent.mkdir()
        await asyncio.gather(store.backup(copy), *writes)
        epoch = store.epoch
    async with EdgeStore.open(copy, site_id="demo") as restored:
        report = await restored.verify_chain()
        events = await restored.events_above(0, 1000)
        memory = restored.load_memory_rows()
        assert restored.epoch == epoch
    assert report.ok
    if events:  # the copy is some committed prefix: memory matches its last event
        assert memory["last"] == events[-1]["detail"]["n"]
    else:
        assert memory == {}


async def test_a_locked_database_holds_events_in_order_then_writes_them_with_an_alarm(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("edge.store._db.BUSY_TIMEOUT_MS", 50)
    monkeypatch.setattr("edge.store._writer.RETRY_S", 0.05)
    async with EdgeStore.open(db_path, site_id="demo") as store:
        await store.record_event(access(0))
        other = raw(db_path)  # e.g. a maintenance tool holding the write lock
        other.execute("BEGIN IMMEDIATE")
        held = [await store.record_event(access(i)) for i in (1, 2)]
        assert [e["seq"] for e in held] == [2, 3]
        assert not store.storage.ok
        assert store.storage.held == 2
        assert "locked" in (store.storage.error or "")
        # an audit line is held too (what it records already happened) ...
        await store.audit("admin:alice", "door.unlock", "door/gate")
        # ... a write that is neither fails, saying why, and is counted
        with pytest.raises(StorageUnavailable, match="cannot be written now"):
            await store.set_acknowledged(1)
        other.execute("ROLLBACK")
        other.close()
        for _ in range(200):
            if store.storage.ok:
                break
            await asyncio.sleep(0.02)
        assert store.storage.ok
        after = await store.record_event(access(3))
        events = await store.events_above(0, 100)
        assert [(e["seq"], e["action"]) for e in events] == [
            (1, "card"),
            (2, "card"),
            (3, "card"),
            (4, "storage_unavailable"),
            (5, "card"),
        ]
        # the held events were written exactly as the callers were told
        assert events[1:3] == held
        assert after["seq"] == 5
        (alarm,) = await store.query_alarms()
        assert alarm["kind"] == "storage_unavailable"
        assert alarm["event_seq"] == 4
        assert alarm["detail"]["held"] == 3  # the two events and the audit line
        assert alarm["detail"]["failed_writes"] == 1
        assert alarm["detail"]["lost"] == 0
        audit, _ = await store.query_audit()
        assert [a["action"] for a in audit] == ["door.unlock"]
        assert (await store.verify_chain()).ok


async def test_database_files_are_private_and_the_writer_thread_ends(tmp_path: Path) -> None:
    path = tmp_path / "private.db"
    async with EdgeStore.open(path, site_id="demo") as store:
        await store.record_event(access(0))
        modes = {f.name: f.stat().st_mode & 0o777 for f in tmp_path.iterdir()}
        assert any(t.name == "doorkeep-store-writer" for t in threading.enumerate())
    assert modes == {
        "private.db": 0o600,
        "private.db-wal": 0o600,
        "private.db-shm": 0o600,
        "private.db.spill": 0o600,  # the storage-outage marker (docs/storage.md)
    }
    assert not any(t.name == "doorkeep-store-writer" for t in threading.enumerate())


JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet="abcxyz_éü", max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(details=st.lists(st.dictionaries(st.sampled_from(["a", "b", "ü"]), JSON_VALUES), max_size=6))
async def test_anyone_can_recompute_the_chain_from_the_documented_rule(
    tmp_path_factory: pytest.TempPathFactory, details: list[dict[str, Any]]
) -> None:
    """sha256(prev + canonical JSON of the twelve fields), genesis from the epoch:
    written out here with hashlib and json only, as docs/storage.md states it."""
    path = tmp_path_factory.mktemp("chain") / "c.db"
    async with EdgeStore.open(path, site_id="demo") as store:
        for i, detail in enumerate(details):
            await store.record_event(access(i, detail=detail))
        events = await store.events_above(0, 100)
        epoch = store.epoch
    prev = hashlib.sha256(f"doorkeep-chain:{epoch}".encode()).hexdigest()
    for event, detail in zip(events, details, strict=True):
        assert event["detail"] == detail
        body = {k: v for k, v in event.items() if k not in ("hash", "epoch", "redacted")}
        assert len(body) == 12
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        prev = hashlib.sha256(prev.encode() + canonical.encode()).hexdigest()
        assert event["hash"] == prev


async def test_a_burst_of_ten_thousand_events_is_logged_with_nothing_lost(
    store: EdgeStore, reliability: Reliability
) -> None:
    n = reliability.scaled(10_000)
    tasks: list[asyncio.Task[dict[str, Any]]] = []
    for i in range(n):  # all in flight at once; created in slices so no callback runs long
        tasks.append(asyncio.create_task(store.record_event(access(i))))
        if i % 500 == 499:
            await asyncio.sleep(0)
    answers = await asyncio.gather(*tasks)
    assert sorted(a["seq"] for a in answers) == list(range(1, n + 1))
    events: list[dict[str, Any]] = []
    seq = 0
    while batch := await store.events_above(seq, 1000):
        events += batch
        seq = batch[-1]["seq"]

    def check() -> None:  # off the loop: at --long scale these are 50,000-row comparisons
        assert [e["seq"] for e in events] == list(range(1, n + 1))
        assert sorted(e["detail"]["n"] for e in events) == list(range(n))
        assert {a["seq"]: a for a in answers} == {e["seq"]: e for e in events}

    await asyncio.to_thread(check)
    assert (await store.verify_chain()).ok
    reliability.row(
        test="event burst",
        load=f"{n} events recorded at once",
        losses="0",
        events=n,
        commits=store.writer_stats.commits,
    )
