"""Serial reader parsers (doorkeep/serialframes.py): real frames, round trips.

The fuzzing of both parsers is a reliability row: tests/reliability_/test_fuzz_readers.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from doorkeep import cards, wiegand
from doorkeep.serialframes import (
    CardRead,
    FrameError,
    Rdm6300Parser,
    Repeats,
    WiegandTextParser,
    parse_rdm6300,
    rdm6300_frame,
)

# Frames an RDM6300 printed for three EM4100 key fobs, with the number printed on each
# fob (forum.arduino.cc "trouble converting wiegand w26 output to dec"): the 32-bit ID
# after the version byte is that number.
FOBS = [
    (b"01001293D858", "0001217496"),
    (b"0100CDA4EC84", "0013477100"),
    (b"2900DEB30A4E", "0014594826"),
]


@pytest.mark.parametrize(("ascii_frame", "printed"), FOBS)
def test_rdm6300_frames_of_real_fobs_match_the_printed_number(ascii_frame, printed):
    event = parse_rdm6300(b"\x02" + ascii_frame + b"\x03")
    assert isinstance(event, CardRead)
    assert cards.normalise("rf_card", event.text) == cards.normalise("rf_card", printed)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\x0201001293D859\x03", "checksum"),
        (b"\x0201001293D858\x04", "end byte"),
        (b"\x0201001293DX58\x03", "hexadecimal"),
        (b"\x0201001293D858", "14 bytes"),
    ],
)
def test_bad_rdm6300_frames_are_errors_not_cards(frame, reason):
    event = parse_rdm6300(frame)
    assert isinstance(event, FrameError)
    assert reason in event.reason
    assert "1293D8" not in event.reason


def test_a_stream_with_noise_split_and_bad_frames_yields_only_the_good_cards():
    good = rdm6300_frame(0x1293D8, 1)
    bad = good[:-3] + b"00" + good[-1:]  # wrong checksum
    stream = b"\xff\x00noise" + good + bad + good[:5] + good + b"junk"
    parser = Rdm6300Parser()
    events = [e for i in range(0, len(stream), 3) for e in parser.feed(stream[i : i + 3])]
    assert [e for e in events if isinstance(e, CardRead)] == [CardRead(0x1293D8, "rdm6300")] * 2
    errors = [e.reason for e in events if isinstance(e, FrameError)]
    assert len(errors) == 4  # leading noise, checksum, the cut-short frame, trailing junk


@given(st.integers(0, (1 << 32) - 1), st.integers(0, 255), st.integers(1, 14))
def test_rdm6300_round_trips_in_any_chunking(card_id, version, chunk):
    frame = rdm6300_frame(card_id, version) * 2
    parser = Rdm6300Parser()
    events = [e for i in range(0, len(frame), chunk) for e in parser.feed(frame[i : i + chunk])]
    assert events == [CardRead(card_id, "rdm6300")] * 2


@pytest.mark.parametrize(
    ("line", "value"),
    [
        (b"209CBF\r", 0x209CBF),  # WIE232-style: 6 hex characters of a 26-bit payload
        (b"W26:209cbf\r\n", 0x209CBF),
        (b"W34=03E83039\n", 1000 << 16 | 12345),
        (b"  10010000010011100101111110 \r\n", 0x209CBF),  # the whole frame, parity here
    ],
)
def test_wiegand_converter_lines(line, value):
    events = WiegandTextParser().feed(line)
    assert [e.value for e in events if isinstance(e, CardRead)] == [value]
    assert len(events) == 1


def test_decimal_converters_print_ten_digits():
    events = WiegandTextParser("decimal").feed(b"0002137279\r\n")
    assert [e.value for e in events if isinstance(e, CardRead)] == [0x209CBF]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"10010000010011100101111111\r", "parity"),
        (b"W26:1209CBF\r", "at most 24 bits"),
        (b"hello\r", "no card format"),
        (b"\xff\xfe\r", "not ASCII"),
        (b"1" * 200, "longer than"),
    ],
)
def test_bad_converter_lines_are_errors(line, reason):
    events = WiegandTextParser().feed(line)
    assert len(events) == 1
    assert isinstance(events[0], FrameError)
    assert reason in events[0].reason


@given(st.sampled_from(list(wiegand.FORMATS)), st.data())
def test_converter_lines_round_trip_every_format(name, data):
    fmt = wiegand.FORMATS[name]
    facility = data.draw(st.integers(0, fmt.max_facility)) if fmt.facility_bits else None
    card = wiegand.Card(name, facility, data.draw(st.integers(0, fmt.max_number)))
    bits = wiegand.to_text(wiegand.encode(card), fmt.length).encode()
    tagged = f"W{fmt.length}:{card.value:X}".encode()
    events = WiegandTextParser().feed(bits + b"\r\n" + tagged + b"\n")
    assert [e.value for e in events if isinstance(e, CardRead)] == [card.value] * 2


def test_a_card_held_on_the_antenna_reads_once():
    repeats = Repeats(hold_s=1.0)
    # an RDM6300 repeats the frame every ~0.1 s while the card stays
    assert [repeats.fresh(7, t / 10) for t in range(30)] == [True] + [False] * 29
    assert repeats.fresh(8, 3.0)  # another card at once
    assert repeats.fresh(7, 3.05)  # the first card again, after the other one
    assert not repeats.fresh(7, 3.5)
    assert repeats.fresh(7, 4.6)  # lifted for more than the hold time: a new presentation
