""" "Present a card now": the next card at a reader, captured as an enrolment token."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from doorkeep import policydoc
from doorkeep.errors import NotFound
from edge.core.model import PolicySnapshot

CAPTURED_KINDS = frozenset({"rf_card", "uhf_card"})


class Captures:
    """Readers waiting for a card to enrol, and the card presented at each."""

    def __init__(self, secret: bytes, snapshot: Callable[[], PolicySnapshot]) -> None:
        self._secret = secret
        self._snapshot = snapshot
        self._waiting: dict[str, asyncio.Future[str]] = {}

    def offer(self, reader: str, kind: str, value: str) -> None:
        """A presentation at ``reader``: it is the captured card if one is awaited."""
        if kind in CAPTURED_KINDS and reader in self._waiting:
            capture = self._waiting.pop(reader)
            if not capture.done():
                capture.set_result(policydoc.credential_hmac(self._secret, kind, value))

    async def next_card(self, reader: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """The next card at ``reader``, as an enrolment token.

        The answer carries ``value_hmac`` (never the number), ready to be put as a new
        credential; whether the card is already known is said too.
        """
        if reader not in self._snapshot().readers:
            raise NotFound(f"reader {reader!r} is not in site.toml")
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting[reader] = future
        try:
            digest = await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise TimeoutError(
                f"no card was presented at {reader} within {timeout_s:.0f} s"
            ) from None
        finally:
            self._waiting.pop(reader, None)
        known = self._snapshot().credentials.get(digest, ())
        return {
            "reader": reader,
            "value_hmac": digest,
            "known": bool(known),
            "credential": known[0].id if known else None,
        }
