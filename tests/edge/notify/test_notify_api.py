"""The REST side of notifications: POST /temp-keys with send_to, POST
/temp-keys/{id}/send, POST /notify/test, and /health when the mail server fails."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from edge.auth import AuthStore
from edge.service import Site
from edge.web.app import make_app

from .conftest import PM, VISITOR, Smtp, Webhook, text_of, until

KEY = {
    "id": "t-new",
    "name": "Plumber",
    "kind": "pin",
    "doors": ["gate"],
    "uses_per_door": 2,
    "schedule": {"repeat": "daily", "start": "08:00", "end": "18:00"},
}


@pytest.fixture
async def client(site: Site) -> AsyncIterator[tuple[TestClient[Any, Any], AuthStore]]:
    auth = AuthStore.open(":memory:")
    async with TestClient(TestServer(make_app(site, auth, tls=False))) as c:
        yield c, auth
    auth.close()


def bearer(auth: AuthStore, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {auth.create_token(role, f't-{role}')}"}


async def test_post_temp_key_with_send_to_creates_and_emails_it(
    client: tuple[TestClient[Any, Any], AuthStore], site: Site, smtp: Smtp
) -> None:
    c, auth = client
    resp = await c.post(
        "/api/v1/temp-keys", json={**KEY, "send_to": VISITOR}, headers=bearer(auth, "admin")
    )
    body = await resp.json()
    assert resp.status == 201, body
    assert "code" not in body and "send_to" not in body and len(body["code_hmac"]) == 64
    await until(lambda: len(smtp.mailbox.to(VISITOR)) == 1)
    text = text_of(smtp.mailbox.to(VISITOR)[0])
    assert "every day from 08:00 to 18:00" in text and "Main gate" in text
    assert "2 time(s) per door" in text


async def test_send_issues_a_new_code_and_hostile_input_is_a_clear_4xx(
    client: tuple[TestClient[Any, Any], AuthStore], site: Site, smtp: Smtp
) -> None:
    c, auth = client
    admin = bearer(auth, "admin")
    url = "/api/v1/temp-keys/t-guest/send"
    resp = await c.post(url, json={"to": VISITOR, "code": "91112222"}, headers=admin)
    assert resp.status == 200, await resp.json()
    assert (await resp.json())["sent_to"] == VISITOR
    await until(lambda: len(smtp.mailbox.to(VISITOR)) == 1)
    assert "91112222" in text_of(smtp.mailbox.to(VISITOR)[0])
    assert (await site.present("gate-in", "pin", "91112222"))["granted"] is True
    # a viewer may not; a bad address, a bad code, an unknown key are refused, nothing sent
    assert (await c.post(url, json={"to": VISITOR}, headers=bearer(auth, "viewer"))).status == 403
    bad = await c.post(url, json={"to": "not an address"}, headers=admin)
    assert bad.status == 400 and (await bad.json())["error"]["field"] == "to"
    weak = await c.post(url, json={"to": VISITOR, "code": "1234"}, headers=admin)
    assert weak.status == 422
    assert "8 digits starting with 9" in (await weak.json())["error"]["issues"][0]["message"]
    missing = await c.post("/api/v1/temp-keys/t-none/send", json={"to": VISITOR}, headers=admin)
    assert missing.status == 404
    assert len(smtp.mailbox.to(VISITOR)) == 1
    audit, _ = await site.audit_log()
    assert next(a for a in audit if a["action"] == "temp_keys.send")["actor"] == "token:t-admin"


async def test_a_refused_delivery_is_a_503_and_the_old_code_still_opens(
    client: tuple[TestClient[Any, Any], AuthStore], site: Site, smtp: Smtp
) -> None:
    c, auth = client
    smtp.mailbox.reply = "554 no relay"
    resp = await c.post(
        "/api/v1/temp-keys/t-guest/send", json={"to": VISITOR}, headers=bearer(auth, "admin")
    )
    body = await resp.json()
    assert resp.status == 503 and "554 no relay" in body["error"]["message"]
    assert (await site.present("gate-in", "pin", "95551234"))["granted"] is True


async def test_notify_test_reaches_every_channel_and_is_audited(
    client: tuple[TestClient[Any, Any], AuthStore], site: Site, smtp: Smtp, webhook: Webhook
) -> None:
    c, auth = client
    assert (await c.post("/api/v1/notify/test", headers=bearer(auth, "viewer"))).status == 403
    resp = await c.post("/api/v1/notify/test", headers=bearer(auth, "installer"))
    body = await resp.json()
    assert resp.status == 200, body
    assert body["email"]["sent"] is True and body["webhook"]["sent"] is True
    assert body["email_to"] == [PM]
    await until(lambda: len(smtp.mailbox.to(PM)) == 1)
    assert "test notification" in str(smtp.mailbox.to(PM)[0]["Subject"])
    assert len(webhook.received) == 1
    audit, _ = await site.audit_log()
    assert any(a["action"] == "notify.test" for a in audit)
    webhook.status = 500
    failed = await c.post("/api/v1/notify/test", headers=bearer(auth, "admin"))
    assert failed.status == 503
    assert "webhook 127.0.0.1 answered 500" in (await failed.json())["error"]["message"]
