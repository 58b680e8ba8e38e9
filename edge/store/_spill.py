"""What the store does while SQLite cannot write: the spill queue's outage and its marker.

Theory (docs/storage.md, *When storage fails*): an event that cannot be committed
(disk full, I/O error, the file locked by another process) is *held* by the writer
thread, in order, with the seq and hash it will get, and written before anything else
as soon as a commit succeeds again. The caller hears "done" at once, so decisions go
on. Held events live only in memory; if the process dies before storage returns they
are lost, and the next start must be able to say how many. It cannot write that into
the full database, so the count goes into a small *marker file* beside it, allocated
at open (``MARKER_SIZE`` bytes, written in place): overwriting blocks a file already
owns needs no free space. The marker names the epoch and the highest held seq; at the
next open, ``high_seq - head_seq`` of the same epoch is the number lost.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

_log = logging.getLogger(__name__)

# Bytes of the marker file: one JSON object padded with spaces.
MARKER_SIZE = 1024
# The longest error text kept (the marker must stay within MARKER_SIZE).
ERROR_CHARS = 200

# SQLite primary result codes that mean "the storage failed", not "the query was wrong":
# BUSY, LOCKED, NOMEM, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL.
_STORAGE_CODES = frozenset({5, 6, 7, 8, 10, 11, 13, 14, 15})


def is_storage_fault(err: BaseException) -> bool:
    """True when ``err`` says the database could not be written, whatever was asked."""
    if isinstance(err, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)):
        return False
    if isinstance(err, sqlite3.DatabaseError):
        code = getattr(err, "sqlite_errorcode", None)
        return code is None or (code & 0xFF) in _STORAGE_CODES
    return isinstance(err, OSError)


@dataclass(slots=True)
class Outage:
    """One stretch of time in which commits failed (kept until its alarm is recorded)."""

    epoch: str
    since: str  # ISO time of the first failed commit
    error: str  # the first error, as SQLite said it (no traceback)
    high_seq: int = 0  # the highest seq handed out to a held event
    held: int = 0  # events held in memory during the outage (all of them, written or not)
    dropped: int = 0  # events refused because the spill queue was full
    refused: int = 0  # presentations refused before deciding (spill queue full)
    failed_writes: int = 0  # other writes (audit, state, policy) that failed
    lost: int = 0  # held events that died with the process (known only at the next open)
    recovered_at: str | None = None

    def detail(self) -> dict[str, Any]:
        """The alarm's detail: everything but the epoch."""
        out = asdict(self)
        out.pop("epoch")
        return out


class Marker:
    """The marker file ``<db>.spill``: the open outage of this database, if any."""

    def __init__(self, path: Path) -> None:
        """No I/O; ``open`` allocates the file."""
        self.path = path
        self._fd: int | None = None
        self._written = False

    def open(self) -> Outage | None:
        """Allocate the file (once) and return the outage it records, if any.

        Blocking: runs where the store opens, in a worker thread.
        """
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        raw = os.pread(fd, MARKER_SIZE, 0)
        if len(raw) < MARKER_SIZE:
            os.pwrite(fd, b" " * MARKER_SIZE, 0)
            os.fsync(fd)
        self._fd = fd
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            return None
        try:
            outage = Outage(**json.loads(text))
        except (ValueError, TypeError):
            _log.warning("%s: unreadable storage-outage marker ignored", self.path)
            return None
        self._written = True
        return outage

    def write(self, outage: Outage) -> None:
        """Record ``outage`` in place (writer thread); a failure is logged, not raised."""
        body = json.dumps(asdict(outage), separators=(",", ":")).encode()
        self._put(body.ljust(MARKER_SIZE))
        self._written = True

    def clear(self) -> None:
        """Forget the outage: its alarm is durable."""
        if self._written:
            self._put(b" " * MARKER_SIZE)
            self._written = False

    def _put(self, data: bytes) -> None:
        if self._fd is None or len(data) > MARKER_SIZE:
            _log.error("storage-outage marker not written (%d bytes)", len(data))
            return
        try:
            os.pwrite(self._fd, data, 0)
            os.fsync(self._fd)
        except OSError as err:
            _log.error("storage-outage marker %s not written: %s", self.path, err)

    def close(self) -> None:
        """Close the file."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def short_error(err: BaseException) -> str:
    """The error's own message, bounded (SQLite's text, never a traceback)."""
    return (str(err) or type(err).__name__)[:ERROR_CHARS]


def iso(moment: datetime) -> str:
    """A time as the marker and the alarm show it."""
    return moment.isoformat(timespec="milliseconds")
