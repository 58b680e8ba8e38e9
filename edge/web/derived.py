"""The REST API's schemas that are derived, not written: the policy document's own JSON
Schema (doorkeep/policy.schema.json, its entities one at a time) and the site.toml tables
as edge/config/keys.py allows them. One source each, so the OpenAPI document says exactly
what the policy check and the config validator will take.
"""

from __future__ import annotations

import copy
from typing import Any

from doorkeep import policydoc
from doorkeep.web.openapi import ref as _ref
from edge.config.keys import CHECK_SCHEMAS, REQUIRED, TABLES
from edge.config.notify import EMAIL_RE


def policy_schemas() -> dict[str, dict[str, Any]]:
    """The policy document's own JSON Schema, its $defs lifted into components."""
    doc = copy.deepcopy(policydoc.schema())
    defs = doc.pop("$defs", {})
    doc.pop("$schema", None)
    doc.pop("$id", None)

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: (
                    v.replace("#/$defs/", "#/components/schemas/Policy_")
                    if k == "$ref" and isinstance(v, str)
                    else rewrite(v)
                )
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    policy = rewrite(doc)
    return (
        {"Policy": policy}
        | {f"Policy_{k}": rewrite(v) for k, v in defs.items()}
        | _entity_schemas(policy)
    )


#: The policy's entity lists that the REST API edits one entity at a time.
ENTITY_LISTS = (
    "people",
    "credentials",
    "groups",
    "temp_keys",
    "apartments",
    "buildings",
    "reservations",
)


def entity_schema(kind: str, *, replace: bool = False) -> str:
    """The component name of one ``kind`` entity as a POST body (PUT: ``replace``)."""
    return f"{'EntityReplace' if replace else 'Entity'}_{kind}"


def _entity_schemas(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    # One entity as POST/PUT take it: the policy's own item schema, so the required
    # fields, enums and bounds a client reads are the ones the policy check applies.
    # A PUT names its entity in the URL: the body's id may be left out.
    out = {}
    for kind in ENTITY_LISTS:
        item = copy.deepcopy(policy["properties"][kind]["items"])
        if kind == "temp_keys":  # POST may also send the new key to its visitor
            item["properties"]["send_to"] = {
                "type": "string",
                "maxLength": 254,
                "pattern": EMAIL_RE.pattern,
                "description": "email the visitor the key (docs/notifications.md)",
            }
            # ... and then the code may be left out: one is generated and sent
            item["oneOf"] = [
                *item["oneOf"],
                {
                    "required": ["send_to"],
                    "not": {"anyOf": [{"required": ["code"]}, {"required": ["code_hmac"]}]},
                },
            ]
        out[entity_schema(kind)] = item
        out[entity_schema(kind, replace=True)] = {
            **item,
            "required": [r for r in item.get("required", []) if r != "id"],
            "properties": {k: v for k, v in item["properties"].items() if k != "send_to"},
            **({"oneOf": item["oneOf"][:2]} if kind == "temp_keys" else {}),
        }
    return out


_TOML_TYPES = {str: "string", int: "integer", bool: "boolean", list: "array", dict: "object"}


def toml_table(name: str) -> dict[str, Any]:
    """One ``[[name]]`` table of site.toml as edge/config/keys.py allows it."""
    props: dict[str, Any] = {}
    for key, spec in TABLES[name].items():
        types = [_TOML_TYPES[t] for t in spec.types]
        prop: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
        if "array" in types:
            prop["items"] = _ref("TomlValue")
        if "object" in types:
            prop["additionalProperties"] = _ref("TomlValue")
        prop |= CHECK_SCHEMAS.get(spec.check, {}) if spec.check else {}
        props[key] = prop
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [k for k, spec in TABLES[name].items() if spec.default is REQUIRED],
        "properties": props,
    }


# The apartment fields POST /batch/apartments may set (edge/site/pm.py BATCH_FIELDS).
