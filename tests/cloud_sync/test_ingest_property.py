"""Hypothesis: whatever order, repetition and batching uploads arrive in, each sequence
number is stored once and the watermark is the longest contiguous prefix."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_sync.keys import CloudKeys
from cloud_sync.store import CloudStore

uploads = st.lists(st.lists(st.integers(1, 30), max_size=12), min_size=1, max_size=8)


@settings(max_examples=25, deadline=None)
@given(uploads)
def test_any_upload_history_stores_each_seq_once(batches: list[list[int]]) -> None:
    async def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            keys = CloudKeys.load(Path(tmp) / "keys")
            async with CloudStore(f"sqlite:///{tmp}/c.db", keys) as store:
                await store.add_site("s")
                seen: set[int] = set()
                for batch in batches:
                    result = await store.ingest(
                        "s", "e", [{"seq": q, "hash": f"h{q}"} for q in batch]
                    )
                    seen |= set(batch)
                    prefix = 0
                    while prefix + 1 in seen:
                        prefix += 1
                    assert result.watermark == prefix
                    assert result.conflicts == 0
                assert await store.event_log.event_seqs("s", "e") == sorted(seen)

    asyncio.run(run())
