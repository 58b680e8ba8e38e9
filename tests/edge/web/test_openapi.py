"""The served OpenAPI document describes exactly the routes the app serves."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import Any

import jsonschema_rs
import pytest

from doorkeep import policydoc
from doorkeep.web import Handlers
from edge.web.context import HANDLERS
from edge.web.routes import API_PREFIX, ROUTES
from tests.edge.web.conftest import Api


def served_routes(api: Api) -> set[tuple[str, str]]:
    out = set()
    for route in api.client.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path and path.startswith(API_PREFIX) and route.method != "HEAD":
            out.add((route.method, path))
    return out


async def test_document_and_router_list_the_same_operations(api: Api) -> None:
    doc = await (await api.client.get("/api/v1/openapi.json")).json()
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert documented == served_routes(api)
    assert len(documented) == len(ROUTES)


async def test_every_operation_is_complete_and_every_reference_resolves(api: Api) -> None:
    doc = await (await api.client.get("/api/v1/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"
    ids = []
    for path, ops in doc["paths"].items():
        placeholders = set(re.findall(r"{(\w+)}", path))
        for op in ops.values():
            ids.append(op["operationId"])
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == placeholders, (path, op["operationId"])
            assert op["responses"], op["operationId"]
            assert op["x-role"] in {"public", "viewer", "installer", "admin", "reader-token"}
            if op["x-role"] == "reader-token":  # an http reader's own token, nothing else
                assert op["security"] == [{"readerToken": []}]
    assert len(ids) == len(set(ids))
    text = str(doc)
    for ref in set(re.findall(r"#/components/schemas/([\w.-]+)", text)):
        assert ref in doc["components"]["schemas"], ref
    # checking every schema takes CPU: off the loop, which serves the app
    await asyncio.to_thread(check_schemas, doc["components"]["schemas"].values())


def check_schemas(schemas: Iterable[dict[str, Any]]) -> None:
    for schema in schemas:
        jsonschema_rs.meta.validate(
            {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
        )


async def test_roles_in_the_document_match_the_route_table(api: Api) -> None:
    doc = await (await api.client.get("/api/v1/openapi.json")).json()
    for route in ROUTES:
        op = doc["paths"][API_PREFIX + route.path][route.method.lower()]
        assert op["x-role"] == (route.role.value if route.role else "public")
        assert ("security" in op and op["security"] == []) == (route.role is None)


async def test_unknown_api_paths_and_methods_answer_json_errors(api: Api) -> None:
    resp = await api.client.get("/api/v1/nothing-here")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "no_such_endpoint"
    resp = await api.client.patch("/api/v1/health")
    assert resp.status == 405
    assert "GET" in resp.headers["Allow"]
    assert (await resp.json())["error"]["code"] == "method_not_allowed"


def test_every_route_row_has_one_handler_and_every_handler_a_row() -> None:
    HANDLERS.check(ROUTES)
    assert sorted(HANDLERS) == sorted(r.op for r in ROUTES)
    spare: Handlers[object] = Handlers()
    spare.add("health", object)
    with pytest.raises(LookupError, match="without a handler"):
        spare.check(ROUTES)


async def test_the_ui_enumerations_come_from_the_policy_module(api: Api) -> None:
    doc = await (await api.client.get("/api/v1/openapi.json")).json()
    kinds = doc["components"]["schemas"]["CredentialKind"]["enum"]
    assert kinds == list(policydoc.CREDENTIAL_KINDS)
