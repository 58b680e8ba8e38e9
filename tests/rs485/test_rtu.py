"""The pure RTU/MBAP codec: golden frames, CRC properties, frame lengths, wire timing."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.framer.rtu import FramerRTU

from rs485 import rtu

GOLDEN = [
    # Waveshare manual: flash-on relay 0 for 700 ms at address 1.
    ("01 05 02 00 00 07 8D B0", 1, "05 02 00 00 07"),
    # Modbus spec example family: read 8 coils from 0 at address 1.
    ("01 01 00 00 00 08 3D CC", 1, "01 00 00 00 08"),
    # Waveshare manual: relay 0 on at address 1.
    ("01 05 00 00 FF 00 8C 3A", 1, "05 00 00 FF 00"),
]


@pytest.mark.parametrize(("wire", "address", "pdu"), GOLDEN)
def test_golden_frames_encode_and_decode(wire, address, pdu):
    frame = bytes.fromhex(wire)
    assert rtu.encode_frame(address, bytes.fromhex(pdu)) == frame
    assert rtu.check_frame(frame) == (address, bytes.fromhex(pdu))


@settings(max_examples=200)
@given(st.integers(0, 247), st.binary(min_size=1, max_size=252))
def test_frame_round_trip_and_crc_matches_pymodbus(address, pdu):
    frame = rtu.encode_frame(address, pdu)
    assert rtu.check_frame(frame) == (address, pdu)
    # An independent implementation computes the same CRC (pymodbus sends it big-endian
    # from a byte-swapped register, so its bytes equal ours on the wire).
    assert FramerRTU.compute_CRC(frame[:-2]).to_bytes(2, "big") == frame[-2:]


@settings(max_examples=200)
@given(st.integers(0, 247), st.binary(min_size=1, max_size=64), st.data())
def test_any_single_bit_error_is_detected(address, pdu, data):
    frame = bytearray(rtu.encode_frame(address, pdu))
    bit = data.draw(st.integers(0, len(frame) * 8 - 1))
    frame[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(rtu.CrcError):
        rtu.check_frame(bytes(frame))


@pytest.mark.parametrize(
    ("frame", "req_len", "resp_len"),
    [
        ("01 05 02 00 00 07 8D B0", 8, 8),
        ("01 01 01 05 91 8B", -1, 6),
        ("01 0F 00 00 00 0A 02 FF 03", 11, 8),
        ("01 81 02 C1 91", -1, 5),
    ],
)
def test_frame_lengths_from_function_code(frame, req_len, resp_len):
    data = bytes.fromhex(frame)
    if req_len >= 0:
        assert rtu.request_length(data) == req_len
    assert rtu.response_length(data) == resp_len
    assert rtu.response_length(data[:1]) == 0


def test_wire_time_lower_bound_for_fc05_at_9600_is_24_ms():
    bound = 2 * rtu.frame_time(8, 9600) + 2 * rtu.t35(9600)
    assert round(bound * 1000, 1) == 24.0
    assert rtu.t35(115200) == 0.00175
    assert rtu.char_time(9600, "E") == 11 / 9600


def test_bits_and_registers_parse_what_the_board_sent():
    request = rtu.pdu_read_bits(2, 0, 8)
    assert rtu.parse_bits(request, bytes.fromhex("02 01 05")) == (
        True, False, True, False, False, False, False, False,
    )  # fmt: skip
    request = rtu.pdu_read_registers(3, 1, 2)
    assert rtu.parse_registers(request, bytes.fromhex("03 04 00 01 00 00")) == (1, 0)
    with pytest.raises(rtu.DeviceError):
        rtu.parse_bits(request, bytes.fromhex("02 02 05 00"))


@settings(max_examples=100)
@given(st.integers(0, 0xFFFF), st.integers(0, 255), st.binary(min_size=1, max_size=250))
def test_mbap_round_trip(tid, unit, pdu):
    wire = rtu.encode_mbap(tid, unit, pdu)
    assert rtu.decode_mbap(wire[:-1]) == (0, None)
    used, frame = rtu.decode_mbap(wire + b"\x00")
    assert used == len(wire)
    assert frame == rtu.MbapFrame(tid, unit, pdu)


def test_invalid_values_name_themselves():
    with pytest.raises(ValueError, match="248"):
        rtu.encode_frame(248, b"\x01")
    with pytest.raises(ValueError, match="70000"):
        rtu.pdu_write_coil(70000, 0)


# Write confirmations (Modbus application protocol v1.1b3, sections 6.5, 6.6, 6.11, 6.12):
# (request PDU, answer PDU, confirmed?). FC05/FC06 echo the request; FC15/FC16 answer with
# function, start and quantity.
ECHOES = [
    # spec 6.5 example: write coil 173 (0x00AC) ON
    ("05 00 AC FF 00", "05 00 AC FF 00", True),
    # the board: a write to relay 5 (coil 4) answered for coil 0x0204
    ("05 00 04 FF 00", "05 02 04 FF 00", False),
    # the right coil, the other value: it switched off, not on
    ("05 00 04 FF 00", "05 00 04 00 00", False),
    # Waveshare flash-on of relay 0 for 700 ms is an FC05 too, echoed whole
    ("05 02 00 00 07", "05 02 00 00 07", True),
    ("05 02 00 00 07", "05 02 00 00 08", False),
    # spec 6.6 example: write register 2 = 0x0003; Eletechsup "open relay 1" is FC06 too
    ("06 00 01 00 03", "06 00 01 00 03", True),
    ("06 00 01 01 00", "06 00 02 01 00", False),
    # spec 6.11 example: write 10 coils from 20 (0x0013), 2 data bytes CD 01
    ("0F 00 13 00 0A 02 CD 01", "0F 00 13 00 0A", True),
    ("0F 00 13 00 0A 02 CD 01", "0F 00 13 00 09", False),
    ("0F 00 13 00 0A 02 CD 01", "0F 00 13 00 0A 02 CD 01", False),  # not the FC15 answer
    # spec 6.12 example: write 2 registers from 1
    ("10 00 01 00 02 04 00 0A 01 02", "10 00 01 00 02", True),
    ("10 00 01 00 02 04 00 0A 01 02", "10 00 02 00 02", False),
    # an exception answer confirms nothing (illegal data address)
    ("05 00 04 FF 00", "85 02", False),
    # a short answer confirms nothing
    ("05 00 04 FF 00", "05 00 04", False),
]


@pytest.mark.parametrize(("request_hex", "answer_hex", "confirmed"), ECHOES)
def test_write_confirmations_follow_the_modbus_spec(request_hex, answer_hex, confirmed):
    request, answer = bytes.fromhex(request_hex), bytes.fromhex(answer_hex)
    if confirmed:
        rtu.check_write_echo(request, answer)
    else:
        with pytest.raises(rtu.EchoMismatchError, match="not confirmed"):
            rtu.check_write_echo(request, answer)


def test_reads_are_not_write_confirmations():
    rtu.check_write_echo(bytes.fromhex("01 00 00 00 08"), bytes.fromhex("01 01 00"))


@settings(max_examples=200)
@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(min_size=1, max_size=6))
def test_an_fc05_echo_is_confirmed_only_when_it_is_the_request(coil, value, noise):
    request = rtu.pdu_write_coil(coil, value)
    rtu.check_write_echo(request, request)
    altered = bytes(a ^ b for a, b in zip(request, noise.ljust(len(request), b"\0"), strict=False))
    if altered != request:
        with pytest.raises(rtu.EchoMismatchError):
            rtu.check_write_echo(request, altered)
