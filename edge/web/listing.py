"""Search and paging of an entity list: ``?q=&limit=&offset=`` -> ``{items, total}``.

``q`` matches, case-insensitively, any word-like field of an item (id, name, number,
label, ...), never a stored credential hash. Runs off the event loop, in a worker thread;
only the page shown is copied out of the policy (not 20,000 people for 50).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from doorkeep.web import ApiError, ErrorCode

Select = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]

# Fields never searched (hashes of PINs and cards: a match would leak a value).
_HIDDEN = frozenset({"value_hmac", "duress_hmac", "code_hmac"})


def _text(item: dict[str, Any]) -> str:
    parts: list[str] = []
    for key, value in item.items():
        if key in _HIDDEN:
            continue
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts.extend(v for v in value if isinstance(v, str))
    return "\x00".join(parts).casefold()


def search(load: Callable[[Select], list[dict[str, Any]]], query: dict[str, Any]) -> dict[str, Any]:
    """The page ``query`` (q, limit, offset) asks for, with the total; ``load(select)``
    copies only what ``select`` picks from the stored list."""
    offset = query.get("offset", 0)
    if offset < 0:
        raise ApiError(400, ErrorCode.BAD_QUERY, "offset must be 0 or more", "offset")
    q = (query.get("q") or "").strip().casefold()
    limit = query.get("limit")
    total = 0

    def select(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        nonlocal total
        if q:
            words = q.split()
            items = [i for i in items if all(w in _text(i) for w in words)]
        total = len(items)
        return items[offset:] if limit is None else items[offset : offset + limit]

    page = load(select)
    return {"items": page, "total": total}
