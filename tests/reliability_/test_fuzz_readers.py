"""Fuzzing what readers send with Hypothesis: Wiegand frames, serial reader frames, OSDP
reads and HTTP reader posts. 0 crashes.

The same rule as tests/reliability_/test_fuzz.py: a parser refuses an input only with the
error it declares (``WiegandError``, a ``FrameError`` event, ``ValueError``; an HTTP 4xx
with the error object), and a card a serial parser accepts is one a credential can match
(``cards.normalise`` takes it). Serial and OSDP bytes come in arbitrary pieces, mixed with
real frames and real frames with a byte changed, so the fuzzing gets past the framing.
An HTTP post is decided only with the reader's own token, and nothing refused opens a door.
The fuzz tests of tests/doorkeep and tests/edge/readers moved here, one row per parser.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import osdp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from doorkeep import cards, policydoc, wiegand
from doorkeep.serialframes import (
    CardRead,
    FrameError,
    Rdm6300Parser,
    WiegandTextParser,
    rdm6300_frame,
)
from doorkeep.wiegand import Card, WiegandError, decode_bits, decode_text, encode, to_text
from edge.readers.osdp_wire import _MAX_PACKET, Keypad, ReplyWatch, card_value
from tests.edge.readers.garage import PLATE, UHF, Garage, garage
from tests.edge.readers.osdp_pd import reply_packet
from tests.reliability import Reliability
from tests.reliability_.fuzzing import JSON, Cases, mostly, on_a_loop, run, spelled, tally

# -- Wiegand frames ------------------------------------------------------------------------


@st.composite
def near_frames(draw: st.DrawFn) -> str:
    """Real frames as 0s and 1s with up to three bits flipped, cut or extended."""
    fmt = wiegand.FORMATS[draw(st.sampled_from(list(wiegand.FORMATS)))]
    payload = draw(st.integers(0, (1 << fmt.payload_bits) - 1))
    facility = payload >> fmt.number_bits if fmt.facility_bits else None
    card = Card(fmt.name, facility, payload & fmt.max_number)
    bits = list(to_text(encode(card), fmt.length))
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, fmt.length - 1))
        bits[i] = "1" if bits[i] == "0" else "0"
    text = "".join(bits)
    cut = draw(st.integers(-2, 2))
    return text[:cut] if cut < 0 else text + "0" * cut


def test_fuzz_wiegand_frames(reliability: Reliability) -> None:
    cases = Cases()

    @given(
        st.integers() | st.booleans() | st.floats() | st.none() | st.text(max_size=4),
        st.integers(-5, 200) | st.booleans() | st.none() | st.just(37.0),
        st.none() | st.sampled_from([*wiegand.FORMATS, "x", ""]),
    )
    def bits(bits: Any, length: Any, name: str | None) -> None:
        cases()
        result = decode_bits(bits, length, name)
        assert isinstance(result, Card | WiegandError)
        if isinstance(result, Card):
            assert encode(result) == bits

    @given(st.text(alphabet="01", max_size=140) | st.text(max_size=40) | near_frames())
    def text(text: str) -> None:
        cases()
        result = decode_text(text)
        assert isinstance(result, Card | WiegandError)
        if isinstance(result, Card):
            assert to_text(encode(result), len(text)) == text

    run(bits, reliability, 1500)
    run(text, reliability, 2000)
    reliability.row(
        test="fuzz: Wiegand frames (wiegand.decode_bits, decode_text)",
        load="-",
        bad_inputs=f"{cases.n} Hypothesis cases",
        losses="0 crashes",
    )


# -- serial reader frames ------------------------------------------------------------------

# Frames an RDM6300 printed for real EM4100 fobs (tests/doorkeep/test_serialframes.py).
FOBS = [b"\x0201001293D858\x03", b"\x020100CDA4EC84\x03", b"\x022900DEB30A4E\x03"]


@st.composite
def rdm6300_bytes(draw: st.DrawFn) -> bytes:
    """Noise, real frames, and real frames with one byte changed or cut short."""
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=40))
    frame = draw(
        st.sampled_from(FOBS)
        | st.builds(rdm6300_frame, st.integers(0, (1 << 32) - 1), st.integers(0, 255))
    )
    if choice == 1:
        return frame
    i = draw(st.integers(0, len(frame) - 1))
    if choice == 2:
        return frame[:i] + bytes([draw(st.integers(0, 255))]) + frame[i + 1 :]
    return frame[:i]


def pieces(stream: bytes, cuts: list[int]) -> list[bytes]:
    """``stream`` split where ``cuts`` say, as a port delivers it."""
    at = sorted({c % (len(stream) + 1) for c in cuts})
    return [stream[a:b] for a, b in zip([0, *at], [*at, len(stream)], strict=True)]


def a_card(event: CardRead) -> None:
    """A read off the wire is a value a card credential matches, as the driver posts it."""
    assert cards.normalise("rf_card", event.text) == format(event.value, "X")


def test_fuzz_serial_reader_frames(reliability: Reliability) -> None:
    cases = Cases()

    @given(st.lists(rdm6300_bytes(), max_size=6), st.lists(st.integers(0, 400), max_size=4))
    def rdm6300(parts: list[bytes], cuts: list[int]) -> None:
        cases()
        stream = b"".join(parts)
        parser = Rdm6300Parser()
        for chunk in pieces(stream, cuts):
            for event in parser.feed(chunk):
                assert isinstance(event, CardRead | FrameError)
                if isinstance(event, CardRead):
                    a_card(event)
                    # only a whole, checked frame of the stream is a card (hex digits
                    # in either case)
                    frames = (rdm6300_frame(event.value, v) for v in range(256))
                    assert any(frame in stream.upper() for frame in frames)

    line = (
        st.binary(max_size=100)
        | st.text("01W:2634579 =\r\n", max_size=60).map(str.encode)
        | st.text(string.hexdigits + "Ww:= \r\n", max_size=30).map(str.encode)
        | near_frames().map(lambda t: t.encode() + b"\r\n")
    )

    @given(st.lists(line, max_size=6), st.sampled_from(["hex", "decimal"]))
    def converter(chunks: list[bytes], digits: str) -> None:
        cases()
        parser = WiegandTextParser(digits)
        for chunk in chunks:
            for event in parser.feed(chunk):
                assert isinstance(event, CardRead | FrameError)
                if isinstance(event, CardRead):
                    a_card(event)
                else:
                    assert event.reason

    run(rdm6300, reliability, 1500)
    run(converter, reliability, 1500)
    reliability.row(
        test="fuzz: serial reader frames (RDM6300, Wiegand-to-serial lines)",
        load="-",
        bad_inputs=f"{cases.n} Hypothesis cases",
        losses="0 crashes",
    )


# -- OSDP ----------------------------------------------------------------------------------


# What libosdp hands the driver for a card read: a format, a bit count, the bytes.
CARD_READS = st.fixed_dictionaries(
    {},
    optional={
        "format": st.sampled_from(
            [osdp.CardFormat.ASCII, osdp.CardFormat.Wiegand, osdp.CardFormat.Unspecified]
        )
        | st.integers(-1, 300),
        "length": st.integers(-8, 1 << 16) | st.integers(0, 64) | st.none(),
        "data": st.binary(max_size=40) | st.text(max_size=20).map(str.encode) | st.none(),
    },
)


def test_fuzz_osdp_reader_input(reliability: Reliability) -> None:
    cases = Cases()

    @given(CARD_READS)
    def card(event: dict[str, Any]) -> None:
        cases()
        try:
            value = card_value(event)
        except ValueError:
            return
        assert isinstance(value, str) and value
        with contextlib.suppress(ValueError):  # the hub refuses it: a malformed card
            assert cards.normalise("rf_card", value)

    @given(st.lists(st.tuples(st.binary(max_size=20), st.floats(0, 20)), max_size=10))
    def keypad(presses: list[tuple[bytes, float]]) -> None:
        cases()
        now = [0.0]
        pad = Keypad(timeout_s=10, clock=lambda: now[0])
        for keys, wait in presses:
            now[0] += wait
            for pin in pad.press(keys):
                assert pin.isdigit() and pin.isascii() and 1 <= len(pin) <= 12

    replies = st.builds(
        reply_packet, st.integers(0, 127), st.binary(max_size=30), crc=st.booleans()
    )
    noise = st.binary(max_size=300) | replies.map(lambda r: r[: len(r) // 2])

    @given(st.lists(noise | replies, max_size=6), st.lists(st.integers(0, 2000), max_size=6))
    def line(parts: list[bytes], cuts: list[int]) -> None:
        cases()
        watch = ReplyWatch()
        for chunk in pieces(b"".join(parts), cuts):
            watch.feed(chunk)
            assert len(watch._buf) < _MAX_PACKET  # noise never grows the buffer
        watch.feed(b"\x00" * _MAX_PACKET)  # a line idle long enough to end any partial packet
        watch.feed(reply_packet(126, b"\x40", crc=True))
        assert watch.answered_since(126, 0)  # after any noise, the next reply is seen

    run(card, reliability, 1000)
    run(keypad, reliability, 500)
    run(line, reliability, 500)
    reliability.row(
        test="fuzz: OSDP reader input (card reads, keypad, reply framing)",
        load="-",
        bad_inputs=f"{cases.n} Hypothesis cases",
        losses="0 crashes",
    )


# -- HTTP readers over real HTTP -----------------------------------------------------------


@pytest.fixture
def loop_garage(tmp_path: Path) -> Iterator[tuple[asyncio.Runner, Garage]]:
    """The garage site (two ``http`` readers, tests/edge/readers/garage.py) served over
    loopback HTTP, on an event loop that each example runs on."""
    with on_a_loop(garage(tmp_path)) as pair:
        yield pair


HTTP_READERS = ["garage-lpr", "garage-exit"]
READ = st.fixed_dictionaries(
    {
        "kind": mostly(
            st.sampled_from(["license_plate", "uhf_card", *policydoc.CREDENTIAL_KINDS]), JSON
        ),
        "value": mostly(
            st.sampled_from([PLATE, "ab-123cd", UHF, UHF.lower(), "ZZ 999", "4711", "", " "])
            | st.text(max_size=300),
            JSON,
        ),
    },
    optional={"at": JSON, "reader": JSON, "extra": JSON},
)
READ_BODIES = mostly(
    READ.map(lambda d: json.dumps(d).encode()),
    JSON.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200),
)
READ_CONTENT_TYPES = mostly(
    st.just("application/json"),
    st.sampled_from(
        ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"]
    )
    | st.none(),
)
# Whose token goes with a post: the reader's own, another reader's, an admin's API token,
# a reader token that was never made, none, another scheme.
TOKENS = mostly(
    st.just("own"), st.sampled_from(["other reader", "admin", "forged", "none", "basic"])
)
PATHS = mostly(
    st.sampled_from(HTTP_READERS),
    st.sampled_from(["gate-in", "nope", ""])
    | st.text(max_size=12).map(lambda t: quote(t, safe="")),
)


def test_fuzz_http_reader_input(
    reliability: Reliability, loop_garage: tuple[asyncio.Runner, Garage]
) -> None:
    runner, g = loop_garage
    admin = g.auth.create_token("admin", "fuzz")
    g.auth.readers.create("gate-in")  # a token of a reader that is not (or no more) http
    cases = Cases()
    statuses: dict[int, int] = {}
    codes: dict[str, int] = {}

    def authorization(who: str, reader: str) -> str | None:
        other = next((r for r in HTTP_READERS if r != reader), HTTP_READERS[0])
        return {
            "own": f"Bearer {g.tokens.get(reader, 'dkr_not-made')}",
            "other reader": f"Bearer {g.tokens[other]}",
            "admin": f"Bearer {admin}",
            "forged": "Bearer dkr_" + "A" * 43,
            "basic": "Basic YWRtaW46YWRtaW4=",
        }.get(who)

    async def post(reader: str, body: bytes, content_type: str | None, who: str) -> Any:
        headers = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if (auth := authorization(who, reader)) is not None:
            headers["Authorization"] = auth
        url = f"/api/v1/readers/{reader}/input"
        async with g.client.post(url, data=body, headers=headers) as r:
            return r.status, await r.json(content_type=None)

    def read(reader: str, body: bytes, content_type: str | None, who: str) -> None:
        cases()
        before = len(g.pulses())
        status, answer = runner.run(post(reader, body, content_type, who))
        tally(statuses, status)
        assert status < 500, (status, answer)
        if status == 200:
            assert reader in HTTP_READERS and who == "own"  # only its own token reads
            assert isinstance(answer["granted"], bool)
        else:
            assert set(answer["error"]) >= {"code", "message"}
            tally(codes, answer["error"]["code"])
        opened = status == 200 and answer["granted"]
        assert len(g.pulses()) == before + (1 if opened else 0)  # nothing refused opens

    # any reader path, body, content type and token; then bodies alone, as a camera with
    # its own token posts them, so that many reads get as far as a decision
    mixed = given(PATHS, READ_BODIES, READ_CONTENT_TYPES, TOKENS)(read)
    camera = given(
        st.sampled_from(HTTP_READERS), READ_BODIES, st.just("application/json"), st.just("own")
    )(read)
    run(mixed, reliability, 200)
    run(camera, reliability, 200)
    reliability.row(
        test="fuzz: HTTP reader input (POST /readers/{id}/input, reader tokens)",
        load="-",
        bad_inputs=f"{cases.n} Hypothesis cases",
        losses="0 server errors",
        answers=spelled(statuses),
        doors_opened=len(g.pulses()),
        refusals=spelled(codes),
    )
