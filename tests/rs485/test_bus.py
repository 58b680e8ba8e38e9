"""The bus owner over the real serial path: pyserial on a pty, pymodbus answering."""

import asyncio
import logging

import pytest

from doorkeep.errors import DeviceError, DeviceTimeout
from rs485 import bus as bus_mod
from rs485 import rtu
from rs485.bus import Bus, Priority
from rs485.sim import SimulatedBus
from tests.rs485.modbus_peer import ModbusPeer

READ_COILS = rtu.pdu_read_bits(1, 0, 8)
READ_INPUTS = rtu.pdu_read_bits(2, 0, 8)


async def wait_until(predicate, limit_s=3.0):
    """Poll a condition; a generous cap only so a broken build fails instead of hanging."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while not predicate():
        if loop.time() > end:
            return False
        await asyncio.sleep(0.01)
    return True


async def test_flash_on_pulses_the_right_coil_and_the_board_ends_it_by_itself():
    async with (
        SimulatedBus({1: "waveshare-rtu-relay-8", 2: "waveshare-rtu-relay-8"}) as sim,
        Bus("b1", sim.port) as bus,
    ):
        answer = await bus.request(2, bytes.fromhex("05 02 02 00 03"), priority=Priority.COMMAND)
        assert answer == bytes.fromhex("05 02 02 00 03")  # FC05 echoes
        assert sim.board(2).coils == [False, False, True] + [False] * 5
        assert sim.board(1).coils == [False] * 8
        sent = len(sim.board(2).requests)
        assert await wait_until(lambda: not sim.board(2).coils[2])
        assert len(sim.board(2).requests) == sent  # nobody told it to switch off


async def test_inputs_read_back():
    async with SimulatedBus({5: "waveshare-rtu-relay-8d"}) as sim, Bus("b1", sim.port) as bus:
        sim.board(5).set_input(1, value=True)
        sim.board(5).set_input(8, value=True)
        answer = await bus.request(5, READ_INPUTS, priority=Priority.POLL)
        assert rtu.parse_bits(READ_INPUTS, answer) == (True,) + (False,) * 6 + (True,)


async def test_a_command_queued_behind_many_polls_goes_next_on_the_wire():
    async with SimulatedBus({1: "waveshare-rtu-relay-8d"}) as sim, Bus("b1", sim.port) as bus:
        polls = [
            asyncio.create_task(bus.request(1, READ_INPUTS, priority=Priority.POLL))
            for _ in range(8)
        ]
        while len(bus._queue) != 7:  # the owner has taken the first poll onto the wire
            await asyncio.sleep(0)
        command = bytes.fromhex("05 00 03 FF 00")
        await bus.request(1, command, priority=Priority.COMMAND)
        await asyncio.gather(*polls)
        order = sim.board(1).requests
        assert order[1] == command
        assert order.count(READ_INPUTS) == 8


async def test_a_silent_board_times_out_goes_offline_and_comes_back_by_itself(caplog):
    caplog.set_level(logging.INFO, logger="rs485.bus")
    async with (
        SimulatedBus({1: "waveshare-rtu-relay-8", 2: "waveshare-rtu-relay-8"}) as sim,
        Bus("b1", sim.port, timeout_ms=30, retries=1) as bus,
    ):
        edges = []
        bus.on_online_change(1, edges.append)
        await bus.request(1, READ_COILS, priority=Priority.POLL)
        sim.board(1).offline = True
        for _ in range(3):
            with pytest.raises(DeviceTimeout):
                await bus.request(1, READ_COILS, priority=Priority.POLL)
        assert bus.online(1) is False
        # The other board on the line is unaffected.
        await bus.request(2, READ_COILS, priority=Priority.POLL)
        sim.board(1).offline = False
        await bus.request(1, READ_COILS, priority=Priority.POLL)
        assert bus.online(1) is True
        assert edges == [True, False, True]
        stats = bus.stats()[1]
        assert stats.timeouts == 6  # 3 requests x (1 try + 1 retry)
        assert stats.failures == 3
        messages = [r.getMessage() for r in caplog.records if r.name == "rs485.bus"]
        assert sum("stopped answering" in m for m in messages) == 1
        assert sum("answers again" in m for m in messages) == 1


async def test_a_garbled_answer_is_counted_retried_and_never_returned():
    async with SimulatedBus({3: "waveshare-rtu-relay-8d"}) as sim, Bus("b1", sim.port) as bus:
        sim.board(3).set_input(2, value=True)
        sim.board(3).garble_next(1)
        answer = await bus.request(3, READ_INPUTS, priority=Priority.POLL)
        assert rtu.parse_bits(READ_INPUTS, answer)[:3] == (False, True, False)
        stats = bus.stats()[3]
        assert (stats.crc_errors, stats.retries, stats.responses) == (1, 1, 1)
        assert bus.online(3) is True

        sim.board(3).garble_next(3)  # every try garbled: an error, never a value
        with pytest.raises(rtu.CrcError):
            await bus.request(3, READ_INPUTS, priority=Priority.POLL)
        assert bus.stats()[3].crc_errors == 4


async def test_a_refusal_is_a_device_error_and_the_board_stays_online():
    async with SimulatedBus({1: "waveshare-rtu-relay-8"}) as sim, Bus("b1", sim.port) as bus:
        with pytest.raises(rtu.BoardRefusedError) as info:
            await bus.request(1, rtu.pdu_read_bits(2, 0, 8), priority=Priority.POLL)
        assert info.value.code == 2  # no inputs on this board: illegal data address
        assert bus.online(1) is True
        assert sim.board(1).coils == [False] * 8


async def test_scan_finds_exactly_the_simulated_addresses():
    boards = {2: "waveshare-rtu-relay-8", 9: "eletechsup-r4d3b16", 12: "modbus-generic"}
    async with SimulatedBus(boards, baudrate=115200) as sim, Bus("b1", sim.port) as bus:
        assert await bus.scan(range(1, 17), timeout_ms=20) == [2, 9, 12]
        assert set(bus.stats()) == set()  # silent addresses leave nothing behind


async def test_statistics_count_requests_and_latency():
    async with SimulatedBus({1: "waveshare-rtu-relay-8"}) as sim, Bus("b1", sim.port) as bus:
        for _ in range(3):
            await bus.request(1, READ_COILS, priority=Priority.POLL)
        stats = bus.stats()[1]
        assert (stats.requests, stats.responses, stats.timeouts) == (3, 3, 0)
        assert sum(n for _, n in stats.latency_histogram) == 3
        assert stats.last_seen is not None
        assert stats.as_dict()["latency_histogram"][-1][0] == "inf"


async def test_a_bus_not_entered_refuses_requests_and_a_bad_port_says_which():
    bus = Bus("b1", "/dev/does-not-exist")
    with pytest.raises(DeviceError, match="not running"):
        await bus.request(1, READ_COILS, priority=Priority.COMMAND)
    with pytest.raises(DeviceError, match="/dev/does-not-exist"):
        async with bus:
            pass


async def test_even_parity_line_works():
    async with (
        SimulatedBus({1: "waveshare-rtu-relay-16"}, baudrate=19200, parity="E") as sim,
        Bus("b1", sim.port, baudrate=19200, parity="E") as bus,
    ):
        await bus.request(1, rtu.pdu_write_coil(15, 0xFF00), priority=Priority.COMMAND)
        assert sim.board(1).coils[15] is True


async def test_a_tcp_link_retries_with_backoff_and_logs_once_each_way(monkeypatch, caplog):
    monkeypatch.setattr(bus_mod, "RECONNECT_MIN_S", 0.01)
    monkeypatch.setattr(bus_mod, "RECONNECT_MAX_S", 0.02)
    caplog.set_level(logging.INFO, logger="rs485.bus")
    server = await asyncio.start_server(lambda _r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    link = bus_mod._TcpLink("127.0.0.1", port)
    for _ in range(4):  # four refused attempts, each after its backoff: one warning
        with pytest.raises(DeviceError):
            await link.ensure()
        await asyncio.sleep(0.03)
    writers = []
    server = await asyncio.start_server(lambda _r, w: writers.append(w), "127.0.0.1", port)
    try:
        await link.ensure()
        await link.ensure()  # connected: nothing more to say
    finally:
        await link.close()
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
    messages = [r.getMessage() for r in caplog.records if r.name == "rs485.bus"]
    assert [m.split(":")[0] for m in messages] == [
        "cannot connect to 127.0.0.1",
        "connected to 127.0.0.1",
    ]


async def test_a_write_answered_for_another_coil_is_retried_then_refused_not_returned():
    async with (
        ModbusPeer(unit=1) as peer,
        Bus("eth", f"tcp://127.0.0.1:{peer.port}", framer="mbap", retries=2) as bus,
    ):
        peer.proxy.fault = "wrong_echo"
        relay_5_on = rtu.pdu_write_coil(4, 0xFF00)
        with pytest.raises(rtu.EchoMismatchError, match="02 04 ff 00"):
            await bus.request(1, relay_5_on, priority=Priority.COMMAND)
        assert peer.proxy.requests.count(relay_5_on) == 3  # 1 + retries
        stats = bus.stats()[1]
        assert (stats.echo_errors, stats.retries, stats.failures) == (3, 2, 1)
        assert bus.online(1) is True  # it answers; it did not do what it was told
        assert await peer.coils(4) == [False]
        peer.proxy.fault = None
        assert await bus.request(1, relay_5_on, priority=Priority.COMMAND) == relay_5_on
        assert await peer.coils(4) == [True]


async def test_a_refused_write_is_retried_and_the_board_stays_online():
    async with SimulatedBus({1: "waveshare-rtu-relay-8"}) as sim, Bus("b1", sim.port) as bus:
        bad_value = rtu.pdu_write_coil(0, 0x1234)  # the board knows FF00/0000/5500 only
        with pytest.raises(rtu.BoardRefusedError) as info:
            await bus.request(1, bad_value, priority=Priority.COMMAND)
        assert info.value.code == 3  # illegal data value
        assert sim.board(1).requests.count(bad_value) == 3  # 1 + the default 2 retries
        assert bus.online(1) is True
        assert sim.board(1).coils == [False] * 8
