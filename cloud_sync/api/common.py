"""What the cloud API's handlers share: app keys, the handler registry, small helpers."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cloud_sync.store import CloudStore
from doorkeep.web import Handlers, parse_json

STORE: web.AppKey[CloudStore] = web.AppKey("store", CloudStore)
SITE: web.RequestKey[str] = web.RequestKey("site_id", str)
ACTOR: web.RequestKey[str] = web.RequestKey("actor", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Every cloud API handler, by operationId (the route row's ``op``).
HANDLERS: Handlers[Handler] = Handlers()

#: URL segment → policy document list (the same names as the edge's REST API).
ENTITY_PATHS: dict[str, str] = {
    "people": "people",
    "credentials": "credentials",
    "groups": "groups",
    "temp-keys": "temp_keys",
    "apartments": "apartments",
    "buildings": "buildings",
    "reservations": "reservations",
}


async def read_json(request: web.Request) -> Any:
    """The request's JSON body (``None`` when empty); bad or too deep JSON is a 400 ``bad_json``."""
    return parse_json(await request.read() or b"null")


def site_id(request: web.Request) -> str:
    """The ``{site}`` of the URL."""
    return request.match_info["site"]


def policy_headers(version: int, digest: str) -> dict[str, str]:
    """The headers that tell an admin client which policy version an answer reflects."""
    return {"Doorkeep-Policy-Version": str(version), "Doorkeep-Policy-Digest": digest}


class FailureLimiter:
    """Counts failures per key in a sliding window; a key over the limit is refused.

    Enrollment codes are short enough to type, so guessing must be slow: per address,
    ``ENROLL_FAILURES`` wrong codes per ``ENROLL_WINDOW_S``. (Per worker process; behind
    a load balancer the limit multiplies by the number of workers, still far from 2**40.)
    """

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        times = self._failures.get(key, deque())
        cutoff = self.clock() - self.window_s
        while times and times[0] < cutoff:
            times.popleft()
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def blocked(self, key: str) -> bool:
        """Whether ``key`` has used up its failures in the window."""
        return len(self._recent(key)) >= self.limit

    def failed(self, key: str) -> None:
        """Record one failure of ``key``."""
        times = self._recent(key)
        times.append(self.clock())
        self._failures[key] = times


ENROLL_FAILURES = 10
ENROLL_WINDOW_S = 60.0
LIMITER: web.AppKey[FailureLimiter] = web.AppKey("enroll_limiter", FailureLimiter)
