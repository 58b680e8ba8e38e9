"""The daemon's start-up heap (imports, the policy snapshot, the app) is frozen out of the
cyclic garbage collector: a full collection then scans only what came later, so it no
longer stops the loop for tens of milliseconds under load (docs/performance.md)."""

from __future__ import annotations

import gc
import weakref

from edge.daemon import frozen_heap


class Node:
    """Something that can hold a reference cycle."""

    other: object | None = None


def test_the_start_up_heap_is_frozen_while_serving_and_new_garbage_is_still_collected() -> None:
    kept = Node()  # made "at start-up": frozen with the rest
    with frozen_heap():
        assert gc.get_freeze_count() > 0
        assert all(o is not kept for o in gc.get_objects())  # no collection scans it
        cycle = Node()
        cycle.other = cycle
        gone = weakref.ref(cycle)
        del cycle
        gc.collect()
        assert gone() is None  # garbage made while serving is still collected
    assert gc.get_freeze_count() == 0  # at shutdown the heap is collectable again
    assert any(o is kept for o in gc.get_objects())
