"""The rate limit of notifications: at most ``n`` messages in any 60 seconds.

Pure: the caller passes the time (monotonic seconds). What the window refuses, the
notifier keeps for one digest, sent when the window has room again.
"""

from __future__ import annotations

from collections import deque
from typing import Final

WINDOW_S: Final = 60.0


class RateWindow:
    """A sliding window over the send times of the last ``limit`` messages."""

    __slots__ = ("_sent", "limit", "window_s")

    def __init__(self, limit: int, window_s: float | None = None) -> None:
        window_s = WINDOW_S if window_s is None else window_s
        if limit < 1 or window_s <= 0:
            raise ValueError(
                f"rate limit needs limit >= 1 and window_s > 0, got {limit}, {window_s}"
            )
        self.limit = limit
        self.window_s = window_s
        self._sent: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self.window_s:
            self._sent.popleft()

    def room(self, now: float) -> bool:
        """Whether one more message may go now (changes nothing)."""
        self._expire(now)
        return len(self._sent) < self.limit

    def take(self, now: float) -> bool:
        """Count one message sent now, if there is room; False (nothing counted) if not."""
        if not self.room(now):
            return False
        self._sent.append(now)
        return True

    def wait_s(self, now: float) -> float:
        """Seconds until there is room (0 when there is now)."""
        if self.room(now):
            return 0.0
        return max(0.0, self._sent[0] + self.window_s - now)
