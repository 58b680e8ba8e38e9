"""Per-board bus statistics: mutable counters inside the bus, frozen snapshots outside."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

__all__ = ["LATENCY_BUCKETS_MS", "BoardStats", "Counters"]

# Upper bounds (ms) of the latency histogram; the last bucket catches everything slower.
LATENCY_BUCKETS_MS: tuple[float, ...] = (2, 5, 10, 20, 30, 50, 100, 200, 500, 1000, math.inf)


@dataclass(frozen=True, slots=True)
class BoardStats:
    """What the bus saw of one address (a snapshot; values never change after creation).

    ``latency_histogram`` pairs each bucket's upper bound in ms with the number of answered
    transactions (request sent to answer received, including wire time) that fell in it.
    ``echo_errors`` counts write answers that did not confirm the write (rtu.check_write_echo).
    ``online`` is None until the address has either answered or failed once.
    """

    address: int
    requests: int = 0
    responses: int = 0
    timeouts: int = 0
    crc_errors: int = 0
    bad_frames: int = 0
    echo_errors: int = 0
    exceptions: int = 0
    retries: int = 0
    failures: int = 0
    last_seen: float | None = None
    online: bool | None = None
    latency_histogram: tuple[tuple[float, int], ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 255:
            raise ValueError(f"address {self.address} is outside 0..255")
        counts = (self.requests, self.responses, self.timeouts, self.crc_errors, self.retries)
        if min(counts) < 0:
            raise ValueError(f"negative counter in statistics of address {self.address}")

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form (infinite bucket bound written as ``"inf"``)."""
        return {
            "address": self.address,
            "requests": self.requests,
            "responses": self.responses,
            "timeouts": self.timeouts,
            "crc_errors": self.crc_errors,
            "bad_frames": self.bad_frames,
            "echo_errors": self.echo_errors,
            "exceptions": self.exceptions,
            "retries": self.retries,
            "failures": self.failures,
            "last_seen": self.last_seen,
            "online": self.online,
            "latency_histogram": [
                ["inf" if math.isinf(bound) else bound, n] for bound, n in self.latency_histogram
            ],
        }


@dataclass(slots=True)
class Counters:
    """The mutable side, owned by one bus task (no locking needed: one owner)."""

    address: int
    requests: int = 0
    responses: int = 0
    timeouts: int = 0
    crc_errors: int = 0
    bad_frames: int = 0
    echo_errors: int = 0
    exceptions: int = 0
    retries: int = 0
    failures: int = 0
    last_seen: float | None = None
    online: bool | None = None
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS_MS))

    def record_latency(self, seconds: float) -> None:
        """Count one answered transaction in its histogram bucket."""
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS_MS, seconds * 1000.0)] += 1

    def snapshot(self) -> BoardStats:
        """A frozen copy for callers outside the bus task."""
        return BoardStats(
            address=self.address,
            requests=self.requests,
            responses=self.responses,
            timeouts=self.timeouts,
            crc_errors=self.crc_errors,
            bad_frames=self.bad_frames,
            echo_errors=self.echo_errors,
            exceptions=self.exceptions,
            retries=self.retries,
            failures=self.failures,
            last_seen=self.last_seen,
            online=self.online,
            latency_histogram=tuple(zip(LATENCY_BUCKETS_MS, self.buckets, strict=True)),
        )
