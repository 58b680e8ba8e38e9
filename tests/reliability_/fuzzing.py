"""What the fuzz tests of this package share: arbitrary JSON, a case counter, the runner.

A fuzz test counts the examples its properties ran (``Cases``) and runs each property for
``reliability.scaled(examples)`` cases (``run``), so the row says how many inputs held.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.reliability import Reliability

T = TypeVar("T")

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=25,
)


class Cases:
    """Counts the examples one property ran (Hypothesis runs the body once per case)."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> None:
        self.n += 1


def run(prop: Callable[[], None], reliability: Reliability, examples: int) -> None:
    settings(
        max_examples=reliability.scaled(examples),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )(prop)()


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` four times in five, so that whole inputs often get past the first check."""
    return st.integers(0, 4).flatmap(lambda i: bad if i == 0 else good)


def tally(counts: dict[Any, int], key: Any) -> None:
    counts[key] = counts.get(key, 0) + 1


def spelled(counts: dict[Any, int]) -> str:
    """``{400: 3, 200: 1}`` as the table shows it: ``200: 1, 400: 3``."""
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: str(kv[0])))


@contextlib.contextmanager
def on_a_loop(cm: AbstractAsyncContextManager[T]) -> Iterator[tuple[asyncio.Runner, T]]:
    """What ``cm`` opens (a site, a site's web app) on an event loop of its own, which
    each Hypothesis example then runs its requests on (``runner.run``)."""
    with asyncio.Runner() as runner:
        value = runner.run(cm.__aenter__())
        try:
            yield runner, value
        finally:
            runner.run(cm.__aexit__(None, None, None))
