"""A real OSDP reader for tests: libosdp's PeripheralDevice on one end of a socat pty pair.

``pty_pair`` starts ``socat -d -d pty,raw,echo=0,link=A pty,raw,echo=0,link=B``; the site's
control panel opens one end, ``Reader`` (a libosdp PD in this process) the other. The PD
keeps the key a KEYSET gives it, as a reader keeps it in its flash, and records every
command it gets (LED, buzzer, ...).
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import osdp
import serial

from doorkeep import wiegand
from edge.readers.osdp_wire import _crc16


def wiegand_frame(value: int, bits: int) -> str:
    """The ``bits``-bit Wiegand frame (0s and 1s) of the payload ``value`` (doorkeep/wiegand.py)."""
    fmt = next(f for f in wiegand.FORMATS.values() if f.length == bits)
    facility = value >> fmt.number_bits if fmt.facility_bits else None
    card = wiegand.Card(fmt.name, facility, value & fmt.max_number)
    return wiegand.to_text(wiegand.encode(card), bits)


def reply_packet(address: int, payload: bytes, *, crc: bool = True) -> bytes:
    """An OSDP reply of the reader at ``address``, checked by CRC-16 or by checksum."""
    length = 5 + len(payload) + (2 if crc else 1)
    head = bytes([0x53, address | 0x80, length & 0xFF, length >> 8, 0x04 if crc else 0x00])
    body = head + payload
    if crc:
        c = _crc16(body)
        return body + bytes([c & 0xFF, c >> 8])
    return body + bytes([(-sum(body)) & 0xFF])


@contextlib.contextmanager
def pty_pair(directory: Path) -> Iterator[tuple[str, str]]:
    """Two linked pseudo-terminals (the panel's end, the reader's end); socat is killed after."""
    a, b = directory / "osdp-cp", directory / "osdp-pd"
    proc = subprocess.Popen(
        ["socat", "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while not (a.exists() and b.exists()):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("socat did not make its pty pair")
            time.sleep(0.02)
        yield str(a), str(b)
    finally:
        proc.kill()
        proc.wait(5)


class _Channel(osdp.Channel):  # type: ignore[misc]
    def __init__(self, path: str) -> None:
        super().__init__()
        self.port = serial.Serial(path, 9600, timeout=0)

    def read(self, max_bytes: int) -> bytes:
        return bytes(self.port.read(max_bytes))

    def write(self, buf: bytes) -> int:
        return int(self.port.write(buf) or 0)

    def flush(self) -> None:
        self.port.reset_input_buffer()


class Reader:
    """An OSDP reader with a keypad, an LED and a buzzer; ``key=None``: factory install mode."""

    def __init__(
        self, path: str, address: int = 1, key: bytes | None = None, serial_number: int = 1001
    ) -> None:
        self.key = key
        self.commands: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        caps = osdp.PDCapabilities(
            [
                (osdp.Capability.LEDControl, 1, 1),
                (osdp.Capability.AudibleControl, 1, 1),
                (osdp.Capability.CardDataFormat, 1, 1),
            ]
        )
        flags = [osdp.LibFlag.InstallMode] if key is None else []
        ident = osdp.PdId(1, 2, 0x00ABCD, serial_number, 0x010203)
        self._channel = _Channel(path)
        info = osdp.PDInfo(address, self._channel, scbk=key, flags=flags, id=ident)
        self.pd = osdp.PeripheralDevice(
            info, caps, log_level=osdp.LogLevel.Warning, command_handler=self._command
        )
        self.pd.start()

    def _command(self, command: dict[str, Any]) -> tuple[int, None]:  # libosdp's thread
        with self._lock:
            self.commands.append(command)
            if command.get("command") == osdp.Command.Keyset:
                self.key = bytes(command["data"])  # "written to flash"
        return 0, None

    def seen(self, command: int) -> list[dict[str, Any]]:
        with self._lock:
            return [c for c in self.commands if c.get("command") == command]

    def card(self, number: int, bits: int = 26) -> None:
        """Present a card: its raw Wiegand bit image."""
        frame = wiegand_frame(number, bits)
        padded = frame + "0" * (-len(frame) % 8)
        data = int(padded, 2).to_bytes(len(padded) // 8, "big")
        self.pd.submit_event(
            {
                "event": osdp.Event.CardRead,
                "reader_no": 0,
                "direction": 0,
                "format": osdp.CardFormat.Wiegand,
                "length": bits,
                "data": data,
            }
        )

    def keys(self, typed: bytes) -> None:
        self.pd.submit_event({"event": osdp.Event.KeyPress, "reader_no": 0, "data": typed})

    def tamper(self, on: bool) -> None:
        self.pd.submit_event(
            {
                "event": osdp.Event.Status,
                "type": osdp.StatusReportType.Local,
                "report": bytes([int(on), 0]),
            }
        )

    def secure(self) -> bool:
        return bool(self.pd.is_sc_active())

    def close(self) -> None:
        self.pd.stop()
        self._channel.port.close()
