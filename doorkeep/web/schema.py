"""Request bodies checked against JSON Schema 2020-12 with jsonschema-rs (compiled once).

`BodySchemas` compiles one validator per named schema of an API's components; a
`SchemaProblem` says where (a dotted field) and which rule failed, and never quotes the
offending value (it could be a PIN).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jsonschema_rs

_LIMIT_CHARS = 120


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """One schema violation: the field's path, the rule (keyword) and its limit.

    ``path`` ends in the missing or unexpected key for ``required`` and
    ``additionalProperties``; ``at`` is the object the rule was checked on.
    """

    path: tuple[str, ...]
    rule: str
    limit: Any
    at: tuple[str, ...] = ()

    def field(self, skip: int = 0) -> str | None:
        """The dotted field name, dropping the first ``skip`` path parts."""
        return ".".join(self.path[skip:]) or None

    def message(self) -> str:
        """What rule failed, naming the rule's limit but never quoting the value."""
        limit = json.dumps(self.limit, default=str)
        if len(limit) > _LIMIT_CHARS:
            limit = limit[: _LIMIT_CHARS - 3] + "..."
        return f"{self.field() or 'the body'} does not meet the schema rule {self.rule}: {limit}"


def _walk(root: Any, parts: list[Any]) -> Any:
    node = root
    for part in parts:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    return node


def _problem(root: dict[str, Any], err: Any) -> SchemaProblem:
    at = tuple(str(p) for p in err.instance_path)
    path = list(at)
    schema_path = list(err.schema_path)
    rule = str(err.kind.name)
    limit = _walk(root, schema_path)
    detail = err.kind.as_dict()
    if rule == "required":
        path.append(str(detail["property"]))
    elif rule == "additionalProperties":
        unexpected = sorted(str(k) for k in detail.get("unexpected") or ())
        path += unexpected[:1]
    return SchemaProblem(tuple(path), rule, limit, at)


class BodySchemas:
    """Compiled validators for the schemas under ``components.schemas`` by name."""

    def __init__(self, schemas: dict[str, Any], names: set[str]) -> None:
        self._root: dict[str, Any] = {"components": {"schemas": schemas}}
        self._validators = {
            name: jsonschema_rs.validator_for(
                {**self._root, "$ref": f"#/components/schemas/{name}"}, validate_formats=True
            )
            for name in sorted(names)
        }

    def problems(self, name: str, instance: Any) -> list[SchemaProblem]:
        """Every violation of schema ``name`` by ``instance``, ordered by path."""
        found = [_problem(self._root, e) for e in self._validators[name].iter_errors(instance)]
        return sorted(found, key=lambda p: p.path)
