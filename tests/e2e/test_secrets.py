"""No enrolled or presented credential value in any output of a working site.

A real ``doorkeep run`` daemon with a real Mosquitto broker: enrol known PINs, cards, a
plate and a temp key, present them (granted and refused, over REST and MQTT, in several
spellings), cause errors that concern them, then collect everything the site put out —
the REST answers (errors included), the event log, the audit log, alarms, the CSV, XLSX
and JSON exports, ``doorkeep policy export``, every MQTT message the broker carried and
the daemon's stdout/stderr — and look in all of it for each value and its obvious
encodings (a card's hex with and without leading zeros, in both cases, and its decimal
number). HMACs are 64 hex digits and are taken out before looking, so that a value cannot
"appear" inside one by chance.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import aiohttp

from edge.config import write_site_toml
from tests.edge.mosquitto import Mosquitto
from tests.edge.test_mqtt import Watcher, watch
from tests.reliability import Reliability

from .conftest import Daemon, _cli

PIN = "5839271"
DURESS_FREE_PIN = "6150384"  # a second person's PIN
WRONG_PIN = "6402918"  # typed, never enrolled: someone's real PIN, perhaps
CARD = "7E3A91C4F2"
CARD_DEC = str(int(CARD, 16))  # 542523212018
UNKNOWN_CARD = "5D7B22E19A"
PLATE = "KXZ4821"
TEMP_CODE = "93718264"
NEEDLES: dict[str, list[str]] = {
    "pin": [PIN],
    "second pin": [DURESS_FREE_PIN],
    "wrong pin": [WRONG_PIN],
    "card": [CARD, CARD.lower(), CARD_DEC, CARD.lstrip("0")],
    "unknown card": [UNKNOWN_CARD, UNKNOWN_CARD.lower(), str(int(UNKNOWN_CARD, 16))],
    "plate": [PLATE, "KXZ 4821", "KXZ-4821"],
    "temp key": [TEMP_CODE],
}
HMAC = re.compile(r"[0-9a-fA-F]{64}")
ALL_DAY = {"repeat": "daily", "start": "00:00:00", "end": "23:59:59"}

POLICY = {
    "format": "doorkeep.policy/1",
    "buildings": [{"id": "B1", "name": "Building 1"}],
    "apartments": [{"id": "B1-1", "building": "B1", "number": "1#1", "floor": "1"}],
    "people": [
        {"id": "p-ana", "kind": "resident", "apartment": "B1-1", "groups": ["g-all"]},
        {"id": "p-ben", "kind": "staff", "groups": ["g-gate"]},
    ],
    "credentials": [
        {"id": "c-pin", "person": "p-ana", "kind": "pin", "value": PIN},
        {"id": "c-card", "person": "p-ana", "kind": "rf_card", "value": CARD},
        {"id": "c-plate", "person": "p-ana", "kind": "license_plate", "value": PLATE},
        {"id": "c-pin2", "person": "p-ben", "kind": "pin", "value": DURESS_FREE_PIN},
    ],
    "groups": [
        {"id": "g-all", "building_default": "B1", "schedule": ALL_DAY, "doors": ["gate", "lobby"]},
        {"id": "g-gate", "schedule": ALL_DAY, "doors": ["gate"]},
    ],
    "temp_keys": [
        {"id": "t-1", "kind": "pin", "code": TEMP_CODE, "schedule": ALL_DAY, "doors": ["gate"]}
    ],
}


def hits(outputs: dict[str, str]) -> list[str]:
    found = []
    for name, text in outputs.items():
        clean = HMAC.sub("<hmac>", text)
        for what, forms in NEEDLES.items():
            for form in forms:
                for m in re.finditer(re.escape(form), clean, flags=re.IGNORECASE):
                    context = clean[max(0, m.start() - 60) : m.end() + 60].replace("\n", " ")
                    found.append(f"{name}: the {what} ({form}) in …{context}…")
    return found


def xlsx_text(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return "\n".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())


async def test_no_credential_value_in_any_output(
    site_template: Path, tmp_path: Path, reliability: Reliability
) -> None:
    outputs: dict[str, str] = {}
    (tmp_path / "mqtt").mkdir()
    async with Mosquitto(tmp_path / "mqtt") as broker:
        template = tmp_path / "template"
        shutil.copytree(site_template, template)
        cfg = tomllib.loads((template / "site.toml").read_text())
        cfg["mqtt"] = {"url": broker.url}
        cfg["reader"].append(
            {"id": "lobby-mqtt", "door": "lobby", "type": "mqtt", "direction": "in"}
        )
        write_site_toml(template / "site.toml", cfg)
        (template / "policy.json").write_text(json.dumps(POLICY))
        config = str(template / "site.toml")
        env = {**os.environ, "DOORKEEP_MDNS": "0"}
        outputs["cli policy apply"] = await asyncio.to_thread(
            _cli, env, "policy", "apply", str(template / "policy.json"), "-c", config
        )
        (template / "policy.json").unlink()  # the installer's own file holds the values
        async with watch(broker, "#") as mqtt:
            daemon = await asyncio.to_thread(Daemon, tmp_path / "site", template)
            sent: list[tuple[str, str]] = []
            try:
                outputs |= await exercise(daemon, mqtt, sent)
                await asyncio.sleep(0.5)  # the last MQTT publications
            finally:
                await asyncio.to_thread(daemon.close)
            published = {(m.topic, m.payload) for m in mqtt.seen}
            ours = set(sent)
            outputs["mqtt messages"] = "\n".join(f"{t} {p}" for t, p in sorted(published - ours))
            n_mqtt = len(published - ours)
        outputs["daemon stdout/stderr"] = daemon.logs()

    # The search itself finds every spelling (in text that also holds an HMAC).
    for form in (f for forms in NEEDLES.values() for f in forms):
        assert hits({"probe": f"{'ab' * 32} {form} {'cd' * 32}"}), form
    found = hits(outputs)
    assert not found, "\n".join(found[:20])
    # The outputs are real: the grants happened, the log and the broker saw them.
    assert '"granted": true' in outputs["POST /presentations"]
    assert n_mqtt > 0 and "unlocked" in outputs["mqtt messages"]
    assert "p-ana" in outputs["GET /events"] and "c-card" in outputs["GET /credentials"]
    n_bytes = sum(len(t) for t in outputs.values())
    reliability.row(
        test="security: credential values in every output",
        load=f"{len(outputs)} outputs, {n_bytes} bytes, {n_mqtt} MQTT messages",
        bad_inputs=f"{sum(len(f) for f in NEEDLES.values())} value spellings of 7 credentials",
        losses="0 hits",
    )


async def exercise(daemon: Daemon, mqtt: Watcher, sent: list[tuple[str, str]]) -> dict[str, str]:
    """Use the site as people and installers do; every answer it gives, by name."""
    token = (
        await asyncio.to_thread(
            daemon.cli, "token", "create", "--role", "admin", "-c", str(daemon.config)
        )
    ).strip()
    out: dict[str, list[str]] = {}
    base = f"{daemon.url}/api/v1"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=False), headers=headers
    ) as http:

        async def call(method: str, path: str, body: Any = None) -> bytes:
            async with http.request(method, f"{base}{path}", json=body) as r:
                data = await r.read()
            key = f"{method} {path.split('?', maxsplit=1)[0]}"
            out.setdefault(key, []).append(f"{r.status} {data.decode('utf-8', 'replace')}")
            return data

        presentations = [
            ("gate-in", "pin", PIN),
            ("gate-in", "pin", DURESS_FREE_PIN),
            ("lobby-in", "pin", DURESS_FREE_PIN),  # refused: not his door
            ("gate-in", "rf_card", CARD),
            ("lobby-in", "rf_card", CARD.lower()),
            ("plant-in", "rf_card", f"dec:{CARD_DEC}"),  # refused: not her door
            ("gate-in", "rf_card", f"0x{CARD}"),
            ("gate-in", "rf_card", UNKNOWN_CARD),
            ("gate-in", "license_plate", "KXZ-4821"),  # refused: the gate takes no plates
            ("gate-in", "pin", TEMP_CODE),
            ("lobby-in", "pin", WRONG_PIN),
            ("gate-in", "rf_card", f"{CARD}ZZ"),  # malformed: a 400 that must not echo it
            ("nope", "pin", PIN),  # unknown reader: a 404
        ]
        for reader, kind, value in presentations:
            await call("POST", "/presentations", {"reader": reader, "kind": kind, "value": value})
        # Errors about credentials: a duplicate PIN, a bad card value, a bad temp key.
        await call(
            "POST", "/credentials", {"id": "c-dup", "person": "p-ben", "kind": "pin", "value": PIN}
        )
        await call(
            "POST",
            "/credentials",
            {"id": "c-bad", "person": "p-ben", "kind": "rf_card", "value": f"{CARD}!"},
        )
        await call(
            "POST",
            "/temp-keys",
            {"id": "t-2", "kind": "pin", "code": TEMP_CODE, "schedule": ALL_DAY, "doors": ["gate"]},
        )
        await call("PUT", "/policy", {**POLICY, "people": "not a list"})
        # MQTT: a read from the MQTT reader, and one for a reader that takes no MQTT input.
        topic = "doorkeep/demo/reader/lobby-mqtt/presentation"
        for t, payload in [
            (topic, json.dumps({"kind": "pin", "value": PIN})),
            (topic, json.dumps({"kind": "rf_card", "value": UNKNOWN_CARD})),
            (
                "doorkeep/demo/reader/gate-in/presentation",
                json.dumps({"kind": "pin", "value": WRONG_PIN}),
            ),
            (topic, json.dumps({"kind": "pin", "value": [PIN]})),  # malformed
        ]:
            sent.append((t, payload))
            await mqtt.publish(t, payload)
        await asyncio.sleep(1.0)  # the broker delivers, the daemon decides and logs
        for path in [
            "/events?limit=1000",
            "/audit",
            "/alarms",
            "/doors",
            "/policy",
            "/people",
            "/credentials",
            "/credentials/c-card",
            "/temp-keys",
            "/health",
            "/events/export?format=csv",
        ]:
            await call("GET", path)
        xlsx = await call("GET", "/events/export?format=xlsx")
        out["GET /events/export"][-1] = "xlsx\n" + xlsx_text(xlsx)
    for fmt in ("json", "csv"):
        out[f"cli events --format {fmt}"] = [
            await asyncio.to_thread(daemon.cli, "events", "--format", fmt, "-c", str(daemon.config))
        ]
    xlsx_path = daemon.root / "events.xlsx"
    await asyncio.to_thread(
        daemon.cli, "events", "--format", "xlsx", "-o", str(xlsx_path), "-c", str(daemon.config)
    )
    out["cli events --format xlsx"] = [xlsx_text(xlsx_path.read_bytes())]
    out["cli policy export"] = [
        await asyncio.to_thread(daemon.cli, "policy", "export", "-c", str(daemon.config))
    ]
    return {k: "\n".join(v) for k, v in out.items()}
