"""Exactly-once event ingestion, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloud_sync.store import CloudStore


def ev(seq: int, tag: str = "") -> dict:
    return {
        "seq": seq,
        "at": f"2026-11-25T10:00:{seq % 60:02d}+01:00",
        "type": "access",
        "action": "present",
        "result": "success",
        "hash": f"h{seq}{tag}",
    }


async def test_duplicates_are_stored_once(store: CloudStore) -> None:
    await store.add_site("s1")
    first = await store.ingest("s1", "e1", [ev(1), ev(2), ev(3)])
    again = await store.ingest("s1", "e1", [ev(2), ev(3), ev(4)])
    assert (first.watermark, first.inserted) == (3, 3)
    assert (again.watermark, again.inserted, again.duplicates, again.conflicts) == (4, 1, 2, 0)
    assert await store.event_log.event_seqs("s1", "e1") == [1, 2, 3, 4]
    assert await store.alarms("s1") == []


async def test_same_seq_with_other_hash_raises_an_alarm_and_keeps_the_first(
    store: CloudStore,
) -> None:
    await store.add_site("s1")
    await store.ingest("s1", "e1", [ev(1), ev(2)])
    result = await store.ingest("s1", "e1", [ev(2, "-forged")])
    assert result.conflicts == 1
    (alarm,) = await store.alarms("s1")
    assert alarm["kind"] == "event_conflict"
    assert "seq 2" in alarm["message"]
    (stored,) = [e for e in await store.events("s1") if e["seq"] == 2]
    assert stored["hash"] == "h2"


async def test_watermark_is_contiguous_across_gaps(store: CloudStore) -> None:
    await store.add_site("s1")
    assert (await store.ingest("s1", "e1", [ev(1), ev(2), ev(5), ev(6)])).watermark == 2
    assert (await store.ingest("s1", "e1", [ev(4)])).watermark == 2
    assert (await store.ingest("s1", "e1", [ev(3)])).watermark == 6
    assert await store.event_log.watermark("s1", "e1") == 6


async def test_epochs_are_independent(store: CloudStore) -> None:
    await store.add_site("s1")
    await store.ingest("s1", "old", [ev(1), ev(2), ev(3)])
    fresh = await store.ingest("s1", "new", [ev(1)])
    assert fresh.watermark == 1
    assert fresh.inserted == 1
    assert await store.event_log.event_count("s1") == 4


async def test_empty_upload_answers_the_watermark(store: CloudStore) -> None:
    await store.add_site("s1")
    await store.ingest("s1", "e1", [ev(1)])
    assert (await store.ingest("s1", "e1", [])).watermark == 1


async def test_resend_request_clears_once_the_gap_is_filled(store: CloudStore) -> None:
    await store.add_site("s1")
    await store.ingest("s1", "e1", [ev(1), ev(3)])
    await store.ask_resend("s1", 2)
    assert (await store.ingest("s1", "e1", [])).resend_from == 2
    done = await store.ingest("s1", "e1", [ev(2), ev(3)])
    assert (done.watermark, done.resend_from) == (3, None)
