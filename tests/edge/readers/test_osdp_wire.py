"""The OSDP driver's pure parts: card reads into card values, keypad presses into PINs,
the reply watch that tells a refused reader from a silent one, and the key files. Their
fuzzing is a reliability row: tests/reliability_/test_fuzz_readers.py."""

from __future__ import annotations

import stat
from pathlib import Path

import osdp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from doorkeep.cards import normalise
from edge.readers.osdp_keys import KeyFileError, OsdpKeys
from edge.readers.osdp_wire import Keypad, ReplyWatch, _crc16, card_value
from tests.edge.readers.osdp_pd import reply_packet, wiegand_frame


def wiegand_event(frame: str) -> dict[str, object]:
    padded = frame + "0" * (-len(frame) % 8)
    data = int(padded, 2).to_bytes(len(padded) // 8, "big")
    return {"format": osdp.CardFormat.Wiegand, "length": len(frame), "data": data}


@given(st.integers(0, (1 << 24) - 1))
def test_a_wiegand_26_bit_image_is_the_card_it_encodes(number: int) -> None:
    value = card_value(wiegand_event(wiegand_frame(number, 26)))
    assert normalise("rf_card", value) == format(number, "X")


def test_a_wiegand_image_with_a_bad_parity_bit_is_no_card() -> None:
    frame = wiegand_frame(0x209CBF, 26)
    flipped = frame[:-1] + ("0" if frame[-1] == "1" else "1")
    with pytest.raises(ValueError, match="parity"):
        normalise("rf_card", card_value(wiegand_event(flipped)))


def test_formatted_card_data_is_taken_as_written() -> None:
    event = {"format": osdp.CardFormat.ASCII, "data": b"00209CBF"}
    assert normalise("rf_card", card_value(event)) == "209CBF"


def test_a_read_without_bits_is_refused() -> None:
    with pytest.raises(ValueError, match="no bits"):
        card_value({"format": osdp.CardFormat.Wiegand, "length": 40, "data": b"\x01"})


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_keypad_enter_clear_and_timeout() -> None:
    clock = Clock()
    pad = Keypad(timeout_s=10, clock=clock)
    assert pad.press(b"47") == []
    assert pad.press(b"11\r") == ["4711"]  # CR is enter
    assert pad.press(b"12*4711#") == ["4711"]  # * clears what came before
    assert pad.press(b"12\x7f4711\x0d") == ["4711"]  # OSDP's own codes for * and #
    assert pad.press(b"#") == []  # enter on nothing is nothing
    assert pad.press(b"99") == []
    clock.t += 11  # an abandoned entry
    assert pad.press(b"4711#") == ["4711"]
    assert pad.press(bytes([4, 7, 1, 1, 0x0D])) == ["4711"]  # digit values, as some readers send


def test_keypad_drops_an_endless_entry() -> None:
    pad = Keypad()
    assert pad.press(b"1" * 13 + b"4711#") == ["4711"]


def test_reply_watch_sees_whole_checked_replies_only() -> None:
    clock = Clock()
    watch = ReplyWatch(clock)
    packet = reply_packet(3, b"\x45\x01\x02")
    watch.feed(b"\xff" + packet[:4])  # split across reads, after a mark byte
    assert not watch.answered_since(3, 0)
    watch.feed(packet[4:])
    assert watch.answered_since(3, 100) and not watch.answered_since(4, 0)
    broken = bytearray(reply_packet(5, b"\x40"))
    broken[-1] ^= 0xFF
    watch.feed(bytes(broken))
    assert not watch.answered_since(5, 0)
    watch.feed(reply_packet(6, b"\x40", crc=False))
    assert watch.answered_since(6, 0)
    command = bytearray(reply_packet(7, b"\x60"))  # a command (no reply bit) is not an answer
    command[1] = 7
    c = _crc16(bytes(command[:-2]))
    command[-2:] = bytes([c & 0xFF, c >> 8])
    watch.feed(bytes(command))
    assert not watch.answered_since(7, 0)


def test_keys_are_made_once_private_and_never_replaced(tmp_path: Path) -> None:
    keys = OsdpKeys(tmp_path)
    first = keys.key("lobby")
    assert len(first) == 16 and keys.key("lobby") == first
    assert keys.key("gate") != first  # one per reader
    assert stat.S_IMODE(keys.path("lobby").stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.dir.stat().st_mode) == 0o700
    keys.path("gate").write_text("not a key")
    with pytest.raises(KeyFileError, match="provision"):
        keys.key("gate")
    assert keys.path("gate").read_text() == "not a key"
