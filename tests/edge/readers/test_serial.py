"""Serial readers end to end: a real site reads an RDM6300 on one end of a socat pty pair.

The test writes real RDM6300 frames (good, bad checksum, garbage) into the other end; the
door is on the sample site's simulated relay board. A good card opens the door once
however long it is held; bad frames are counted and open nothing; a port that goes away
is one alarm and comes back by itself.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from doorkeep.serialframes import rdm6300_frame
from edge.readers import serial as serial_driver
from edge.service import Site
from tests.edge.sites import open_site, until
from tests.edge.web import sample

CARD = 0x209CBF  # sample.POLICY: Cathy's card 00209CBF, doors gate, lobby and plant


def site_toml(port: Path, fmt: str = "rdm6300") -> str:
    return sample.SITE_TOML + (
        f"""
[[reader]]
id = "gate-rfid"
door = "gate"
type = "serial"
options = {{ port = "{port}", baudrate = 9600, format = "{fmt}", repeat_ms = 500 }}
"""
    )


class PtyPair:
    """``socat`` joining two pseudo-terminals: the site opens ``a``, the test writes ``b``."""

    def __init__(self, directory: Path) -> None:
        self.a, self.b = directory / "ttyA", directory / "ttyB"
        self.proc: subprocess.Popen[bytes] | None = None
        self._fd: int | None = None

    def start(self) -> None:
        socat = shutil.which("socat")
        assert socat, "socat is needed (scripts/services installs it)"
        self.proc = subprocess.Popen(
            [socat, "-d", "-d", f"pty,raw,echo=0,link={self.a}", f"pty,raw,echo=0,link={self.b}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            if self.a.exists() and self.b.exists():
                break
            subprocess.run(["sleep", "0.02"], check=True)
        assert self.a.exists() and self.b.exists(), "socat made no pty pair"
        self._fd = os.open(self.b, os.O_RDWR | os.O_NOCTTY)

    def write(self, data: bytes) -> None:
        assert self._fd is not None
        os.write(self._fd, data)

    def stop(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.proc is not None:
            self.proc.terminate()  # socat removes its links on SIGTERM
            self.proc.wait(5)
            self.proc = None
        for link in (self.a, self.b):  # a stale link could point at a reused pty number
            link.unlink(missing_ok=True)


@pytest.fixture
def pty(tmp_path: Path) -> Iterator[PtyPair]:
    pair = PtyPair(tmp_path)
    pair.start()
    yield pair
    pair.stop()


def gate_relay(site: Site) -> bool:
    return bool(site.hw.sims[sample.BUS].board(sample.BOARD_ADDRESS).coils[0])


def reader(site: Site) -> dict:
    return next(r for r in site.readers.status() if r["id"] == "gate-rfid")


async def access_events(site: Site) -> list[dict]:
    events, _ = await site.events(type="access")
    return [e for e in events if e["reader"] == "gate-rfid"]


async def test_a_good_card_opens_the_door_once_and_bad_frames_only_count(
    tmp_path: Path, pty: PtyPair
) -> None:
    async with open_site(tmp_path / "site", site_toml(pty.a), sample.POLICY) as site:
        await until(lambda: reader(site)["online"] is True)
        assert reader(site)["detail"]["framing_errors"] == 0

        good = rdm6300_frame(CARD, version=0x04)
        bad_checksum = good[:11] + (b"00" if good[11:13] != b"00" else b"11") + good[13:]
        pty.write(b"\xaa\x55garbage" + bad_checksum + good[:6])  # noise, bad frame, cut short
        await until(lambda: reader(site)["detail"]["framing_errors"] == 2)
        await asyncio.sleep(0.3)
        assert not gate_relay(site)
        assert await access_events(site) == []

        pty.write(good)
        await until(lambda: gate_relay(site), timeout=3)
        for _ in range(8):  # the module repeats the frame while the card is on the antenna
            pty.write(good)
            await asyncio.sleep(0.05)
        await until(lambda: not gate_relay(site), timeout=3)  # the 200 ms pulse relocks
        events = await access_events(site)
        assert len(events) == 1
        assert reader(site)["detail"]["framing_errors"] == 3  # the cut-short frame too
        assert events[0]["result"] == "success"
        assert "209CBF" not in str(events).upper()  # the event never carries the number

        await asyncio.sleep(0.6)  # lifted for longer than repeat_ms: a new presentation
        pty.write(good)
        await until(lambda: gate_relay(site), timeout=3)
        await until(lambda: not gate_relay(site), timeout=3)
        assert len(await access_events(site)) == 2


async def test_an_unknown_card_is_refused(tmp_path: Path, pty: PtyPair) -> None:
    async with open_site(tmp_path / "site", site_toml(pty.a), sample.POLICY) as site:
        await until(lambda: reader(site)["online"] is True)
        pty.write(rdm6300_frame(0x123456))
        for _ in range(250):
            if events := await access_events(site):
                break
            await asyncio.sleep(0.02)
        assert [(e["result"], e["reason"]) for e in events] == [("failed", "unknown_credential")]
        assert not gate_relay(site)


async def test_a_port_that_goes_away_is_one_alarm_and_comes_back(
    tmp_path: Path, pty: PtyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serial_driver, "RETRY_MIN_S", 0.05)
    monkeypatch.setattr(serial_driver, "RETRY_MAX_S", 0.1)
    async with open_site(tmp_path / "site", site_toml(pty.a), sample.POLICY) as site:
        await until(lambda: reader(site)["online"] is True)
        pty.stop()  # the USB converter is unplugged
        await until(lambda: reader(site)["online"] is False)
        await asyncio.sleep(0.5)  # several retries fail meanwhile
        alarms = [a for a in await site.alarms() if a["kind"] == "reader_offline"]
        assert len(alarms) == 1
        assert alarms[0]["source"] == "reader:gate-rfid"
        pty.start()  # plugged in again
        await until(lambda: reader(site)["online"] is True, timeout=5)
        pty.write(rdm6300_frame(CARD))
        await until(lambda: gate_relay(site), timeout=3)


async def test_a_wiegand_converter_line_opens_and_a_bad_parity_frame_does_not(
    tmp_path: Path, pty: PtyPair
) -> None:
    toml = site_toml(pty.a, "wiegand-text")
    async with open_site(tmp_path / "site", toml, sample.POLICY) as site:
        await until(lambda: reader(site)["online"] is True)
        frame = "10010000010011100101111110"  # W26 32,40127 = 0x209CBF, Cathy's card
        broken = frame[:-1] + "1"  # trailing parity wrong
        pty.write(f"{broken}\r\nnot a card\r\n".encode())
        await until(lambda: reader(site)["detail"]["framing_errors"] == 2)
        assert not gate_relay(site)
        pty.write(b"W26:209CBF\r\n")
        await until(lambda: gate_relay(site), timeout=3)
        events = await access_events(site)
        assert [e["result"] for e in events] == ["success"]
