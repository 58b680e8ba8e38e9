"""Link health: jittered capped backoff, and one log line when a link breaks and one when
it recovers (not one per retry).

Every long-lived connection of doorkeep (an RS485-over-TCP board, the MQTT broker, the
cloud's policy and event links, the cloud store's LISTEN connection) retries the same way:

    health = LinkHealth("cloud policy link", base_s=0.5, cap_s=60.0, logger=log)
    while True:
        try:
            await talk()
            health.ok()
        except OSError as err:
            await asyncio.sleep(health.failed(err))

The n-th consecutive failure waits ``min(cap, base * 2**n)`` scaled by a factor drawn from
[0.5, 1.0): "equal jitter", so many sites do not retry in lock-step after an outage and
no wait exceeds the cap. The random source and the clock are injectable for tests.
"""

from __future__ import annotations

import logging
import random
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Backoff", "LinkHealth"]

_log = logging.getLogger(__name__)


class Backoff:
    """Doubling, capped, jittered delays: :meth:`next` for each retry, :meth:`reset` on success."""

    __slots__ = ("attempt", "base_s", "cap_s", "rng")

    def __init__(
        self, base_s: float, cap_s: float, *, rng: Callable[[], float] = random.random
    ) -> None:
        if not 0 < base_s <= cap_s:
            raise ValueError(f"backoff needs 0 < base_s <= cap_s, got {base_s} and {cap_s}")
        self.base_s = base_s
        self.cap_s = cap_s
        self.rng = rng
        #: Consecutive retries since the last reset.
        self.attempt = 0

    def ceiling(self) -> float:
        """The un-jittered delay of the next retry."""
        return min(self.cap_s, self.base_s * 2.0 ** min(self.attempt, 60))

    def next(self) -> float:
        """Seconds to wait before the next retry (and count it)."""
        delay = self.ceiling() * (0.5 + self.rng() / 2)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """The link works: the next failure starts again at ``base_s``."""
        self.attempt = 0


class LinkHealth:
    """A link's state: up or failing, with backoff, log-once messages and counters.

    ``broke`` and ``recovered`` are %-style templates over a mapping with ``name``,
    ``error`` (the exception text, else its type name), ``cap_s``, ``down_s`` (seconds
    since the link broke; recovery only) and whatever keywords the caller passes to
    :meth:`failed` or :meth:`ok`.
    """

    def __init__(
        self,
        name: str,
        *,
        base_s: float,
        cap_s: float,
        logger: logging.Logger = _log,
        broke: str = "%(name)s failed: %(error)s; retrying with backoff",
        recovered: str = "%(name)s recovered",
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.backoff = Backoff(base_s, cap_s, rng=rng)
        self.log = logger
        self.broke = broke
        self.recovered = recovered
        self.clock = clock
        #: When the current outage began (``clock`` time); None while the link is up.
        self.down_since: float | None = None
        #: Counters for metrics: failed attempts, outages, recoveries.
        self.failures = 0
        self.outages = 0
        self.recoveries = 0

    @property
    def failing(self) -> bool:
        """Whether the last attempt failed."""
        return self.down_since is not None

    def failed(self, err: BaseException, **fields: object) -> float:
        """Record a failed attempt; the seconds to wait before the next one.

        Logs a WARNING only when this failure breaks a working (or never-yet-working) link.
        """
        self.failures += 1
        if self.down_since is None:
            self.down_since = self.clock()
            self.outages += 1
            self.log.warning(self.broke, self._fields(fields, error=str(err) or type(err).__name__))
        return self.backoff.next()

    def ok(self, **fields: object) -> bool:
        """Record a working link; True when this ends an outage (logged once at INFO)."""
        self.backoff.reset()
        if self.down_since is None:
            return False
        down_s = self.clock() - self.down_since
        self.down_since = None
        self.recoveries += 1
        self.log.info(self.recovered, self._fields(fields, down_s=down_s))
        return True

    def _fields(
        self, fields: dict[str, object], *, error: str = "", down_s: float = 0.0
    ) -> dict[str, object]:
        return {
            "name": self.name,
            "error": error,
            "cap_s": self.backoff.cap_s,
            "down_s": down_s,
            **fields,
        }
