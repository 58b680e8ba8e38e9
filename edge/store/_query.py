"""Paging and time-window helpers shared by the event, audit and alarm searches."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge.store import _chain
from edge.store._chain import StoreQueryError

if TYPE_CHECKING:
    from datetime import datetime

# Longest page a query returns, whatever the caller asks for.
MAX_LIMIT = 1000


def page_limit(limit: int) -> int:
    """``limit`` capped at ``MAX_LIMIT``; StoreQueryError unless a positive integer."""
    if not isinstance(limit, int) or limit < 1:
        raise StoreQueryError(f"limit must be a positive integer, got {limit!r}")
    return min(limit, MAX_LIMIT)


def window_and_cursor(
    where: list[str],
    args: list[Any],
    *,
    since: datetime | str | None,
    until: datetime | str | None,
    key: str,
    kind: str,
    cursor: str | None,
) -> None:
    """The time window (``since`` inclusive, ``until`` exclusive) and the page cursor
    (rows older than the last one seen), shared by the event and audit searches."""
    if since is not None:
        where.append("ts >= ?")
        args.append(_chain.time_key(_chain.parse_time(since, "since")))
    if until is not None:
        where.append("ts < ?")
        args.append(_chain.time_key(_chain.parse_time(until, "until")))
    if cursor is not None:
        where.append(f"{key} < ?")
        args.append(_chain.decode_cursor(kind, cursor))


def select(table_and_columns: str, where: list[str], order: str) -> str:
    """``SELECT <columns> FROM <table> [WHERE ...] ORDER BY <order> LIMIT ?``.

    Every argument is a fixed string of this package; values travel as parameters.
    """
    return (
        f"SELECT {table_and_columns}"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY {order} LIMIT ?"
    )
