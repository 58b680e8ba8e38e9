"""Drivers against real peers: the pty simulator, pymodbus TCP servers, a memory GPIO chip."""

import asyncio

import pytest

from doorkeep.errors import ConfigError, DeviceTimeout
from drivers.catalogue import BOARD_TYPES, list_board_types, open_board
from drivers.gpio import MemoryGpioChip
from rs485.bus import Bus
from rs485.sim import SimulatedBus, SimulatedTcpServer, free_port


async def wait_until(predicate, limit_s=4.0):
    """Poll a condition; the cap only turns a broken build into a failure, not a hang."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while not predicate():
        if loop.time() > end:
            return False
        await asyncio.sleep(0.01)
    return True


async def test_waveshare_pulse_relocks_by_the_boards_own_timer_and_inputs_read_back():
    boards = {1: "waveshare-rtu-relay-8d", 4: "waveshare-rtu-relay-8d"}
    async with SimulatedBus(boards) as sim, Bus("rs485-1", sim.port) as bus:
        board = open_board("relays-a", "waveshare-rtu-relay-8d", bus=bus, address=4)
        async with board:
            await board.pulse(3, 300)
            assert await board.read_relays() == (False, False, True) + (False,) * 5
            assert sim.board(1).coils == [False] * 8
            sent = len(sim.board(4).requests)
            assert await wait_until(lambda: not sim.board(4).coils[2])
            assert len(sim.board(4).requests) == sent  # the board switched itself off
            sim.board(4).set_input(2, value=True)
            assert await board.read_inputs() == (False, True) + (False,) * 6


async def test_eletechsup_delay_command_ends_the_pulse_on_the_board():
    async with (
        SimulatedBus({7: "eletechsup-r4d3b16"}, baudrate=115200) as sim,
        Bus("rs485-1", sim.port, baudrate=115200) as bus,
        open_board("el", "eletechsup-r4d3b16", bus=bus, address=7) as board,
    ):
        await board.set_relay(4, on=True)
        assert await board.read_relays() == (False, False, False, True)
        await board.pulse(1, 900)  # whole seconds on this board: 1 s
        assert sim.board(7).coils[0] is True
        assert await wait_until(lambda: not sim.board(7).coils[0])
        assert await board.read_relays() == (False, False, False, True)


async def test_generic_board_pulse_is_timed_by_the_driver():
    async with (
        SimulatedBus({2: "modbus-generic"}, baudrate=115200) as sim,
        Bus("rs485-1", sim.port, baudrate=115200) as bus,
        open_board("g", "modbus-generic", bus=bus, address=2, inputs=8) as board,
    ):
        await board.pulse(2, 50)
        assert sim.board(2).coils[1] is True
        assert await wait_until(lambda: not sim.board(2).coils[1])
        assert sim.board(2).requests[-1] == bytes.fromhex("05 00 01 00 00")


async def test_board_goes_offline_with_an_event_and_recovers_by_itself():
    async with (
        SimulatedBus({1: "waveshare-rtu-relay-8"}, baudrate=115200) as sim,
        Bus("rs485-1", sim.port, baudrate=115200, timeout_ms=20, retries=1) as bus,
    ):
        board = open_board("relays-a", "waveshare-rtu-relay-8", bus=bus, address=1)
        edges = []
        board.on_online_change(edges.append)
        async with board:
            await board.read_relays()
            sim.board(1).offline = True
            with pytest.raises(DeviceTimeout):
                await board.pulse(1, 500)
            assert board.online is False
            with pytest.raises(DeviceTimeout):
                await board.read_relays()
            sim.board(1).offline = False
            await board.read_relays()
            assert board.online is True
            assert edges == [False, True]


async def test_modbus_tcp_board_against_a_loopback_server():
    async with SimulatedTcpServer({1: "modbus-tcp-relay-8"}, framing="mbap") as server:
        board = open_board("eth", "modbus-tcp-relay-8", host=server.host, port=server.port)
        async with board:
            await board.pulse(5, 200)
            assert server.board(1).coils[4] is True
            server.board(1).set_input(8, value=True)
            assert (await board.read_inputs())[7] is True
            assert await wait_until(lambda: not server.board(1).coils[4])


async def test_rtu_over_tcp_board_retries_a_garbled_answer():
    async with SimulatedTcpServer({1: "waveshare-eth-relay-8"}, framing="rtu") as server:
        board = open_board("poe", "waveshare-eth-relay-8", host=server.host, port=server.port)
        async with board:
            await board.set_relay(2, on=True)
            server.board(1).garble_next(1)
            assert await board.read_relays() == (False, True) + (False,) * 6
            assert board.bus.stats()[1].crc_errors == 1


async def test_an_unreachable_ethernet_board_is_offline_not_fatal():
    board = open_board("eth", "modbus-tcp-relay-8", host="127.0.0.1", port=free_port(), retries=0)
    async with board:
        with pytest.raises(DeviceTimeout):
            await board.read_relays()
        assert board.online is False


async def test_gpio_board_on_a_memory_chip():
    chip = MemoryGpioChip()
    board = open_board(
        "pi", "gpio", chip=chip, relay_lines=[17, 27], input_lines=[22], active_low=True
    )
    async with board:
        assert chip.lines[17] is False  # claimed inactive ... then driven to "off"
        await board.set_relay(1, on=False)
        assert chip.lines[17] is True  # active low: off is a high line
        await board.pulse(2, 30)
        assert chip.lines[27] is False
        assert await wait_until(lambda: chip.lines[27] is True)
        chip.set_input(22, active=False)
        assert await board.read_inputs() == (True,)
    assert chip.closed


def test_catalogue_lists_every_type_with_its_shape():
    names = {row["name"] for row in list_board_types()}
    assert {
        "waveshare-rtu-relay-8", "waveshare-rtu-relay-8d", "waveshare-rtu-relay-16",
        "waveshare-rtu-relay-32", "eletechsup-r4d3b16", "eletechsup-r4d3b16-8",
        "eletechsup-r4d3b16-16", "modbus-generic", "modbus-tcp-relay-8",
        "waveshare-eth-relay-8", "gpio",
    } <= names  # fmt: skip
    assert BOARD_TYPES["waveshare-rtu-relay-8d"].inputs == 8
    assert BOARD_TYPES["waveshare-eth-relay-8"].transport == "rtu-tcp"
    assert BOARD_TYPES["modbus-tcp-relay-8"].transport == "tcp"


def test_configuration_mistakes_say_what_to_change():
    with pytest.raises(ConfigError, match="known types"):
        open_board("x", "no-such-board")
    with pytest.raises(ConfigError, match="needs `bus` and `address`"):
        open_board("x", "waveshare-rtu-relay-8")
    with pytest.raises(ConfigError, match="needs `host`"):
        open_board("x", "modbus-tcp-relay-8")
    with pytest.raises(ConfigError, match="unknown option"):
        open_board("x", "gpio", chip=MemoryGpioChip(), relay_lines=[1], colour="red")
    with pytest.raises(ConfigError, match="used twice"):
        open_board("x", "gpio", chip=MemoryGpioChip(), relay_lines=[1], input_lines=[1])


async def test_channels_outside_the_board_are_refused():
    async with (
        SimulatedBus({1: "waveshare-rtu-relay-8"}, wire_delays=False) as sim,
        Bus("b", sim.port) as bus,
    ):
        board = open_board("a", "waveshare-rtu-relay-8", bus=bus, address=1)
        with pytest.raises(ValueError, match="relay 9"):
            await board.pulse(9, 100)
        assert sim.board(1).requests == []
