"""Reader tokens: the one secret an ``http`` reader (LPR camera, IP door phone) posts with.

A reader token is bound to one reader of ``type = "http"``: it opens only that reader's
``POST /api/v1/readers/{id}/input`` and nothing else (it is not an API token, so every
other endpoint answers 401 to it; an API token, even an admin's, is refused by the input
endpoint with 403). It lives beside the API tokens in ``data_dir/auth.db``, made and
stored the same way: 256 random bits, shown once, kept as SHA-256 only.

One token per reader: making a new one replaces the old at once (rotation after a camera
is swapped or its configuration leaked), and ``revoke`` removes it.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable

#: Reader tokens start with this, so a log line or a support ticket tells them apart.
PREFIX = "dkr_"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reader_tokens (
    reader TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
"""


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class ReaderTokens:
    """The reader-token table of the auth database (shares the AuthStore's connection)."""

    def __init__(
        self, conn: sqlite3.Connection, lock: threading.Lock, clock: Callable[[], float]
    ) -> None:
        self._db = conn
        self._lock = lock
        self._clock = clock
        with lock:
            conn.executescript(_SCHEMA)

    def create(self, reader: str) -> str:
        """A new token for ``reader``, replacing its old one; shown only this once."""
        token = PREFIX + secrets.token_urlsafe(32)
        with self._lock:
            self._db.execute(
                "INSERT INTO reader_tokens (reader, token_hash, created) VALUES (?, ?, ?) "
                "ON CONFLICT(reader) DO UPDATE SET token_hash = excluded.token_hash, "
                "created = excluded.created",
                (reader, _sha256(token), self._clock()),
            )
        return token

    def revoke(self, reader: str) -> bool:
        """Remove the reader's token; False when it had none."""
        with self._lock:
            cur = self._db.execute("DELETE FROM reader_tokens WHERE reader = ?", (reader,))
        return cur.rowcount > 0

    def reader_of(self, token: str) -> str | None:
        """The reader a token is bound to, or None (unknown, revoked, or not a reader token)."""
        if not token.startswith(PREFIX):
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT reader FROM reader_tokens WHERE token_hash = ?", (_sha256(token),)
            ).fetchone()
        return None if row is None else str(row[0])

    def listed(self) -> list[dict[str, object]]:
        """Every reader that has a token, with when it was made (never the token)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT reader, created FROM reader_tokens ORDER BY reader"
            ).fetchall()
        return [{"reader": r, "created": c} for r, c in rows]
