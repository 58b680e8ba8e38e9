"""The web toolkit on its own: listen parser, handler registry, error middleware, schemas."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from doorkeep.errors import NotFound, PolicyError, PolicyIssue
from doorkeep.web import BodySchemas, ErrorCode, Handlers, Route, error_middleware, parse_listen


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:8443", ("::1", 8443))],
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8080", "host:", "host:x", "host:70000", ":80"])
def test_bad_listen_addresses_say_the_form(text: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        parse_listen(text)
    assert parse_listen(":80", default_host="127.0.0.1") == ("127.0.0.1", 80)


def test_registry_refuses_missing_extra_and_double_handlers() -> None:
    rows = [Route("GET", "/a", op="a", role=None, summary="A")]
    handlers: Handlers[Any] = Handlers()
    with pytest.raises(LookupError, match=r"without a handler \['a'\]"):
        handlers.check(rows)

    @handlers
    def a() -> None: ...

    handlers.check(rows)
    handlers.add("b", a)
    with pytest.raises(LookupError, match=r"without a row \['b'\]"):
        handlers.check(rows)
    with pytest.raises(ValueError, match="two handlers"):
        handlers.add("a", a)


def test_body_problems_name_the_field_and_rule_never_the_value() -> None:
    schemas = {
        "Pin": {
            "type": "object",
            "additionalProperties": False,
            "required": ["value"],
            "properties": {"value": {"type": "string", "maxLength": 4}},
        }
    }
    bodies = BodySchemas(schemas, {"Pin"})
    (long,) = bodies.problems("Pin", {"value": "123456"})
    assert long.field() == "value"
    assert long.message() == "value does not meet the schema rule maxLength: 4"
    assert "123456" not in long.message()
    assert [p.field() for p in bodies.problems("Pin", {"x": 1})] == ["value", "x"]
    assert bodies.problems("Pin", {"value": "1234"}) == []


async def test_errors_have_one_shape_and_bugs_are_logged_once(caplog: Any) -> None:
    async def raises(request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if kind == "missing":
            raise NotFound("no such thing")
        if kind == "policy":
            raise PolicyError("bad", [PolicyIssue("people/p1", "kind", "unknown kind")])
        raise KeyError("secret internals")

    app = web.Application(middlewares=[error_middleware(prefix="/api")])
    app.router.add_get("/api/{kind}", raises)
    async with TestClient(TestServer(app)) as client:
        missing = await client.get("/api/missing")
        assert missing.status == 404
        assert (await missing.json())["error"]["code"] == ErrorCode.NOT_FOUND
        policy = await (await client.get("/api/policy")).json()
        assert policy["error"]["code"] == "policy_invalid"
        assert policy["error"]["field"] == "kind"
        with caplog.at_level(logging.ERROR):
            bug = await client.get("/api/bug")
        assert bug.status == 500
        assert "secret internals" not in await bug.text()
        assert (await bug.json())["error"]["code"] == "internal_error"
        assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
        nothing = await client.get("/api/x/y")
        assert (await nothing.json())["error"]["code"] == "no_such_endpoint"
