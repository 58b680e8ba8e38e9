"""OSDP readers end to end: the site's control panel (libosdp, through Site.open) on one end
of a socat pty pair, a real libosdp PeripheralDevice on the other.

Provisioning gives a factory reader its own key and Secure Channel comes up with it; a
Wiegand card and a keypad PIN open the door (relay and access event); the reader gets its
LED and buzzer; a reader in install mode outside the window, one with another key and
one that replaced a provisioned reader are refused and alarmed, and their reads open
nothing.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import osdp
import pytest

from edge.readers.osdp_bus import OsdpBus
from edge.readers.osdp_keys import OsdpKeys
from edge.service import Site
from tests.edge.readers.osdp_pd import Reader, pty_pair
from tests.edge.sites import open_site, until
from tests.edge.web import sample

CARD = 0x209CBF  # sample.POLICY: Cathy's card 00209CBF (lobby)
LOBBY_COIL = 1  # relays-a:2, coil index 1


def site_toml(port: str, *, secure: bool = True) -> str:
    return (
        sample.SITE_TOML.replace(
            'relay = "relays-a:2"\npulse_ms = 200', 'relay = "relays-a:2"\npulse_ms = 1500'
        )
        + f"""
[[bus]]
id = "osdp-1"
port = "{port}"
protocol = "osdp"
baudrate = 9600

[[reader]]
id = "lobby-osdp"
door = "lobby"
type = "osdp"
bus = "osdp-1"
address = 1
secure = {"true" if secure else "false"}
"""
    )


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    # the same logic on a shorter clock: retry an offline reader every second
    monkeypatch.setattr(OsdpBus, "retry_s", 1.0)
    monkeypatch.setattr(OsdpBus, "grace_s", 1.0)


@pytest.fixture
def line(tmp_path: Path) -> Iterator[tuple[str, str]]:
    with pty_pair(tmp_path) as ends:
        yield ends


@pytest.fixture
def readers() -> Iterator[list[Reader]]:
    made: list[Reader] = []
    yield made
    for r in made:
        r.close()


@pytest.fixture
async def site(tmp_path: Path, line: tuple[str, str]) -> AsyncIterator[Site]:
    async with open_site(tmp_path / "site", site_toml(line[0]), sample.POLICY) as s:
        yield s


def coil(site: Site) -> bool:
    return bool(site.hw.sims[sample.BUS].board(sample.BOARD_ADDRESS).coils[LOBBY_COIL])


def state(site: Site) -> dict[str, Any]:
    return next(r for r in site.readers.status() if r["id"] == "lobby-osdp")


def bad_reader(site: Site) -> bool:
    """/health names the reader as not ok."""
    return any(
        c["name"] == "reader lobby-osdp" and not c["ok"] for c in site.status.health()["components"]
    )


async def alarms(site: Site, kind: str) -> list[dict[str, Any]]:
    return [a for a in await site.alarms() if a["kind"] == kind]


async def access(site: Site) -> list[dict[str, Any]]:
    events, _ = await site.events(type="access")
    return [e for e in events if e["reader"] == "lobby-osdp"]


async def provision(site: Site) -> None:
    await site.readers.provision("lobby-osdp", 20)
    await until(lambda: state(site)["detail"].get("provisioning") == "provisioned", timeout=15)
    await until(lambda: state(site)["secure"] is True and state(site)["online"] is True, 5)


async def test_provisioning_gives_the_reader_its_key_and_secure_channel_comes_up(
    site: Site, line: tuple[str, str], readers: list[Reader]
) -> None:
    pd = Reader(line[1])  # factory state: install mode, no key of its own
    readers.append(pd)
    # outside the window the panel never falls back to the default key: refused, alarmed
    await until(lambda: bool(state(site)["detail"].get("reason")), timeout=10)
    assert state(site)["online"] is False and state(site)["secure"] is False
    assert not pd.secure()
    assert len(await alarms(site, "reader_insecure")) == 1
    assert bad_reader(site)

    await provision(site)
    key_file = site.config.site.data_dir / "keys" / "osdp" / "lobby-osdp.key"
    assert pd.key == OsdpKeys(site.config.site.data_dir).key("lobby-osdp")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert pd.key is not None and pd.key.hex() not in str(state(site))
    assert pd.secure()
    assert len(pd.seen(osdp.Command.Keyset)) == 1
    assert not bad_reader(site)


async def test_a_card_and_a_pin_open_the_door_and_the_reader_signals(
    site: Site, line: tuple[str, str], readers: list[Reader]
) -> None:
    pd = Reader(line[1])
    readers.append(pd)
    await provision(site)

    pd.card(CARD)
    await _wait_events(site, 1)
    assert coil(site)  # the lock is released (pulse 1.5 s)
    granted = await access(site)
    assert [(e["result"], e["credential_kind"]) for e in granted] == [("success", "rf_card")]
    assert format(CARD, "X") not in str(granted) and "209cbf" not in str(granted).lower()
    green = osdp.CommandLEDColor.Green
    await until(lambda: any(c["on_color"] == green for c in pd.seen(osdp.Command.LED)))
    await until(lambda: bool(pd.seen(osdp.Command.Buzzer)))
    await until(lambda: not coil(site), timeout=5)

    pd.keys(b"47")
    pd.keys(b"11\r")  # two keypad events, one PIN; CR is enter
    await _wait_events(site, 2)
    assert coil(site)
    events = await access(site)  # newest first
    assert [(e["result"], e["credential_kind"]) for e in events] == [
        ("success", "pin"),
        ("success", "rf_card"),
    ]
    assert "4711" not in str(events)
    await until(lambda: not coil(site), timeout=5)

    pd.keys(b"99*4711#")  # a wrong start cleared with *, then the PIN and #
    await _wait_events(site, 3)
    assert coil(site)
    assert (await access(site))[0]["result"] == "success"
    await until(lambda: not coil(site), timeout=5)

    pd.card(0x123456)  # nobody's card: denied, red LED, the door stays shut
    await _wait_events(site, 4)
    assert (await access(site))[0]["result"] == "failed"
    assert not coil(site)
    red = osdp.CommandLEDColor.Red
    await until(lambda: any(c["on_color"] == red for c in pd.seen(osdp.Command.LED)))


async def _wait_alarm(site: Site, kind: str) -> None:
    for _ in range(250):
        if await alarms(site, kind):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {kind} alarm")


async def _wait_events(site: Site, n: int) -> None:
    for _ in range(250):
        if len(await access(site)) >= n:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {n} access events")


async def test_a_reader_with_another_key_is_refused_and_its_reads_open_nothing(
    site: Site, line: tuple[str, str], readers: list[Reader]
) -> None:
    pd = Reader(line[1], key=os.urandom(16))
    readers.append(pd)
    await until(lambda: bool(state(site)["detail"].get("reason")), timeout=10)
    assert state(site)["secure"] is False and state(site)["online"] is False
    insecure = await alarms(site, "reader_insecure")
    assert len(insecure) == 1 and "another key" in insecure[0]["detail"]["message"]
    pd.card(CARD)
    pd.keys(b"4711#")
    await asyncio.sleep(3)  # three more attempts of the panel
    assert not coil(site)
    assert await access(site) == []
    assert not pd.secure()
    assert pd.seen(osdp.Command.LED) == []
    assert len(await alarms(site, "reader_insecure")) == 1  # one alarm for the outage


async def test_a_replaced_reader_is_refused_until_provisioned(
    site: Site, line: tuple[str, str], readers: list[Reader]
) -> None:
    first = Reader(line[1])
    readers.append(first)
    await provision(site)
    first.close()
    readers.remove(first)

    second = Reader(line[1], key=os.urandom(16), serial_number=2002)
    readers.append(second)
    await until(lambda: state(site)["online"] is False, timeout=10)
    await _wait_alarm(site, "reader_replaced")
    assert "another reader" in state(site)["detail"]["reason"]
    replaced = await alarms(site, "reader_replaced")
    assert len(replaced) == 1 and replaced[0]["source"] == "reader:lobby-osdp"
    second.card(CARD)
    await asyncio.sleep(2)
    assert not coil(site)
    assert await access(site) == []


async def test_tamper_and_offline_are_alarmed_once(
    site: Site, line: tuple[str, str], readers: list[Reader]
) -> None:
    pd = Reader(line[1])
    readers.append(pd)
    await provision(site)
    pd.tamper(True)
    await _wait_alarm(site, "reader_tamper")
    assert state(site)["detail"]["tamper"] is True
    pd.close()
    readers.remove(pd)
    await until(lambda: state(site)["online"] is False, timeout=15)
    await until(lambda: "no answer" in str(state(site)["detail"].get("reason")), timeout=10)
    await _wait_alarm(site, "reader_offline")
    await asyncio.sleep(2)  # two more attempts, still one alarm
    offline = await alarms(site, "reader_offline")
    assert len(offline) == 1
    assert state(site)["last_seen"] is not None


async def test_secure_false_talks_clear_text_knowingly(
    tmp_path: Path, line: tuple[str, str], readers: list[Reader]
) -> None:
    toml = site_toml(line[0], secure=False)
    async with open_site(tmp_path / "clear", toml, sample.POLICY) as site:
        pd = Reader(line[1])
        readers.append(pd)
        await until(lambda: state(site)["online"] is True, timeout=10)
        assert state(site)["secure"] is False and not pd.secure()
        assert not bad_reader(site)  # not secure is what site.toml asked for
        assert not (site.config.site.data_dir / "keys" / "osdp").exists()  # no key made
        pd.keys(b"4711#")
        await _wait_events(site, 1)
        assert (await access(site))[0]["result"] == "success"
        await until(lambda: bool(pd.seen(osdp.Command.LED)))
        assert await alarms(site, "reader_insecure") == []
