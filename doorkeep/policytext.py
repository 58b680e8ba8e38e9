"""The text of a policy document on its way in: bytes to JSON, refusing what would
crash a parser (not UTF-8, nesting past ``MAX_DEPTH``, lone surrogates) with a message
that says what to change. ``doorkeep.policydoc`` re-exports ``loads`` and ``MAX_DEPTH``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from doorkeep.errors import PolicyError, PolicyIssue

#: ``entity_of(doc, path)``: the ``kind/key`` name of the entity a path points into, or None.
EntityOf = Callable[[Mapping[str, Any], list[str | int]], str | None]

# A policy document is at most ~6 levels deep; anything far deeper is hostile or broken,
# and refusing it before parsing keeps the parser's recursion away from its limit.
MAX_DEPTH = 32
# The brackets that open and close a level, and the strings that may hold brackets. An
# unterminated string runs to the end, so no quote is scanned twice (linear time).
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?\Z)|[\[\]{}]')


def _json_depth(text: str, limit: int) -> int:
    """The nesting depth of JSON ``text``, counting no further than ``limit + 1``."""
    depth = deepest = 0
    for m in _JSON_TOKENS.finditer(text):
        mark = m.group()
        if mark in ("[", "{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif mark in ("]", "}"):
            depth -= 1
    return deepest


def loads(data: bytes | str, *, source: str = "the document") -> Any:
    """Parse the JSON text of a policy document (UTF-8 bytes or text).

    Raises :class:`PolicyError` with one message that says what to change when the
    bytes are not UTF-8, the text is not JSON or it nests deeper than ``MAX_DEPTH``.
    Strings that hold lone surrogates parse; :func:`validate_document` reports them.
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise PolicyError(
                f"{source}: not UTF-8 text (byte {err.start} is 0x{data[err.start]:02x}); "
                "save the file as UTF-8"
            ) from None
    else:
        text = data
    if _json_depth(text, MAX_DEPTH) > MAX_DEPTH:
        raise PolicyError(
            f"{source}: nested more than {MAX_DEPTH} levels deep; a policy document "
            "needs at most 6 levels"
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise PolicyError(
            f"{source}: not JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text_issues(doc: Mapping[str, Any], entity_of: EntityOf) -> list[PolicyIssue]:
    """A problem for every string that is not Unicode text (a lone surrogate from a
    ``\\ud800`` escape) and for nesting deeper than ``MAX_DEPTH``; iterative, so a
    hostile document cannot exhaust the stack. Names and paths are shown escaped."""
    issues: list[PolicyIssue] = []
    stack: list[tuple[Any, list[str | int]]] = [(doc, [])]
    while stack and len(issues) < 20:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            issues.append(PolicyIssue("document", "-", f"nested more than {MAX_DEPTH} levels deep"))
            break
        if isinstance(value, dict):
            for k, v in value.items():
                if isinstance(k, str) and not _is_text(k):
                    issues.append(_surrogate_issue(doc, [*path, k], "a key", entity_of))
                stack.append((v, [*path, k]))
        elif isinstance(value, list):
            stack.extend((v, [*path, i]) for i, v in enumerate(value))
        elif isinstance(value, str) and not _is_text(value):
            issues.append(_surrogate_issue(doc, path, "the value", entity_of))
    return issues


def _shown(part: object) -> str:
    return ascii(part)[1:-1] if isinstance(part, str) else str(part)


def _surrogate_issue(
    doc: Mapping[str, Any], path: list[str | int], what: str, entity_of: EntityOf
) -> PolicyIssue:
    entity, field = "document", ".".join(_shown(p) for p in path) or "-"
    located = entity_of(doc, path)
    if located is not None:
        entity = _shown(located)
        field = ".".join(_shown(p) for p in path[2:]) or "-"
    return PolicyIssue(
        entity,
        field,
        f"{what} holds a lone surrogate (an unpaired \\ud800-\\udfff escape), "
        "which is not a character; write the character itself or its escape pair",
    )
