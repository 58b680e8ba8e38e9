"""The shared backoff and link-health helper: delays, jitter bounds, log once each way."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from doorkeep.link import Backoff, LinkHealth

LOGGER = "tests.link"


def test_delays_double_from_the_base_and_stop_at_the_cap() -> None:
    backoff = Backoff(0.5, 4.0, rng=lambda: 1.0)  # no jitter: the ceiling itself
    assert [backoff.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next() == 0.5


@given(
    base=st.floats(0.01, 5.0),
    factor=st.floats(1.0, 100.0),
    attempts=st.integers(1, 80),
    draws=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=80, max_size=80),
)
def test_jitter_stays_between_half_the_ceiling_and_the_ceiling(
    base: float, factor: float, attempts: int, draws: list[float]
) -> None:
    rng = iter(draws)
    backoff = Backoff(base, base * factor, rng=lambda: next(rng))
    for _ in range(attempts):
        ceiling = backoff.ceiling()
        delay = backoff.next()
        assert ceiling / 2 <= delay <= ceiling <= base * factor


def test_a_bad_range_is_refused_with_both_values() -> None:
    with pytest.raises(ValueError, match=r"2\.0 and 1\.0"):
        Backoff(2.0, 1.0)


def test_one_warning_when_the_link_breaks_one_info_when_it_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    now = [100.0]
    health = LinkHealth(
        "broker",
        base_s=1.0,
        cap_s=8.0,
        logger=logging.getLogger(LOGGER),
        rng=lambda: 1.0,
        clock=lambda: now[0],
    )
    assert health.ok() is False  # first contact: nothing to recover from, nothing logged
    assert caplog.records == []
    delays = []
    for _ in range(5):
        delays.append(health.failed(OSError("connection refused")))
        now[0] += delays[-1]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert health.failing
    assert health.ok() is True
    assert health.ok() is False
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]
    assert records == [
        (logging.WARNING, "broker failed: connection refused; retrying with backoff"),
        (logging.INFO, "broker recovered"),
    ]
    assert (health.failures, health.outages, health.recoveries) == (5, 1, 1)
    assert health.failed(TimeoutError()) == 1.0  # a new outage starts at the base again
    assert caplog.records[-1].getMessage() == "broker failed: TimeoutError; retrying with backoff"


def test_templates_see_the_outage_length_the_cap_and_the_callers_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    now = [0.0]
    health = LinkHealth(
        "mqtt",
        base_s=0.5,
        cap_s=60.0,
        logger=logging.getLogger(LOGGER),
        broke="%(name)s unreachable (%(reason)s); backoff up to %(cap_s).0f s",
        recovered="%(name)s is back after %(down_s).0f s; %(dropped)d dropped",
        clock=lambda: now[0],
    )
    health.failed(OSError("x"), reason="refused")
    now[0] = 42.0
    health.ok(dropped=3)
    assert [r.getMessage() for r in caplog.records] == [
        "mqtt unreachable (refused); backoff up to 60 s",
        "mqtt is back after 42 s; 3 dropped",
    ]
