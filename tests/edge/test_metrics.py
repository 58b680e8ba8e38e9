"""GET /api/v1/metrics and /health components, on the real site over the pty-simulated bus."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from edge.auth import AuthStore
from edge.config.sections import MqttSection
from edge.mqtt import MqttBridge, _bridge
from edge.service import Site
from edge.web.app import make_app
from tests.edge.conftest import until
from tests.edge.mosquitto import Mosquitto


class Scraper:
    """A Prometheus scraper of the site's own listener, with a viewer token."""

    def __init__(self, client: TestClient[Any, Any], token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    async def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        resp = await self.client.get("/api/v1/metrics", headers=self.headers)
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    async def health(self) -> dict[str, Any]:
        resp = await self.client.get("/api/v1/health")
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


@pytest.fixture
async def scraper(site: Site) -> AsyncIterator[Scraper]:
    auth = AuthStore.open(":memory:")
    token = auth.create_token("viewer", "prometheus")
    try:
        async with TestClient(TestServer(make_app(site, auth, tls=False))) as client:
            yield Scraper(client, token)
    finally:
        auth.close()


async def test_metrics_need_a_token(scraper: Scraper) -> None:
    resp = await scraper.client.get("/api/v1/metrics")
    assert resp.status == 401
    resp = await scraper.client.get(
        "/api/v1/metrics", headers={"Authorization": "Bearer not-a-token"}
    )
    assert resp.status == 401


async def test_decisions_are_counted_by_result_and_reason(site: Site, scraper: Scraper) -> None:
    await site.present("gate-in", "pin", "2580")  # Ann: granted, the relay pulses
    await site.present("lobby-in", "pin", "2580")
    await site.present("gate-in", "pin", "0000")  # nobody's PIN
    samples = await scraper.samples()
    assert samples[key("doorkeep_decisions_total", result="success", reason="granted")] == 2
    denied = {
        dict(labels)["reason"]: value
        for (name, labels), value in samples.items()
        if name == "doorkeep_decisions_total" and dict(labels)["result"] == "failed"
    }
    assert denied == {"unknown_credential": 1}
    assert samples[key("doorkeep_decision_seconds_count")] == 3
    assert samples[key("doorkeep_decision_seconds_sum")] > 0
    assert samples[key("doorkeep_info", version=site.version, site="test")] == 1
    assert samples[key("doorkeep_policy_version")] == site.snapshot.version
    assert samples[key("doorkeep_storage_ok")] == 1
    assert samples[key("doorkeep_clock_trusted")] == 1
    assert samples[key("doorkeep_outbox_backlog")] == 0  # standalone
    assert samples[key("doorkeep_policy_age_seconds")] >= 0


async def test_alarms_open_is_the_count_of_unresolved_alarms(site: Site, scraper: Scraper) -> None:
    before = (await scraper.samples())[key("doorkeep_alarms_open")]
    alarm = await site.log.raise_alarm("held_open", source="gate", door="gate")
    assert (await scraper.samples())[key("doorkeep_alarms_open")] == before + 1
    await site.resolve_alarm(alarm["id"], actor="test")
    assert (await scraper.samples())[key("doorkeep_alarms_open")] == before


async def test_a_board_taken_offline_shows_in_metrics_and_health(
    site: Site, scraper: Scraper
) -> None:
    answered = key(
        "doorkeep_bus_transactions_total", bus="rs485-1", board="doors", outcome="answered"
    )
    first = await scraper.samples()
    assert first[key("doorkeep_board_online", board="doors")] == 1
    await site.present("gate-in", "pin", "2580")  # a relay pulse is one more transaction
    assert (await scraper.samples())[answered] > first[answered]
    health = await scraper.health()
    assert health["status"] == "ok", health
    names = {c["name"] for c in health["components"]}
    assert {"storage", "bus rs485-1", "board doors", "board spare", "clock"} <= names
    assert {"reader gate-in", "reader lobby-in"} <= names

    site.hw.sims["rs485-1"].board(3).offline = True  # the board at address 3 goes silent
    await until(lambda: not site.hw.boards["doors"].online)
    samples = await scraper.samples()
    assert samples[key("doorkeep_board_online", board="doors")] == 0
    assert samples[key("doorkeep_board_online", board="spare")] == 1
    timeouts = key(
        "doorkeep_bus_transactions_total", bus="rs485-1", board="doors", outcome="timeout"
    )
    assert samples[timeouts] > first[timeouts]
    await site.present("gate-in", "pin", "2580")  # granted, but the relay cannot confirm
    offline = key("doorkeep_decisions_total", result="offline", reason="offline")
    assert (await scraper.samples())[offline] == 1
    health = await scraper.health()
    assert health["status"] == "degraded"
    board = next(c for c in health["components"] if c["name"] == "board doors")
    assert board["ok"] is False
    assert "address 3" in board["reason"]
    assert all(c["ok"] for c in health["components"] if c["name"] != "board doors")

    site.hw.sims["rs485-1"].board(3).offline = False
    await until(lambda: site.hw.boards["doors"].online)
    assert (await scraper.health())["status"] == "ok"


async def test_the_mqtt_link_is_a_component_with_the_broker_named_when_down(
    site: Site, scraper: Scraper, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_bridge, "BACKOFF_BASE_S", 0.05)
    monkeypatch.setattr(_bridge, "BACKOFF_CAP_S", 0.3)
    (tmp_path / "mosquitto").mkdir()
    async with (
        Mosquitto(tmp_path / "mosquitto") as broker,
        MqttBridge(site, MqttSection(url=broker.url)) as bridge,
    ):
        site.mqtt = bridge  # as edge/daemon.py does when [mqtt] is configured
        await until(lambda: bridge.connected)
        health = await scraper.health()
        assert {"name": "mqtt", "ok": True, "reason": ""} in health["components"]
        assert health["status"] == "ok"

        await broker.stop()
        await until(lambda: not bridge.connected)
        health = await scraper.health()
        mqtt = next(c for c in health["components"] if c["name"] == "mqtt")
        assert mqtt["ok"] is False
        assert f"127.0.0.1:{broker.port}" in mqtt["reason"]
        assert health["status"] == "degraded"


class SyncLinkFake:
    """Our own interface edge/sync.py: SyncLink (status and poke), as an enrolled site has."""

    def __init__(self) -> None:
        self.stale = False

    def poke(self) -> None:
        pass

    def status(self) -> dict[str, Any]:
        return {"stale": self.stale, "last_contact": "2026-12-01T08:00:00+00:00"}


async def test_an_enrolled_site_shows_its_outbox_backlog_and_a_stale_cloud(
    site: Site, scraper: Scraper
) -> None:
    link = SyncLinkFake()
    site.sync = link
    stored = await site.present("gate-in", "pin", "2580")
    backlog = (await scraper.samples())[key("doorkeep_outbox_backlog")]
    assert backlog >= 1  # at least that presentation, plus the door events before it
    await site.store.set_acknowledged(stored["event_id"])
    newest, _ = await site.events(limit=1)
    expected = newest[0]["seq"] - stored["event_id"]
    assert (await scraper.samples())[key("doorkeep_outbox_backlog")] == expected

    assert {"name": "cloud", "ok": True, "reason": ""} in (await scraper.health())["components"]
    link.stale = True
    health = await scraper.health()
    cloud = next(c for c in health["components"] if c["name"] == "cloud")
    assert cloud["ok"] is False
    assert "since 2026-12-01T08:00:00+00:00" in cloud["reason"]
    assert health["status"] == "degraded"


def _documented_components() -> list[str]:
    """The health components docs/operations.md names: its table's unconditional rows and
    the `doorkeep status` example (``ID`` in the table stands for a bus, board or reader)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    table = text.split("| component |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `([^`]+)`", table, re.MULTILINE)
    example = text.split("$ doorkeep status -c", 1)[1].split("$ echo", 1)[0]
    shown = re.findall(r"^  (?:ok|FAIL) +([^:\n]+)", example, re.MULTILINE)
    return [r.removesuffix(" ID") for r in rows] + [s.rsplit(" ", 1)[0] for s in shown]


async def test_the_components_the_operations_guide_names_are_the_ones_health_gives(
    site: Site, scraper: Scraper
) -> None:
    names = {c["name"] for c in (await scraper.health())["components"]}
    # mqtt, cloud and notify need a broker, an enrollment or [notify]: tests of their own
    conditional = {"mqtt", "cloud", "notify email", "notify webhook"}
    documented = set(_documented_components()) - conditional
    assert {"storage", "bus", "board", "reader", "clock"} <= documented
    stems = {name.split(" ", 1)[0] if " " in name else name for name in names}
    assert documented <= stems, f"documented but not given: {documented - stems}"
