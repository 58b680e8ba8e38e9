"""HTTP readers over real HTTP: an LPR camera's plate and a UHF tag open the garage with the
reader's own token, nothing else does; hostile bodies are 4xx; the CLI makes the token."""

from __future__ import annotations

import asyncio
import contextlib
import io
import sqlite3
from pathlib import Path

import pytest

from edge.auth import AuthStore
from edge.cli import main
from edge.service import Site
from tests.edge.readers.garage import GARAGE_RELAY, PLATE, UHF, garage, site_toml
from tests.edge.sites import until


async def test_a_uhf_tag_and_a_plate_open_the_garage(tmp_path: Path) -> None:
    async with garage(tmp_path) as g:
        resp, body = await g.post("garage-lpr", {"kind": "uhf_card", "value": UHF.lower()})
        assert resp.status == 200, body
        assert body["granted"] is True and body["door"] == "garage" and body["person"] == "p-cathy"
        assert g.pulses() == [GARAGE_RELAY]
        await until(lambda: g.site.door("garage")["state"] == "locked", timeout=3)
        # stored as "AB 123 CD", read by the camera as "ab-123cd": one plate
        resp, body = await g.post("garage-lpr", {"kind": "license_plate", "value": "ab-123cd"})
        assert resp.status == 200 and body["granted"] is True and body["person"] == "p-judy"
        assert g.pulses() == [GARAGE_RELAY, GARAGE_RELAY]
        events, _ = await g.site.events(type="access")
        assert [(e["reader"], e["credential_kind"], e["result"]) for e in events] == [
            ("garage-lpr", "license_plate", "success"),
            ("garage-lpr", "uhf_card", "success"),
        ]
        assert PLATE.replace(" ", "") not in str(events) and UHF not in str(events)
        assert g.site.readers.state("garage-lpr").last_seen is not None


async def test_an_unknown_plate_is_denied_and_moves_no_relay(tmp_path: Path) -> None:
    async with garage(tmp_path) as g:
        resp, body = await g.post("garage-lpr", {"kind": "license_plate", "value": "ZZ 999"})
        assert resp.status == 200
        assert body["granted"] is False and body["reason"] == "unknown_credential"
        assert g.pulses() == []


async def test_only_the_readers_own_token_is_accepted(tmp_path: Path) -> None:
    async with garage(tmp_path) as g:
        read = {"kind": "license_plate", "value": PLATE}
        resp, body = await g.post("garage-lpr", read, token=None)
        assert resp.status == 401 and body["error"]["code"] == "unauthorized"
        resp, body = await g.post("garage-lpr", read, token=g.tokens["garage-exit"])
        assert resp.status == 403 and "another reader" in body["error"]["message"]
        admin = g.auth.create_token("admin", "root")
        resp, body = await g.post("garage-lpr", read, token=admin)
        assert resp.status == 403 and "API token" in body["error"]["message"]
        resp, _ = await g.post("garage-lpr", read, token="dkr_forged")
        assert resp.status == 401
        resp, _ = await g.post("garage-lpr", read, token=None, headers={"Authorization": "Basic x"})
        assert resp.status == 401
        assert g.pulses() == []  # nothing refused moved a relay ...
        assert (await g.site.events(type="access"))[0] == []  # ... or reached a decision
        # a reader token is nobody's API token: every other endpoint refuses it
        other = await g.client.get(
            "/api/v1/doors", headers={"Authorization": f"Bearer {g.tokens['garage-lpr']}"}
        )
        assert other.status == 401


async def test_a_new_token_replaces_the_old_and_revoking_ends_it(tmp_path: Path) -> None:
    async with garage(tmp_path) as g:
        read = {"kind": "license_plate", "value": PLATE}
        old = g.tokens["garage-lpr"]
        new = g.auth.readers.create("garage-lpr")
        assert (await g.post("garage-lpr", read, token=old))[0].status == 401
        assert (await g.post("garage-lpr", read, token=new))[0].status == 200
        assert g.auth.readers.revoke("garage-lpr")
        assert (await g.post("garage-lpr", read, token=new))[0].status == 401
        stored = g.auth._db.execute("SELECT token_hash FROM reader_tokens").fetchall()
        assert all(old not in row[0] and new not in row[0] for row in stored)


async def test_a_token_of_a_reader_that_is_no_longer_http_is_refused(tmp_path: Path) -> None:
    async with garage(tmp_path) as g:
        token = g.auth.readers.create("gate-in")  # as if gate-in had been http once
        resp, body = await g.post("gate-in", {"kind": "pin", "value": "4711"}, token=token)
        assert resp.status == 403 and 'type = "http"' in body["error"]["message"]
        assert g.pulses() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "license_plate", "value": "A" * 257}, "value"),
        ({"kind": "license_plate", "value": ""}, "value"),
        ({"kind": "barcode", "value": "X1"}, "kind"),
        ({"kind": "license_plate"}, None),
        ({"kind": "license_plate", "value": PLATE, "at": "2026-01-01T00:00:00+00:00"}, None),
        ({"kind": "license_plate", "value": 12345}, "value"),
        (["license_plate", PLATE], None),
    ],
)
async def test_hostile_bodies_are_refused_with_a_4xx(
    tmp_path: Path, body: object, field: str | None
) -> None:
    async with garage(tmp_path) as g:
        resp, answer = await g.post("garage-lpr", body)
        assert resp.status == 400, answer
        assert set(answer["error"]) >= {"code", "message", "field"}
        if field:
            assert field in (answer["error"]["field"] or answer["error"]["message"])
        assert g.pulses() == []


async def test_wrong_content_type_and_broken_json_are_400(tmp_path: Path) -> None:
    async with garage(tmp_path) as g:
        resp, answer = await g.post(
            "garage-lpr", None, data=f"kind=license_plate&value={PLATE}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )  # fmt: skip
        assert resp.status == 400 and answer["error"]["code"] == "bad_content_type"
        resp, answer = await g.post(
            "garage-lpr", None, data="{not json", headers={"Content-Type": "application/json"}
        )
        assert resp.status == 400
        assert g.pulses() == []


async def test_an_unknown_query_parameter_is_a_400(tmp_path: Path) -> None:
    async with garage(tmp_path) as g:
        resp = await g.client.post(
            "/api/v1/readers/garage-lpr/input?colour=red",
            json={"kind": "license_plate", "value": PLATE},
            headers={"Authorization": f"Bearer {g.tokens['garage-lpr']}"},
        )
        error = (await resp.json())["error"]
        assert resp.status == 400 and error["code"] == "bad_query" and error["field"] == "colour"
        assert g.pulses() == []


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_the_cli_makes_a_token_for_an_http_reader_only(tmp_path: Path) -> None:
    (tmp_path / "site.toml").write_text(site_toml())
    cfg = str(tmp_path / "site.toml")
    code, out, _ = run_cli("reader", "token", "garage-lpr", "-c", cfg)
    assert code == 0
    token = out.strip()
    assert token.startswith("dkr_") and len(token) > 40
    code, _, err = run_cli("-c", cfg, "reader", "token", "gate-in")
    assert code == 1 and 'only type = "http"' in err
    code, _, err = run_cli("reader", "token", "nope", "-c", cfg)
    assert code == 1 and "not in site.toml" in err
    db = sqlite3.connect(tmp_path / "data" / "auth.db")
    rows = db.execute("SELECT reader, token_hash FROM reader_tokens").fetchall()
    db.close()
    assert [r for r, _ in rows] == ["garage-lpr"] and token not in rows[0][1]
    auth = AuthStore.open(tmp_path / "data" / "auth.db")
    assert auth.readers.reader_of(token) == "garage-lpr"
    auth.close()
    code, out, _ = run_cli("reader", "token", "garage-lpr", "--revoke", "-c", cfg)
    assert code == 0 and "revoked" in out

    async def audit() -> list[tuple[str, str, str]]:
        async with Site.open(tmp_path / "site.toml", with_hardware=False) as site:
            rows, _ = await site.audit_log(limit=10)
        assert token not in str(rows)
        return [(a["actor"], a["action"], a["target"]) for a in rows]

    assert {
        ("cli", "reader.token.create", "reader:garage-lpr"),
        ("cli", "reader.token.revoke", "reader:garage-lpr"),
    } <= set(asyncio.run(audit()))


async def test_a_plate_that_is_not_long_term_opens_only_inside_its_window(tmp_path: Path) -> None:
    async with garage(tmp_path) as g:
        # the reference's "long-term vehicle" off: a window on the plate itself
        await g.site.put_entity(
            "credentials",
            "c-tom",
            {"id": "c-tom", "person": "p-tom", "kind": "license_plate", "value": "TOM 1",
             "valid_from": "2020-01-01T00:00:00", "valid_until": "2021-01-01T00:00:00"},
            actor="test",
        )  # fmt: skip
        _, body = await g.post("garage-lpr", {"kind": "license_plate", "value": "tom1"})
        assert body["granted"] is False and body["reason"] == "credential_outside_validity"
        assert body["person"] == "p-tom" and g.pulses() == []
        await g.site.put_entity(
            "credentials",
            "c-tom",
            {"id": "c-tom", "person": "p-tom", "kind": "license_plate", "value": "TOM 1",
             "valid_from": "2020-01-01T00:00:00", "valid_until": None},
            actor="test",
        )  # fmt: skip
        _, body = await g.post("garage-lpr", {"kind": "license_plate", "value": "tom1"})
        assert body["granted"] is True and g.pulses() == [GARAGE_RELAY]
