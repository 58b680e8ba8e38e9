"""Security properties of the REST API, table-driven from the route table.

Every protected endpoint refuses a request without credentials (401) and one with a
role below its own (403); every state-changing endpoint refuses a cookie request without
the CSRF token; cookies carry the right flags; the setup code works once; logins are rate
limited; no PIN or card number appears in any answer or log line.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

import edge.auth as auth_mod
from edge import loginlimit
from edge.auth import Role
from edge.service import Site
from edge.web.derived import ENTITY_LISTS, entity_schema
from edge.web.routes import ROUTES, DeviceAuth, Route
from tests.edge.readers.garage import Garage, garage
from tests.edge.web.conftest import PASSWORD, Api, Clock
from tests.edge.web.sample import sample_policy

PATH_VALUES = {
    "/doors/{id}": "gate",
    "/alarms/{id}": "1",
    "/buses/{id}": "rs485-1",
    "/readers/{id}": "gate-in",
    "/users/{username}": "bob",
    "/tokens/{name}": "nobody",
    "/apartments/{id}": "B1-101",
    "/people/{id}": "p-cathy",
    "/credentials/{id}": "c2",
    "/groups/{id}": "g-staff",
    "/temp-keys/{id}": "t-none",
    "/buildings/{id}": "B1",
    "/reservations/{id}": "r-none",
    "/locks/{family}": "itec",
    "/import/jobs/{id}": "no-such-job",
    "/import/{kind}": "residents",
    "/export/{kind}": "residents",
    "/templates/{kind}": "residents",
}


def url_of(route: Route) -> str:
    path = route.path
    for prefix, value in PATH_VALUES.items():
        path = path.replace(prefix, prefix.split("{")[0] + value)
    return "/api/v1" + path.replace("{board}", "relays-a").replace("{n}", "1")


BODIES: dict[str, Any] = {
    "SetupRequest": {"code": "AAAA", "username": "x", "password": "p" * 12},
    "LoginRequest": {"username": "nobody", "password": "p" * 12},
    "UserCreate": {"username": "bob", "password": PASSWORD, "role": "viewer"},
    "TokenCreate": {"name": "made", "role": "viewer"},
    "UnlockRequest": {"seconds": 1},
    "EmergencyRequest": {"action": "clear"},
    "PresentationRequest": {"reader": "gate-in", "kind": "pin", "value": "1234"},
    "ResolveRequest": {},
    "Policy": sample_policy(),
    "HardwareConfig": {},
    "RelayTestRequest": {"ms": 100},
    "CaptureRequest": {"timeout_s": 0.1},
    **{entity_schema(k): {"id": "b9", "name": "Building 9"} for k in ENTITY_LISTS},
    **{entity_schema(k, replace=True): {"id": "b9", "name": "Building 9"} for k in ENTITY_LISTS},
    "ReaderInput": {"kind": "uhf_card", "value": "E2003412"},
    "TempKeySend": {"to": "visitor@example.com"},
    "ProvisionRequest": {"seconds": 10},
    "ApartmentBatch": {"ids": ["B1-101"], "set": {"auto_delete": False}},
}

PROTECTED = [r for r in ROUTES if isinstance(r.role, Role)]
PUBLIC = [r for r in ROUTES if r.role is None]
#: Routes a device calls with the token bound to it (``doorkeep reader token``), not a role.
DEVICE = [r for r in ROUTES if isinstance(r.role, DeviceAuth)]


def rid(route: Route) -> str:
    return f"{route.method} {route.path}"


async def send(api: Api, route: Route, headers: dict[str, str]) -> Any:
    kwargs: dict[str, Any] = {"headers": headers}
    if route.body:
        kwargs["json"] = BODIES[route.body]
    resp = await api.client.request(route.method, url_of(route), **kwargs)
    if route.op == "stream" and resp.status == 200:
        resp.close()  # an open SSE stream: the headers are the answer
        return resp, None
    body = await resp.json() if resp.content_type == "application/json" else None
    return resp, body


def test_every_route_has_a_role_is_public_or_is_a_device_route() -> None:
    assert len(PROTECTED) + len(PUBLIC) + len(DEVICE) == len(ROUTES)
    assert [rid(r) for r in DEVICE] == ["POST /readers/{id}/input"]


@pytest.fixture
async def http_readers(tmp_path: Any) -> Any:
    async with garage(tmp_path) as g:
        yield g


async def send_device(g: Garage, route: Route, reader: str, headers: dict[str, str]) -> Any:
    url = "/api/v1" + route.path.replace("{id}", reader)
    resp = await g.client.request(route.method, url, json=BODIES[route.body or ""], headers=headers)
    return resp, await resp.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("route", DEVICE, ids=rid)
async def test_every_device_route_takes_its_own_token_and_nothing_else(
    http_readers: Garage, route: Route
) -> None:
    g = http_readers
    resp, body = await send_device(g, route, "garage-lpr", {})
    assert resp.status == 401 and body["error"]["code"] == "unauthorized"
    resp, _ = await send_device(g, route, "garage-lpr", bearer("dkr_forged"))
    assert resp.status == 401
    for role in Role:  # a user's token, an admin's included, is not a camera
        token = g.auth.create_token(role, f"t-{role}")
        resp, body = await send_device(g, route, "garage-lpr", bearer(token))
        assert resp.status == 403 and body["error"]["code"] == "forbidden", role
    resp, _ = await send_device(g, route, "garage-lpr", bearer(g.tokens["garage-exit"]))
    assert resp.status == 403  # a camera's token opens only its own gate
    resp, body = await send_device(g, route, "garage-lpr", bearer(g.tokens["garage-lpr"]))
    assert resp.status == 200, body


@pytest.mark.parametrize("route", DEVICE, ids=rid)
async def test_a_session_cookie_is_no_device_token(http_readers: Garage, route: Route) -> None:
    g = http_readers
    g.auth.create_user("alice", PASSWORD, "admin")
    login = await g.client.post(
        "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}
    )
    csrf = (await login.json())["csrf_token"]
    resp, _ = await send_device(g, route, "garage-lpr", {"X-CSRF-Token": csrf})
    assert resp.status == 401


def test_the_public_endpoints_are_exactly_health_openapi_and_onboarding() -> None:
    assert sorted(rid(r) for r in PUBLIC) == [
        "GET /auth/setup",
        "GET /health",
        "GET /openapi.json",
        "POST /auth/login",
        "POST /auth/setup",
    ]


@pytest.mark.parametrize("route", PROTECTED, ids=rid)
async def test_every_protected_endpoint_refuses_a_request_without_credentials(
    api: Api, route: Route
) -> None:
    resp, body = await send(api, route, {})
    assert resp.status == 401
    assert body["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("route", PROTECTED, ids=rid)
async def test_every_protected_endpoint_refuses_an_unknown_token(api: Api, route: Route) -> None:
    resp, _ = await send(api, route, {"Authorization": "Bearer dk_forged"})
    assert resp.status == 401


LOWER_ROLES = [(route, role) for route in PROTECTED for role in Role if not role.allows(route.role)]


@pytest.mark.parametrize(
    ("route", "role"), LOWER_ROLES, ids=[f"{rid(r)} as {role}" for r, role in LOWER_ROLES]
)
async def test_every_endpoint_refuses_a_role_below_its_own(
    api: Api, route: Route, role: Role
) -> None:
    resp, body = await send(api, route, api.token(role))
    assert resp.status == 403
    assert body["error"]["code"] == "forbidden"
    assert route.role is not None and route.role.value in body["error"]["message"]


@pytest.mark.parametrize("route", PROTECTED, ids=rid)
async def test_every_endpoint_lets_its_own_role_through(api: Api, route: Route) -> None:
    assert route.role is not None
    resp, _ = await send(api, route, api.token(route.role))
    assert resp.status not in {401, 403}, route


STATE_CHANGING = [r for r in PROTECTED if r.changes_state]


@pytest.mark.parametrize("route", STATE_CHANGING, ids=rid)
async def test_every_state_changing_cookie_request_needs_the_csrf_token(
    api: Api, route: Route
) -> None:
    assert (await api.login()).status == 200
    resp, body = await send(api, route, {})
    assert resp.status == 403
    assert "X-CSRF-Token" in body["error"]["message"]
    resp, _ = await send(api, route, {"X-CSRF-Token": "guessed"})
    assert resp.status == 403


async def test_cookie_request_with_csrf_token_works_and_foreign_origin_is_refused(api: Api) -> None:
    await api.login()
    url = "/api/v1/doors/gate/unlock"
    ok = await api.client.post(url, json={"seconds": 1}, headers=api.csrf_headers())
    assert ok.status == 200
    evil = await api.client.post(
        url, json={"seconds": 1}, headers={**api.csrf_headers(), "Origin": "https://evil.example"}
    )
    assert evil.status == 403
    assert "cross-origin" in (await evil.json())["error"]["message"]
    same = f"http://{api.client.host}:{api.client.port}"
    fine = await api.client.post(
        url, json={"seconds": 1}, headers={**api.csrf_headers(), "Origin": same}
    )
    assert fine.status == 200


async def test_login_from_a_foreign_origin_is_refused(api: Api) -> None:
    resp = await api.client.post(
        "/api/v1/auth/login",
        json={"username": "alice", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert resp.status == 403


async def test_bearer_tokens_need_no_csrf_token(api: Api) -> None:
    resp = await api.client.post(
        "/api/v1/doors/gate/unlock", json={"seconds": 1}, headers=api.token("installer")
    )
    assert resp.status == 200


async def test_cookie_flags_under_tls(tls_api: Api) -> None:
    resp = await tls_api.login()
    header = resp.headers["Set-Cookie"]
    assert header.startswith("__Host-doorkeep=")
    attrs = {a.strip().split("=")[0].lower() for a in header.split(";")[1:]}
    assert {"secure", "httponly", "samesite", "path"} <= attrs
    assert "domain" not in attrs  # __Host- cookies must not name a domain
    assert "SameSite=Strict" in header
    assert "Path=/" in header


async def test_cookie_flags_without_tls(api: Api) -> None:
    resp = await api.login()
    header = resp.headers["Set-Cookie"]
    assert header.startswith("doorkeep=")
    assert "HttpOnly" in header
    assert "SameSite=Strict" in header
    assert "Secure" not in header  # a browser would drop it on plain HTTP


async def test_login_rotates_the_session_and_logout_ends_it(api: Api) -> None:
    await api.login()
    first = api.client.session.cookie_jar.filter_cookies(api.client.make_url("/"))["doorkeep"].value
    await api.login()
    second = api.client.session.cookie_jar.filter_cookies(api.client.make_url("/"))[
        "doorkeep"
    ].value
    assert first != second
    assert api.auth.session(first) is None  # the pre-login session id is dead
    assert (await api.client.get("/api/v1/auth/me")).status == 200
    out = await api.client.post("/api/v1/auth/logout", headers=api.csrf_headers())
    assert out.status == 200
    assert api.auth.session(second) is None
    api.client.session.cookie_jar.update_cookies({"doorkeep": second})
    assert (await api.client.get("/api/v1/auth/me")).status == 401


async def test_session_expires_after_the_idle_timeout(api: Api, clock: Clock) -> None:
    await api.login()
    clock.now += auth_mod.SESSION_IDLE_S - 5
    assert (await api.client.get("/api/v1/doors")).status == 200  # activity extends it
    clock.now += auth_mod.SESSION_IDLE_S - 5
    assert (await api.client.get("/api/v1/doors")).status == 200
    clock.now += auth_mod.SESSION_IDLE_S + 1
    assert (await api.client.get("/api/v1/doors")).status == 401


async def test_setup_code_is_single_use(api: Api) -> None:
    # A fresh store: no admin yet (the api fixture's store already has one).
    auth = auth_mod.AuthStore.open(":memory:")
    code = auth.new_setup_code()
    assert auth.setup_required()
    auth.complete_setup(code, "root", PASSWORD)
    with pytest.raises(auth_mod.AuthError):
        auth.complete_setup(code, "mallory", PASSWORD)
    with pytest.raises(auth_mod.Conflict):
        auth.new_setup_code()  # no new code once an admin exists
    assert [u["username"] for u in auth.list_users()] == ["root"]
    # Over HTTP: the api fixture already has an admin, so onboarding is closed.
    state = await (await api.client.get("/api/v1/auth/setup")).json()
    assert state == {"setup_required": False}
    resp = await api.client.post(
        "/api/v1/auth/setup", json={"code": code, "username": "mallory", "password": PASSWORD}
    )
    assert resp.status == 401


async def test_setup_over_http_creates_the_admin_once(site: Site, clock: Clock) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from edge.web.app import make_app

    auth = auth_mod.AuthStore.open(":memory:")
    code = auth.new_setup_code()
    async with TestClient(TestServer(make_app(site, auth, tls=False))) as client:
        body = {"code": code, "username": "root", "password": PASSWORD}
        first = await client.post("/api/v1/auth/setup", json=body)
        assert first.status == 201
        assert (await first.json())["role"] == "admin"
        again = await client.post("/api/v1/auth/setup", json={**body, "username": "evil"})
        assert again.status == 401
    auth.close()  # and its hash pool's thread
    newest, _ = await site.audit_log(limit=1)
    assert newest[0]["action"] == "auth.setup"


async def test_login_is_rate_limited_per_user_and_per_address(api: Api, clock: Clock) -> None:
    for _ in range(loginlimit.LOGIN_FREE_FAILURES):
        assert (await api.login(password="wrong password!")).status == 401
    blocked = await api.login()  # even the right password waits now
    assert blocked.status == 429
    assert int(blocked.headers["Retry-After"]) >= 1
    # Another user name from the same address is limited too (per-address bucket).
    assert (await api.login(username="other")).status == 429
    clock.now += loginlimit.LOGIN_BACKOFF_CAP_S + 1
    assert (await api.login()).status == 200


def test_limiter_backoff_doubles_and_is_capped() -> None:
    clock = Clock()
    limiter = loginlimit.LoginLimiter(clock)
    waits = []
    for _ in range(loginlimit.LOGIN_FREE_FAILURES + 12):
        limiter.failed("bob", "10.0.0.1")
        waits.append(limiter.retry_after("bob", "10.0.0.1"))
    assert waits[: loginlimit.LOGIN_FREE_FAILURES - 1] == [0.0] * (
        loginlimit.LOGIN_FREE_FAILURES - 1
    )
    assert waits[loginlimit.LOGIN_FREE_FAILURES - 1] == loginlimit.LOGIN_BACKOFF_BASE_S
    assert waits[loginlimit.LOGIN_FREE_FAILURES] == 2 * loginlimit.LOGIN_BACKOFF_BASE_S
    assert max(waits) == loginlimit.LOGIN_BACKOFF_CAP_S
    limiter.succeeded("bob")
    assert limiter.retry_after("bob", "10.0.0.2") == 0.0


def test_a_flood_from_many_addresses_keeps_the_limiter_small_and_the_blocks() -> None:
    clock = Clock()
    limiter = loginlimit.LoginLimiter(clock)
    limit = loginlimit.PRUNE_FROM

    def flood(n: int, seconds: float, start: int) -> None:  # made-up names, new addresses
        for i in range(start, start + n):
            limiter.failed(f"nobody{i}", f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}")
            clock.now += seconds / n

    flood(3 * limit, 10 * loginlimit.LOGIN_WINDOW_S, 0)  # 60,000 buckets over ten windows
    assert limiter.counted() <= limit + 2  # only what can still count is kept
    for _ in range(loginlimit.LOGIN_FREE_FAILURES + 10):  # a guesser at the cap's wait
        limiter.failed("alice", "10.250.0.1")
    flood(2 * limit, 60, 3 * limit)  # a burst: sweeps run, the block stays
    assert limiter.retry_after("alice", "10.250.0.2") > 0
    clock.now += loginlimit.LOGIN_BACKOFF_CAP_S
    assert limiter.retry_after("alice", "10.250.0.2") == 0.0


async def test_no_pin_or_card_number_in_any_answer_or_log(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = api.token("admin")
    secrets = ["86420", "00ABCDEF", "11259375"]  # a PIN; a card in hex and in decimal
    seen: list[str] = []

    async def call(method: str, url: str, **kw: Any) -> Any:
        resp = await api.client.request(method, url, headers=h, **kw)
        seen.append(await resp.text(errors="replace"))  # an xlsx export is binary
        return resp

    await call("POST", "/api/v1/credentials", json={
        "id": "c-pin", "person": "p-cathy", "kind": "pin", "value": secrets[0]})  # fmt: skip
    await call("POST", "/api/v1/credentials", json={
        "id": "c-card", "person": "p-cathy", "kind": "rf_card", "value": secrets[1]})  # fmt: skip
    for reader, kind, value in (
        ("gate-in", "pin", secrets[0]),
        ("plant-in", "rf_card", secrets[2]),
        ("lobby-in", "pin", "12a4x"),  # malformed: the answer must not echo it
        ("gate-in", "pin", "99999"),
    ):
        await call(
            "POST", "/api/v1/presentations", json={"reader": reader, "kind": kind, "value": value}
        )
    await call("POST", "/api/v1/credentials", json={
        "id": "c-bad", "person": "p-cathy", "kind": "pin", "value": "9" + secrets[0]})  # fmt: skip
    for route in ROUTES:
        if route.method == "GET" and route.op != "stream":
            await call("GET", url_of(route))
    await call("GET", "/api/v1/events/export?format=csv")
    for kind in ("residents", "cards", "staff"):  # credentials are masked in exports
        await call("GET", f"/api/v1/export/{kind}?format=csv")
    text = "\n".join(seen) + "\n" + caplog.text
    assert "granted" in text or "success" in text  # the calls did happen
    for value in [*secrets, "12a4x", "99999"]:
        assert value not in text, value
    assert not re.search(r'"value"\s*:\s*"', "\n".join(seen))


async def test_every_change_is_audited_with_who_made_it(api: Api) -> None:
    await api.client.post(
        "/api/v1/doors/gate/unlock", json={"seconds": 1}, headers=api.token("installer")
    )
    await api.client.post(
        "/api/v1/users",
        json={"username": "bob", "password": PASSWORD, "role": "viewer"},
        headers=api.token("admin"),
    )
    await api.client.post(
        "/api/v1/tokens", json={"name": "ci", "role": "viewer"}, headers=api.token("admin")
    )
    await api.login()
    rows = [(r["actor"], r["action"]) for r in (await api.site.audit_log(limit=1000))[0]]
    assert ("token:t-installer", "door.unlock") in rows
    assert ("token:t-admin", "user.create") in rows
    assert ("token:t-admin", "token.create") in rows
    assert ("admin:alice", "auth.login") in rows


async def test_tokens_are_shown_once_and_stored_hashed(api: Api) -> None:
    resp = await api.client.post(
        "/api/v1/tokens", json={"name": "ci", "role": "viewer"}, headers=api.token("admin")
    )
    token = (await resp.json())["token"]
    listed = await (await api.client.get("/api/v1/tokens", headers=api.token("admin"))).text()
    assert token not in listed
    rows = api.auth._db.execute("SELECT token_hash FROM tokens").fetchall()
    assert all(token not in r[0] for r in rows)
    assert (
        await api.client.get("/api/v1/doors", headers={"Authorization": f"Bearer {token}"})
    ).status == 200


async def test_security_headers_on_the_ui_and_the_api(api: Api) -> None:
    for url in ("/", "/api/v1/health"):
        resp = await api.client.get(url)
        assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["X-Frame-Options"] == "DENY"


async def test_static_files_cannot_escape_the_static_folder(api: Api) -> None:
    resp = await api.client.get("/static/../auth.py")
    assert resp.status in {403, 404}
    resp = await api.client.get("/static/%2e%2e/auth.py")
    assert resp.status in {403, 404}
