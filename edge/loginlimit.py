"""The login rate limit: failed logins counted per user name and per client address,
in memory, with an injected clock (docs/security.md, *Login rate limit*).

An attempt is counted (`LoginLimiter.reserve`) *before* its password is hashed, so a
burst of simultaneous logins cannot all be checked before the first failure counts.
Buckets that hold nothing (no failure inside the window, not blocked) are dropped, at
most once per doubling of their number, so a flood from many addresses neither grows
memory forever nor pays a sweep on every attempt.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

LOGIN_FREE_FAILURES = 5
LOGIN_WINDOW_S = 15 * 60
LOGIN_BACKOFF_BASE_S = 2.0
LOGIN_BACKOFF_CAP_S = 15 * 60.0
# Buckets kept before the first sweep of empty ones (then: twice what a sweep left).
PRUNE_FROM = 10_000


@dataclass(frozen=True, slots=True)
class Reservation:
    """One login attempt, counted as a failure until `LoginLimiter.release` says otherwise."""

    at: float
    keys: tuple[str, str]
    blocked_before: tuple[float, float]


@dataclass(slots=True)
class _Bucket:
    failures: list[float] = field(default_factory=list)
    blocked_until: float = 0.0

    def holds(self, now: float) -> bool:
        """Still blocked, or a failure inside the window still counts."""
        return self.blocked_until > now or any(now - t < LOGIN_WINDOW_S for t in self.failures)


class LoginLimiter:
    """Refuses login attempts for a while after repeated failures.

    Counted separately per username and per client address; after
    `LOGIN_FREE_FAILURES` failures inside `LOGIN_WINDOW_S`, each further failure
    doubles the wait (from `LOGIN_BACKOFF_BASE_S`, capped at `LOGIN_BACKOFF_CAP_S`).
    A success clears the username's count (not the address's: one address guessing
    many names stays limited).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._prune_at = PRUNE_FROM

    def retry_after(self, username: str, address: str) -> float:
        """Seconds the caller must wait before trying again; 0 when allowed now."""
        now = self._clock()
        waits = [
            b.blocked_until - now for k in _keys(username, address) if (b := self._buckets.get(k))
        ]
        return max([0.0, *waits])

    def reserve(self, username: str, address: str) -> Reservation | None:
        """Count an attempt *before* its password is checked; None when it must wait.

        Checking first and counting after let 100 simultaneous logins all be checked
        before the first failure was counted. The slot is a failure unless released.
        """
        if self.retry_after(username, address) > 0:
            return None
        keys = _keys(username, address)
        before = tuple(b.blocked_until if (b := self._buckets.get(k)) else 0.0 for k in keys)
        at = self._count(keys)
        return Reservation(at, keys, (before[0], before[1]))

    def release(self, reservation: Reservation) -> None:
        """Undo a reservation that was not a failed guess (a success, a busy server)."""
        for key, before in zip(reservation.keys, reservation.blocked_before, strict=True):
            bucket = self._buckets.get(key)
            if bucket is None:
                continue
            if reservation.at in bucket.failures:
                bucket.failures.remove(reservation.at)
            if len(bucket.failures) < LOGIN_FREE_FAILURES:
                bucket.blocked_until = before

    def failed(self, username: str, address: str) -> None:
        """Record a failed attempt."""
        self._count(_keys(username, address))

    def _count(self, keys: tuple[str, str]) -> float:
        now = self._clock()
        for key in keys:
            bucket = self._buckets.setdefault(key, _Bucket())
            bucket.failures = [t for t in bucket.failures if now - t < LOGIN_WINDOW_S]
            bucket.failures.append(now)
            excess = len(bucket.failures) - LOGIN_FREE_FAILURES
            if excess >= 0:
                wait = min(LOGIN_BACKOFF_CAP_S, LOGIN_BACKOFF_BASE_S * 2**excess)
                bucket.blocked_until = now + wait
        if len(self._buckets) > self._prune_at:  # a flood of addresses: drop empty buckets
            self._buckets = {k: b for k, b in self._buckets.items() if b.holds(now)}
            self._prune_at = max(PRUNE_FROM, 2 * len(self._buckets))
        return now

    def counted(self) -> int:
        """How many user names and addresses are counted now (for tests and metrics)."""
        return len(self._buckets)

    def succeeded(self, username: str) -> None:
        """Forget the failures of ``username``."""
        self._buckets.pop(_keys(username, "")[0], None)


def _keys(username: str, address: str) -> tuple[str, str]:
    return (f"user:{username.lower()}", f"addr:{address}")
