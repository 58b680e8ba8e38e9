"""Hostile-input-proof parsing of what a client sends: JSON bodies and integer positions.

A body nested deeper than `MAX_DEPTH` (``[[[[...]]]]``: 100 KB of it overflows Python's
recursion limit inside ``json.loads``) and a number too large for a 64-bit column (a
made-up cursor) are a client's mistake, not a server error: both become an `ApiError`
400 that says what to change, and nothing is logged with a traceback.
"""

from __future__ import annotations

import json
from typing import Any

from doorkeep.web.errors import ApiError, ErrorCode

#: The deepest nesting a body may have; every real doorkeep document is under 10.
MAX_DEPTH = 32
#: The range of a 64-bit signed integer: what SQLite and PostgreSQL ``BIGINT`` hold.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_TOO_DEEP = f"the body is nested deeper than {MAX_DEPTH} levels; send a flatter JSON document"


def parse_json(raw: bytes | str) -> Any:
    """The JSON value of ``raw``; ApiError 400 ``bad_json`` when it is not JSON or too deep."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise ApiError(400, ErrorCode.BAD_JSON, _TOO_DEEP) from None
    except (ValueError, UnicodeDecodeError) as err:
        raise ApiError(400, ErrorCode.BAD_JSON, f"the body is not valid JSON: {err}") from None
    if depth(value) > MAX_DEPTH:
        raise ApiError(400, ErrorCode.BAD_JSON, _TOO_DEEP)
    return value


def depth(value: Any) -> int:
    """How deeply ``value`` nests lists and objects (a scalar is 0); iterative, no recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        elif not isinstance(node, list):
            continue
        deepest = max(deepest, level + 1)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in node)
    return deepest


def check_int64(value: int, name: str) -> int:
    """``value`` when a 64-bit column can hold it, else ApiError 400 ``bad_query``."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise ApiError(
            400,
            ErrorCode.BAD_QUERY,
            f"{name} is not one this API gave; drop it to start over",
            name,
        )
    return value
