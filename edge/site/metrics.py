"""The site's Prometheus metrics and its component health.

Two kinds of numbers: what happens (decisions, their latency) is counted as it happens
in ``Site.present`` through `SiteMetrics.presentation`; what *is* (boards online, the
outbox backlog, the policy's age) is read at scrape time from a `Readings` the site
builds just before rendering, by a custom collector. Each `SiteMetrics` has its own
`CollectorRegistry` (never the global one: a process, a test run, may open many sites).

Health is a list of `Component` rows, one per store, bus, board, reader, MQTT link,
cloud sync and clock, each made by a small function of the site (``edge/site/site.py``:
``COMPONENTS``) so adding a component is one line.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# No ``*_created`` series: a start timestamp per counter is noise to a scraper (Prometheus
# knows when a counter reset), and digits that change with every start in every answer.
disable_created_metrics()  # type: ignore[no-untyped-call]

__all__ = [
    "BUS_OUTCOMES",
    "CONTENT_TYPE",
    "DECISION_BUCKETS_S",
    "BoardReading",
    "Component",
    "Readings",
    "SiteMetrics",
]

#: The media type of the Prometheus text exposition format 0.0.4.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Whole presentation path (decide + relay + record): a relay pulse over RS485 is
# ~10-60 ms, a commit a few ms; anything past a second is a problem worth seeing.
DECISION_BUCKETS_S: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip

# BoardStats field -> the ``outcome`` label of doorkeep_bus_transactions_total.
BUS_OUTCOMES: tuple[tuple[str, str], ...] = (
    ("responses", "answered"),
    ("timeouts", "timeout"),
    ("crc_errors", "crc_error"),
    ("bad_frames", "bad_frame"),
    ("exceptions", "exception"),
    ("retries", "retry"),
    ("failures", "failed"),
)


@dataclass(frozen=True, slots=True)
class Component:
    """One row of ``/health`` ``components``: ``reason`` says why when not ok."""

    name: str
    ok: bool
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class BoardReading:
    """One board as a scrape sees it: online, and (on a bus) its bus statistics."""

    board: str
    online: bool
    bus: str | None = None
    stats: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Readings:
    """The gauges of one scrape, read from the site's public state."""

    policy_version: int
    policy_age_s: float | None
    alarms_open: int
    outbox_backlog: int
    storage_ok: bool
    clock_trusted: bool
    boards: tuple[BoardReading, ...] = ()


class _Gauges(Collector):
    """Yields the scrape-time gauges from the readings handed in just before rendering."""

    def __init__(self, site_id: str, version: str) -> None:
        self.site_id = site_id
        self.version = version
        self.readings: Readings | None = None

    def collect(self) -> Iterable[Metric]:
        r = self.readings
        if r is None:  # registered but not scraped yet
            return
        info = GaugeMetricFamily(
            "doorkeep_info", "This gateway (always 1)", labels=["version", "site"]
        )
        info.add_metric([self.version, self.site_id], 1)
        yield info
        yield _gauge("doorkeep_policy_version", "Version of the policy in force", r.policy_version)
        if r.policy_age_s is not None:
            yield _gauge(
                "doorkeep_policy_age_seconds",
                "Seconds since the policy in force was committed",
                r.policy_age_s,
            )
        yield _gauge("doorkeep_alarms_open", "Unresolved alarm records", r.alarms_open)
        yield _gauge(
            "doorkeep_outbox_backlog",
            "Events not yet acknowledged by the cloud (0 when standalone)",
            r.outbox_backlog,
        )
        yield _gauge("doorkeep_storage_ok", "1 while the event store writes", int(r.storage_ok))
        yield _gauge(
            "doorkeep_clock_trusted", "1 while the clock passes the guard", int(r.clock_trusted)
        )
        online = GaugeMetricFamily(
            "doorkeep_board_online", "1 while the board answers", labels=["board"]
        )
        bus = CounterMetricFamily(
            "doorkeep_bus_transactions",
            "Bus transactions per board, by outcome",
            labels=["bus", "board", "outcome"],
        )
        for board in r.boards:
            online.add_metric([board.board], int(board.online))
            if board.bus is not None:
                for key, outcome in BUS_OUTCOMES:
                    bus.add_metric([board.bus, board.board, outcome], board.stats.get(key, 0))
        yield online
        yield bus


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class SiteMetrics:
    """The metrics of one site, in a registry of its own."""

    def __init__(self, site_id: str, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.decisions = Counter(
            "doorkeep_decisions",
            "Presentations decided, by result (success/failed/offline) and reason",
            ["result", "reason"],
            registry=self.registry,
        )
        self.decision_seconds = Histogram(
            "doorkeep_decision_seconds",
            "Seconds of the whole presentation path: decide, relay, record",
            buckets=DECISION_BUCKETS_S,
            registry=self.registry,
        )
        self._gauges = _Gauges(site_id, version)
        self.registry.register(self._gauges)

    @staticmethod
    def start() -> float:
        """The moment a presentation starts (hand it to `presented`)."""
        return time.perf_counter()

    def presented(self, started: float, answer: dict[str, Any]) -> dict[str, Any]:
        """Count one decided presentation (its ``result`` and ``reason``) and its time;
        returns ``answer`` unchanged. One that raised before deciding is not counted."""
        self.decision_seconds.observe(time.perf_counter() - started)
        self.decisions.labels(str(answer["result"]), str(answer["reason"])).inc()
        return answer

    def render(self, readings: Readings) -> bytes:
        """The Prometheus text of this site now, with ``readings`` as the gauges."""
        self._gauges.readings = readings
        return generate_latest(self.registry)
