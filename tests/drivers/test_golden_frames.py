"""Every board type's wire frames, byte for byte, as its manual writes them."""

import pytest

from drivers.catalogue import open_board
from rs485 import rtu
from rs485.bus import Priority


class RecordingBus:
    """A fake of our own Bus interface: records frames, answers like a healthy board."""

    def __init__(self):
        self.frames = []
        self.priorities = []

    def on_online_change(self, address, callback):
        pass

    async def request(self, address, pdu, *, priority):
        self.frames.append(rtu.encode_frame(address, pdu))
        self.priorities.append(priority)
        function = pdu[0]
        count = int.from_bytes(pdu[3:5], "big")
        if function in (1, 2):
            return bytes((function, (count + 7) // 8)) + bytes((count + 7) // 8)
        if function in (3, 4):
            return bytes((function, 2 * count)) + bytes(2 * count)
        return pdu


CASES = [
    # (type, address, options, action, args, frame)
    ("waveshare-rtu-relay-8", 1, {}, "pulse", (1, 700), "01 05 02 00 00 07 8D B0"),
    ("waveshare-rtu-relay-8", 1, {}, "set_relay", (1, True), "01 05 00 00 FF 00 8C 3A"),
    ("waveshare-rtu-relay-8", 1, {}, "set_relay", (1, False), "01 05 00 00 00 00 CD CA"),
    ("waveshare-rtu-relay-8", 1, {}, "set_relay", (8, False), "01 05 00 07 00 00 7C 0B"),
    ("waveshare-rtu-relay-8", 1, {}, "read_relays", (), "01 01 00 00 00 08 3D CC"),
    ("waveshare-rtu-relay-8d", 1, {}, "read_inputs", (), "01 02 00 00 00 08 79 CC"),
    ("waveshare-rtu-relay-16", 1, {}, "read_relays", (), "01 01 00 00 00 10 3D C6"),
    ("waveshare-rtu-relay-32", 1, {}, "read_relays", (), "01 01 00 00 00 20 3D D2"),
    ("waveshare-rtu-relay-32", 1, {}, "pulse", (32, 450), "01 05 02 1F 00 05 3D B7"),
    ("eletechsup-r4d3b16", 1, {}, "set_relay", (1, True), "01 06 00 01 01 00 D9 9A"),
    ("eletechsup-r4d3b16", 1, {}, "set_relay", (1, False), "01 06 00 01 02 00 D9 6A"),
    ("eletechsup-r4d3b16", 1, {}, "read_relays", (), "01 03 00 01 00 04 15 C9"),
    ("eletechsup-r4d3b16-8", 1, {}, "pulse", (2, 2500), "01 06 00 02 06 03 6B AB"),
    ("eletechsup-r4d3b16-16", 2, {}, "pulse", (3, 1000), "02 06 00 03 06 01 BB 99"),
    ("modbus-generic", 3, {}, "set_relay", (4, False), "03 05 00 03 00 00 3C 28"),
    ("modbus-generic", 1, {"coil_base": 4, "relays": 6}, "read_relays", (),
     "01 01 00 04 00 06 FD C9"),
    ("modbus-generic", 1, {"coil_base": 4}, "set_relay", (7, True), "01 05 00 0A FF 00 AC 38"),
    ("modbus-generic", 1, {"inputs": 4, "input_base": 16}, "read_inputs", (),
     "01 02 00 10 00 04 78 0C"),
]  # fmt: skip


@pytest.mark.parametrize(("type_name", "address", "options", "action", "args", "frame"), CASES)
async def test_driver_puts_the_manuals_frame_on_the_wire(
    type_name, address, options, action, args, frame
):
    bus = RecordingBus()
    board = open_board("b", type_name, bus=bus, address=address, **options)
    async with board:
        await getattr(board, action)(*args)
        assert bus.frames[0] == bytes.fromhex(frame)
        expected = Priority.POLL if action.startswith("read") else Priority.COMMAND
        assert bus.priorities[0] == expected


async def test_pulses_round_up_never_down():
    bus = RecordingBus()
    async with open_board("b", "waveshare-rtu-relay-8", bus=bus, address=1) as board:
        await board.pulse(1, 701)  # 8 x 100 ms, not 7
        await board.pulse(1, 1)  # at least one unit
    assert bus.frames[0][4:6] == b"\x00\x08"
    assert bus.frames[1][4:6] == b"\x00\x01"
