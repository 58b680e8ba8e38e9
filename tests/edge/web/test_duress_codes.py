"""A duress code never equals a temp-key code or another PIN (issue 9, finding 9).

PIN 89999999 has the duress form 90000000, which is also a valid temp-key PIN: with both
accepted, the person under duress would open as the visitor's temp key and raise no
alarm. Every way in refuses it: PUT /policy, PUT /credentials/{id}, POST /temp-keys.
"""

from __future__ import annotations

import json
from typing import Any

from tests.edge.web.conftest import Api
from tests.edge.web.sample import sample_policy

PIN, DURESS = "89999999", "90000000"
TEMP_KEY = {
    "id": "t-visit",
    "name": "Visitor",
    "kind": "pin",
    "code": DURESS,
    "schedule": {"repeat": "daily", "start": "00:00", "end": "23:59:59"},
    "uses_per_door": 1,
    "doors": ["gate"],
}


def _policy(*, pin: str = PIN, temp_key: bool = True, duress: bool = True) -> dict[str, Any]:
    doc = sample_policy()
    doc["settings"]["duress"] = duress
    doc["credentials"][0]["value"] = pin
    doc["temp_keys"] = [dict(TEMP_KEY)] if temp_key else []
    return doc


def _no_codes(text: str) -> None:
    assert PIN not in text and DURESS not in text


def _where(body: str) -> set[tuple[str, str]]:
    return {(i["entity"], i["field"]) for i in json.loads(body)["error"]["issues"]}


async def test_put_policy_refuses_a_duress_pin_that_is_a_temp_key_code(api: Api) -> None:
    resp = await api.client.put("/api/v1/policy", json=_policy(), headers=api.token("admin"))
    text = await resp.text()
    assert resp.status == 422, text
    assert _where(text) == {("credentials/c1", "value"), ("temp_keys/t-visit", "code")}
    _no_codes(text)


async def test_put_credential_refuses_a_pin_whose_duress_form_is_a_temp_key(api: Api) -> None:
    admin = api.token("admin")
    resp = await api.client.put("/api/v1/policy", json=_policy(pin="4711"), headers=admin)
    assert resp.status == 200, await resp.text()
    cred = {"id": "c-new", "person": "p-judy", "kind": "pin", "value": PIN}
    resp = await api.client.put("/api/v1/credentials/c-new", json=cred, headers=admin)
    text = await resp.text()
    assert resp.status == 422, text
    assert _where(text) == {("credentials/c-new", "value"), ("temp_keys/t-visit", "code")}
    _no_codes(text)
    assert (await api.client.get("/api/v1/credentials/c-new", headers=admin)).status == 404


async def test_post_temp_key_refuses_the_duress_code_of_a_hashed_pin(api: Api) -> None:
    admin = api.token("admin")
    # PIN 8999… enrolled while duress was off, then duress switched on: the site holds
    # only HMACs now, and the new temp key is compared by duress_hmac against code_hmac
    doc = _policy(temp_key=False, duress=False)
    assert (await api.client.put("/api/v1/policy", json=doc, headers=admin)).status == 200
    hashed = json.loads(await (await api.client.get("/api/v1/policy", headers=admin)).text())
    hashed["settings"]["duress"] = True
    resp = await api.client.put("/api/v1/policy", json=hashed, headers=admin)
    assert resp.status == 200, await resp.text()
    resp = await api.client.post("/api/v1/temp-keys", json=TEMP_KEY, headers=admin)
    text = await resp.text()
    assert resp.status == 422, text
    assert _where(text) == {("temp_keys/t-visit", "code")}
    assert "duress code" in text and "c1" not in text  # never whose (issue 12)
    _no_codes(text)
    ok = await api.client.post(
        "/api/v1/temp-keys", json={**TEMP_KEY, "code": "91487640"}, headers=admin
    )
    assert ok.status == 201, await ok.text()
