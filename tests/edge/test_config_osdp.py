"""site.toml rules for OSDP reader lines: the bus speaks OSDP, a reader names it and an
address unique on it, boards stay off it, Secure Channel is the default."""

from __future__ import annotations

from pathlib import Path

from edge.config import load_site_config
from tests.edge.test_config import HARDWARE, door, one_problem, problems_of

LINE = """
[[bus]]
id = "osdp-1"
port = "/dev/ttyUSB1"
protocol = "osdp"
"""


def reader(**keys: str) -> str:
    base = {"id": '"r1"', "door": '"gate"', "type": '"osdp"', "bus": '"osdp-1"', "address": "1"}
    base.update(keys)
    return "[[reader]]\n" + "".join(f"{k} = {v}\n" for k, v in base.items() if v)


def test_an_osdp_reader_on_its_line_loads_with_secure_channel_on(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(HARDWARE + door() + LINE + reader() + reader(id='"r2"', address="126"))
    config = load_site_config(path)
    assert config.bus("osdp-1").protocol == "osdp"
    assert config.bus("b1").protocol == "modbus"
    r1 = config.reader("r1")
    assert (r1.bus, r1.address, r1.secure) == ("osdp-1", 1, True)


def test_the_reader_needs_a_bus_and_an_address(tmp_path: Path) -> None:
    problems = problems_of(HARDWARE + door() + LINE + reader(bus="", address=""), tmp_path)
    assert len(problems) == 2
    assert "'bus': is missing" in problems[0] and "osdp-1" in problems[0]
    assert "'address': is missing" in problems[1]


def test_the_bus_must_be_an_osdp_bus(tmp_path: Path) -> None:
    p = one_problem(HARDWARE + door() + LINE + reader(bus='"b1"'), tmp_path)
    assert "'b1' is not an OSDP bus" in p and "osdp-1" in p
    p = one_problem(HARDWARE + door() + LINE + reader(bus='"nope"'), tmp_path)
    assert "'nope' is not any [[bus]] id" in p


def test_addresses_are_0_to_126_and_unique_per_bus(tmp_path: Path) -> None:
    p = one_problem(HARDWARE + door() + LINE + reader(address="127"), tmp_path)
    assert "must be between 0 and 126" in p
    p = one_problem(HARDWARE + door() + LINE + reader() + reader(id='"r2"'), tmp_path)
    assert "[[reader]] \"r2\" key 'address'" in p and "already used by" in p


def test_one_protocol_per_port_boards_stay_off_an_osdp_line(tmp_path: Path) -> None:
    board = '[[board]]\nid = "x"\ntype = "waveshare-rtu-relay-8"\nbus = "osdp-1"\naddress = 2\n'
    p = one_problem(HARDWARE + door() + LINE + board, tmp_path)
    assert "OSDP reader line" in p
    same_port = LINE.replace('"osdp-1"', '"osdp-2"')
    p = one_problem(HARDWARE + door() + LINE + same_port, tmp_path)
    assert "already used by" in p
    p = one_problem(HARDWARE + door() + LINE.replace("/dev/ttyUSB1", "sim"), tmp_path)
    assert "needs a serial device" in p
    p = one_problem(HARDWARE + door() + LINE.replace('"osdp"', '"rs232"'), tmp_path)
    assert "'protocol'" in p and "modbus, osdp" in p


def test_only_osdp_readers_take_an_address(tmp_path: Path) -> None:
    p = one_problem(HARDWARE + door() + LINE + reader(type='"sim"', bus=""), tmp_path)
    assert 'only type = "osdp" readers have an OSDP address' in p
