"""Pure helpers of the store: event normalisation, the hash chain, cursors, time keys.

No I/O here, so the chain rule can be recomputed by anyone (the cloud, an auditor with
a copy of the database) from this file and ``docs/storage.md`` alone.

The chain: ``hash(n) = sha256(hash(n-1) + canonical_json(event n))`` as lowercase hex,
where the event is the twelve fields of the event shape (``EVENT_FIELDS``, ``seq``
included, ``hash`` and ``epoch`` excluded) and ``hash(0) = sha256("doorkeep-chain:" +
epoch)``, so two databases never share a chain even with identical events.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from doorkeep.errors import DoorkeepError, StorageError
from doorkeep.policydoc import canonical_json

# The event shape of INTERFACES.md, in column order.
EVENT_FIELDS: tuple[str, ...] = (
    "seq",
    "at",
    "type",
    "action",
    "result",
    "reason",
    "door",
    "reader",
    "person",
    "apartment",
    "credential_kind",
    "detail",
)
EVENT_TYPES: frozenset[str] = frozenset({"access", "door", "alarm", "emergency", "system"})
EVENT_RESULTS: frozenset[str] = frozenset({"success", "failed", "offline"})
_REQUIRED: tuple[str, ...] = ("at", "type", "action", "result")
# Keys that would carry a plaintext credential; the store refuses them anywhere in
# an event's detail even though callers hash first (defence in depth).
SENSITIVE_KEYS: frozenset[str] = frozenset({"value", "pin", "code", "card"})


class StoreError(StorageError):
    """The database could not be read or written (disk full, I/O error, locked by
    another process for longer than the busy timeout). The cause is chained."""


class StoreQueryError(DoorkeepError, ValueError):
    """A query or record was malformed (bad cursor, naive time, unknown field).

    Also a ValueError, so the REST layer answers 400 as for other bad input.
    """


class SensitiveDataError(StoreQueryError):
    """An event carried a key that may hold a plaintext PIN or card number."""


def genesis_hash(epoch: str) -> str:
    """The hash before the first event of a database with ``epoch``."""
    return hashlib.sha256(f"doorkeep-chain:{epoch}".encode()).hexdigest()


def event_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    """The chain hash of ``event`` (with its seq) following ``prev_hash``."""
    body = {name: event.get(name) for name in EVENT_FIELDS}
    return hashlib.sha256(prev_hash.encode() + canonical_json(body)).hexdigest()


def parse_time(value: datetime | str, what: str) -> datetime:
    """An aware datetime from a datetime or an ISO string with an offset."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as err:
            raise StoreQueryError(f"{what}: {value!r} is not an ISO 8601 time") from err
    if not isinstance(value, datetime):
        raise StoreQueryError(f"{what}: expected a time, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise StoreQueryError(f"{what}: {value.isoformat()} has no UTC offset; add one")
    return value


def time_key(moment: datetime) -> int:
    """Microseconds since the Unix epoch: an index key that orders across offsets."""
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def find_sensitive(obj: Any, path: str = "detail") -> str | None:
    """The path of the first key in ``obj`` that may hold a secret, or None."""
    if isinstance(obj, Mapping):
        for key, sub in obj.items():
            where = f"{path}.{key}"
            if str(key).lower() in SENSITIVE_KEYS:
                return where
            found = find_sensitive(sub, where)
            if found:
                return found
    elif isinstance(obj, list | tuple):
        for i, sub in enumerate(obj):
            found = find_sensitive(sub, f"{path}[{i}]")
            if found:
                return found
    return None


def normalise_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event in its stored form (without seq/hash), or StoreQueryError.

    ``at`` becomes an ISO string with its offset; missing optional fields become None;
    ``detail`` defaults to ``{}``. Unknown keys are refused so a typo is not lost.
    """
    unknown = set(event) - set(EVENT_FIELDS) - {"hash", "epoch", "redacted"}
    if unknown:
        raise StoreQueryError(f"event: unknown field(s) {sorted(unknown)}")
    missing = [name for name in _REQUIRED if not event.get(name)]
    if missing:
        raise StoreQueryError(f"event: missing field(s) {missing}")
    if event["type"] not in EVENT_TYPES:
        raise StoreQueryError(f"event: type {event['type']!r} is not one of {sorted(EVENT_TYPES)}")
    if event["result"] not in EVENT_RESULTS:
        raise StoreQueryError(
            f"event: result {event['result']!r} is not one of {sorted(EVENT_RESULTS)}"
        )
    detail = event.get("detail")
    if detail is None:
        detail = {}
    where = find_sensitive(detail)
    if where:
        # Never echo the value: the name of the key is enough to fix the caller.
        raise SensitiveDataError(
            f"event: {where} may hold a plaintext credential; pass only hashes or ****"
        )
    out = {name: event.get(name) for name in EVENT_FIELDS if name != "seq"}
    out["at"] = parse_time(event["at"], "event.at").isoformat()
    out["detail"] = detail
    # A round trip through JSON makes the hashed form equal the stored form exactly
    # (tuples become lists, non-string keys are refused early).
    try:
        out["detail"] = json.loads(json.dumps(detail, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise StoreQueryError(f"event.detail is not JSON: {err}") from err
    return out


#: The letter each paged log's cursors start with.
CURSOR_PREFIX = {"events": "e", "audit": "a", "alarms": "m"}


def cursor_pattern(kind: str) -> str:
    """Every cursor of ``kind`` the store takes, as a regular expression (empty: page one).

    A cursor is the log's letter and the position its page ends at in decimal ("e1234"
    for events, "a17" for the audit log, "m3" for alarms): at most 18 digits stays below
    SQLite's 2**63, so the API's schema says exactly which cursors are valid, and one log's
    cursor is refused by another.
    """
    return f"^(|{CURSOR_PREFIX[kind]}(0|[1-9][0-9]{{0,17}}))$"


def encode_cursor(kind: str, position: int) -> str:
    """The cursor for paging ``kind`` below ``position``."""
    return f"{CURSOR_PREFIX[kind]}{position}"


def decode_cursor(kind: str, cursor: str) -> int:
    """The position inside ``cursor``, or StoreQueryError when it is not one of ``kind``."""
    if not cursor or not re.match(cursor_pattern(kind), cursor):
        raise StoreQueryError(
            f"cursor {cursor[:40]!r} is not a valid {kind} cursor (a page's own cursor)"
        )
    return int(cursor[1:])
