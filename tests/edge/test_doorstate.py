"""The door state machine, one user story per test, then Hypothesis over every
mode x input pair (in the style of h2's test_state_machines.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.core.doorstate import (
    AUTOMATIC,
    EVENT_TYPES,
    GRANT_GRACE_S,
    GUARDS,
    TRANSITIONS,
    Alarm,
    AlarmKind,
    BoardOffline,
    BoardOnline,
    ContactClosed,
    ContactOpened,
    DoorAction,
    DoorConfig,
    DoorEvent,
    DoorState,
    EmergencyClear,
    EmergencyUnlock,
    ExitButton,
    Grant,
    HoldOpenEnd,
    HoldOpenStart,
    LockdownClear,
    LockdownStart,
    Mode,
    OperatorLock,
    OperatorUnlock,
    PulseEnded,
    RelayOff,
    RelayOn,
    RelayPulse,
    Step,
    Tick,
    TransitionError,
    markdown_table,
    step,
)

T0 = 1_800_000_000.0
CFG = DoorConfig(pulse_ms=3000, held_open_s=60, prealarm_s=10, fail_mode="secure")


class Door:
    """Drives one door through a story, keeping time."""

    def __init__(self, config: DoorConfig = CFG, **state: Any) -> None:
        self.state = DoorState(config=config, **state)
        self.now = T0
        self.log: list[Step] = []

    def __call__(self, event: Any, after: float = 0.0) -> Step:
        self.now += after
        result = step(self.state, event, self.now)
        self.state = result.state
        self.log.append(result)
        return result

    def mode(self) -> Mode:
        # A method, not a property: a type checker must not narrow it across steps.
        return self.state.mode


def actions(s: Step) -> list[DoorAction]:
    return [e.action for e in s.events]


def kinds(s: Step) -> list[AlarmKind]:
    return [a.kind for a in s.alarms]


# -- grants and the contact ------------------------------------------------------------------


def test_grant_pulses_the_relay_with_the_doors_pulse_length() -> None:
    door = Door()
    s = door(Grant())
    assert s.commands == (RelayPulse(3000),)
    assert door.mode() is Mode.UNLOCKED
    assert s.events == (DoorEvent(DoorAction.UNLOCKED, "grant"),)


def test_grant_may_carry_its_own_pulse_length() -> None:
    assert Door()(Grant(pulse_ms=8000)).commands == (RelayPulse(8000),)


def test_opening_after_a_grant_is_logged_but_raises_no_alarm() -> None:
    door = Door()
    door(Grant())
    s = door(ContactOpened(), after=1.0)
    assert actions(s) == [DoorAction.OPENED]
    assert s.alarms == ()
    s = door(ContactClosed(), after=1.0)
    assert actions(s) == [DoorAction.CLOSED]


def test_opening_without_a_grant_is_forced() -> None:
    door = Door()
    s = door(ContactOpened())
    assert kinds(s) == [AlarmKind.FORCED_OPEN]
    assert actions(s) == [DoorAction.OPENED, DoorAction.FORCED]
    assert door.state.as_dict()["alarm"] == "forced"
    s = door(ContactClosed(), after=5)
    assert door.state.as_dict()["alarm"] is None


def test_opening_just_after_the_pulse_ended_is_not_forced() -> None:
    door = Door()
    door(Grant())
    door(Tick(), after=3.0)
    assert door.mode() is Mode.LOCKED
    assert door(ContactOpened(), after=GRANT_GRACE_S - 0.5).alarms == ()


def test_opening_long_after_the_grant_is_forced() -> None:
    door = Door()
    door(Grant())
    door(Tick(), after=3.0)
    assert kinds(door(ContactOpened(), after=30)) == [AlarmKind.FORCED_OPEN]


def test_exit_button_releases_the_lock_and_excuses_the_opening() -> None:
    door = Door()
    s = door(ExitButton())
    assert s.commands == (RelayPulse(3000),)
    assert DoorAction.EXIT_REQUEST in actions(s)
    door(Tick(), after=4)
    assert door.mode() is Mode.LOCKED
    assert door(ContactOpened(), after=2).alarms == ()


def test_the_window_ends_on_a_tick_and_the_relay_is_switched_off() -> None:
    door = Door()
    door(Grant())
    assert door(Tick(), after=2.9).commands == ()
    s = door(Tick(), after=0.2)
    assert door.mode() is Mode.LOCKED
    assert s.commands == (RelayOff(),)
    assert actions(s) == [DoorAction.LOCKED]


def test_pulse_ended_relocks() -> None:
    door = Door()
    door(Grant())
    s = door(PulseEnded(), after=3.0)
    assert door.mode() is Mode.LOCKED
    assert not door.state.relay_on
    assert s.commands == (RelayOff(),)


def test_a_second_grant_extends_the_window_and_an_early_pulse_end_is_ignored() -> None:
    door = Door()
    door(Grant())
    door(Grant(), after=2.0)
    assert door(PulseEnded(), after=1.0).commands == ()
    assert door.mode() is Mode.UNLOCKED
    door(PulseEnded(), after=2.0)
    assert door.mode() is Mode.LOCKED


def test_operator_unlock_and_lock() -> None:
    door = Door()
    s = door(OperatorUnlock(seconds=5))
    assert s.commands == (RelayPulse(5000),)
    assert s.events == (DoorEvent(DoorAction.UNLOCKED, "operator"),)
    s = door(OperatorLock(), after=1)
    assert s.commands == (RelayOff(),)
    assert door.mode() is Mode.LOCKED


# -- held open -------------------------------------------------------------------------------


def test_held_open_warns_then_alarms_once() -> None:
    door = Door()
    door(Grant())
    door(ContactOpened(), after=1)  # opened at T0+1, window ends T0+3
    assert door(Tick(), after=40).alarms == ()
    s = door(Tick(), after=13)  # 50 s after the window ended
    assert kinds(s) == [AlarmKind.HELD_OPEN_WARNING]
    assert door(Tick(), after=1).alarms == ()
    s = door(Tick(), after=9)  # 60 s after the window ended
    assert kinds(s) == [AlarmKind.HELD_OPEN]
    assert actions(s) == [DoorAction.HELD]
    assert door(Tick(), after=100).alarms == ()
    assert door.state.as_dict()["alarm"] == "held"


def test_closing_resets_the_held_open_timer() -> None:
    door = Door()
    door(Grant())
    door(ContactOpened())
    door(Tick(), after=55)
    door(ContactClosed(), after=1)
    door(Grant(), after=100)
    door(ContactOpened())
    assert door(Tick(), after=40).alarms == ()


def test_held_open_counts_from_the_end_of_a_long_operator_unlock() -> None:
    door = Door()
    door(OperatorUnlock(seconds=300))
    door(ContactOpened(), after=1)
    assert door(Tick(), after=299).alarms == ()
    assert kinds(door(Tick(), after=60)) == [AlarmKind.HELD_OPEN_WARNING, AlarmKind.HELD_OPEN]


def test_no_held_open_alarm_when_switched_off() -> None:
    door = Door(DoorConfig(held_open_s=0, prealarm_s=0))
    door(Grant())
    door(ContactOpened())
    assert door(Tick(), after=10_000).alarms == ()


def test_no_prealarm_when_prealarm_is_zero() -> None:
    door = Door(DoorConfig(held_open_s=60, prealarm_s=0))
    door(Grant())
    door(ContactOpened())
    assert kinds(door(Tick(), after=65)) == [AlarmKind.HELD_OPEN]


def test_forced_door_left_open_also_raises_held_open() -> None:
    door = Door()
    door(ContactOpened())
    assert AlarmKind.HELD_OPEN in kinds(door(Tick(), after=61))


# -- hold-open schedule ----------------------------------------------------------------------


def test_hold_open_keeps_the_relay_on_without_alarms() -> None:
    door = Door()
    s = door(HoldOpenStart())
    assert s.commands == (RelayOn(),)
    assert door.mode() is Mode.HELD_OPEN
    door(ContactOpened(), after=1)
    assert door(Tick(), after=3600).alarms == ()
    assert door(PulseEnded()).commands == ()
    s = door(HoldOpenEnd())
    assert s.commands == (RelayOff(),)
    assert door.mode() is Mode.LOCKED


def test_door_left_open_when_hold_open_ends_starts_the_held_timer() -> None:
    door = Door()
    door(HoldOpenStart())
    door(ContactOpened(), after=10)
    door(HoldOpenEnd(), after=1000)
    assert door(Tick(), after=30).alarms == ()
    assert AlarmKind.HELD_OPEN in kinds(door(Tick(), after=31))


def test_operator_lock_ends_a_hold_open_until_the_schedule_starts_again() -> None:
    door = Door()
    door(HoldOpenStart())
    door(OperatorLock())
    assert door.mode() is Mode.LOCKED
    assert not door.state.hold_open
    door(EmergencyUnlock())
    door(EmergencyClear())
    assert door.mode() is Mode.LOCKED


# -- emergency -------------------------------------------------------------------------------


def test_emergency_unlocks_until_cleared() -> None:
    door = Door()
    s = door(EmergencyUnlock())
    assert s.commands == (RelayOn(),)
    assert actions(s) == [DoorAction.EMERGENCY]
    for event in (OperatorLock(), PulseEnded(), Grant(), LockdownStart(), Tick()):
        s = door(event, after=1)
        assert door.mode() is Mode.EMERGENCY
        assert RelayOff() not in s.commands
    door(ContactOpened())
    assert door(Tick(), after=3600).alarms == ()
    s = door(EmergencyClear())
    # A lockdown arrived during the emergency: it takes over now.
    assert door.mode() is Mode.LOCKDOWN
    assert s.commands == (RelayOff(),)


def test_emergency_clear_returns_to_locked() -> None:
    door = Door()
    door(EmergencyUnlock())
    s = door(EmergencyClear(), after=60)
    assert door.mode() is Mode.LOCKED
    assert s.commands == (RelayOff(),)
    assert actions(s) == [DoorAction.EMERGENCY, DoorAction.LOCKED]


def test_emergency_clear_returns_to_the_hold_open_schedule() -> None:
    door = Door()
    door(HoldOpenStart())
    door(EmergencyUnlock())
    s = door(EmergencyClear())
    assert door.mode() is Mode.HELD_OPEN
    assert s.commands == (RelayOn(),)


def test_hold_open_schedule_changes_during_emergency_are_remembered() -> None:
    door = Door()
    door(EmergencyUnlock())
    door(HoldOpenStart())
    door(EmergencyClear())
    assert door.mode() is Mode.HELD_OPEN


# -- lockdown --------------------------------------------------------------------------------


def test_lockdown_refuses_everyone_but_staff_and_operators() -> None:
    door = Door()
    s = door(LockdownStart())
    assert s.commands == (RelayOff(),)
    assert door(Grant()).commands == ()
    assert door(ExitButton()).commands == ()
    assert door(HoldOpenStart()).commands == ()
    assert door(EmergencyUnlock()).commands == ()
    assert door.mode() is Mode.LOCKDOWN


def test_staff_grant_in_lockdown_pulses_once_and_stays_in_lockdown() -> None:
    door = Door()
    door(LockdownStart())
    s = door(Grant(staff=True))
    assert s.commands == (RelayPulse(3000),)
    assert door.mode() is Mode.LOCKDOWN
    assert door(ContactOpened(), after=1).alarms == ()
    door(ContactClosed(), after=1)
    door(Tick(), after=5)
    assert not door.state.relay_on
    assert kinds(door(ContactOpened(), after=10)) == [AlarmKind.FORCED_OPEN]


def test_operator_unlock_in_lockdown() -> None:
    door = Door()
    door(LockdownStart())
    assert door(OperatorUnlock(seconds=2)).commands == (RelayPulse(2000),)
    assert door(OperatorLock()).commands == (RelayOff(),)
    assert door.mode() is Mode.LOCKDOWN


def test_leaving_by_the_handle_in_lockdown_after_exit_button_is_not_forced() -> None:
    door = Door()
    door(LockdownStart())
    door(ExitButton())
    assert door(ContactOpened(), after=2).alarms == ()


def test_lockdown_clear_returns_to_locked_or_the_pending_emergency() -> None:
    door = Door()
    door(LockdownStart())
    s = door(LockdownClear())
    assert door.mode() is Mode.LOCKED
    assert s.commands == (RelayOff(),)
    door(LockdownStart())
    door(EmergencyUnlock())
    s = door(LockdownClear())
    assert door.mode() is Mode.EMERGENCY
    assert s.commands == (RelayOn(),)


# -- the board -------------------------------------------------------------------------------


def test_board_offline_raises_one_alarm_per_outage() -> None:
    door = Door(DoorConfig(fail_mode="safe"))
    s = door(BoardOffline())
    assert s.alarms == (Alarm(AlarmKind.BOARD_OFFLINE, "fail_mode=safe"),)
    assert door(BoardOffline(), after=1).alarms == ()
    assert door.state.as_dict()["board_online"] is False
    assert door.state.as_dict()["fail_mode"] == "safe"


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ([], RelayOff()),
        ([HoldOpenStart()], RelayOn()),
        ([EmergencyUnlock()], RelayOn()),
        ([LockdownStart()], RelayOff()),
        ([OperatorUnlock(seconds=10)], RelayPulse(8000)),
    ],
)
def test_board_back_online_restores_the_relay(setup: list[Any], expected: Any) -> None:
    door = Door()
    for event in setup:
        door(event)
    door(BoardOffline())
    s = door(BoardOnline(), after=2)
    assert s.commands == (expected,)
    assert actions(s)[0] is DoorAction.BOARD_ONLINE


def test_board_back_online_after_the_window_ended_relocks() -> None:
    door = Door()
    door(Grant())
    door(BoardOffline())
    s = door(BoardOnline(), after=10)
    assert door.mode() is Mode.LOCKED
    assert s.commands == (RelayOff(),)


def test_board_online_without_an_outage_does_nothing() -> None:
    assert Door()(BoardOnline()).commands == ()


# -- values and the table --------------------------------------------------------------------


def test_unknown_input_is_an_error_not_a_silent_no_op() -> None:
    with pytest.raises(TransitionError, match="locked"):
        step(DoorState(), object(), T0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [
        lambda: Grant(pulse_ms=0),
        lambda: OperatorUnlock(seconds=0),
        lambda: RelayPulse(ms=-1),
        lambda: DoorConfig(held_open_s=10, prealarm_s=10),
        lambda: DoorConfig(fail_mode="open"),
    ],
)
def test_bad_values_are_refused_at_construction(make: Any) -> None:
    with pytest.raises(ValueError):
        make()


def test_door_config_from_a_site_config_door() -> None:
    class Section:
        pulse_ms, held_open_s, prealarm_s, fail_mode = 5000, 30, 5, "safe"

    assert DoorConfig.of(Section()) == DoorConfig(5000, 30, 5, "safe")


def test_the_table_lists_every_input_for_every_mode() -> None:
    for mode in Mode:
        assert set(TRANSITIONS[mode]) == set(EVENT_TYPES), mode


class Unlisted:
    """An input type the table does not know."""


def _example(kind: type[Any]) -> Any:
    return OperatorUnlock(seconds=5) if kind is OperatorUnlock else kind()


def _door_in(mode: Mode) -> DoorState:
    """A door in ``mode`` the way the machine leaves it there."""
    return DoorState(
        mode=mode,
        relay_on=mode is not Mode.LOCKED and mode is not Mode.LOCKDOWN,
        hold_open=mode is Mode.HELD_OPEN,
        emergency=mode is Mode.EMERGENCY,
        lockdown=mode is Mode.LOCKDOWN,
        unlocked_until=T0 + 3 if mode is Mode.UNLOCKED else None,
    )


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("kind", [*EVENT_TYPES, Unlisted])
def test_every_pair_is_in_the_table_or_raises(mode: Mode, kind: type[Any]) -> None:
    door = _door_in(mode)
    if kind in TRANSITIONS[mode]:
        assert TRANSITIONS[mode][kind] in set(Mode)
        assert isinstance(step(door, _example(kind), T0), Step)
    else:
        with pytest.raises(TransitionError, match=f"{mode}.*{kind.__name__}"):
            step(door, _example(kind), T0)


def test_the_tables_targets_are_modes_and_guards_refine_listed_pairs() -> None:
    assert set(TRANSITIONS) == set(Mode)
    for mode, row in TRANSITIONS.items():
        assert all(isinstance(to, Mode) for to in row.values()), mode
    for (mode, kind), rows in GUARDS.items():
        assert kind in TRANSITIONS[mode]
        assert rows and all(isinstance(to, Mode) and guard.label for guard, to in rows)
    for mode, (guard, to, why) in AUTOMATIC.items():
        assert isinstance(mode, Mode) and isinstance(to, Mode) and guard.label and why


def test_docs_show_the_table_generated_from_the_code() -> None:
    doors_md = (Path(__file__).parents[2] / "docs" / "doors.md").read_text(encoding="utf-8")
    assert markdown_table() in doors_md, "regenerate with edge.core.doorstate.markdown_table()"


# -- Hypothesis over every mode x input ------------------------------------------------------

NOW = st.floats(min_value=T0 - 10_000, max_value=T0 + 10_000)
MAYBE_TIME = st.none() | NOW
EVENTS = st.one_of(
    st.builds(Grant, pulse_ms=st.none() | st.integers(1, 60_000), staff=st.booleans()),
    st.builds(OperatorUnlock, seconds=st.floats(0.001, 600)),
    *(st.builds(t) for t in EVENT_TYPES if t not in {Grant, OperatorUnlock}),
)
CONFIGS = st.builds(
    DoorConfig,
    pulse_ms=st.integers(100, 60_000),
    held_open_s=st.just(0) | st.integers(11, 300),
    prealarm_s=st.integers(0, 10),
    fail_mode=st.sampled_from(["secure", "safe"]),
)
STATES = st.builds(
    DoorState,
    config=CONFIGS,
    mode=st.sampled_from(list(Mode)),
    contact_open=st.booleans(),
    opened_at=MAYBE_TIME,
    held_since=MAYBE_TIME,
    unlocked_until=MAYBE_TIME,
    exit_request_until=MAYBE_TIME,
    prealarm_sent=st.booleans(),
    held_alarm_raised=st.booleans(),
    forced=st.booleans(),
    relay_on=st.booleans(),
    board_online=st.booleans(),
    hold_open=st.booleans(),
    emergency=st.booleans(),
    lockdown=st.booleans(),
).map(
    # Legal states: the mode agrees with the relay and the remembered flags; every other
    # field (timers, contact, board) is left arbitrary.
    lambda s: replace(
        s,
        relay_on=s.relay_on if s.mode is Mode.LOCKDOWN else s.mode is not Mode.LOCKED,
        emergency=s.emergency or s.mode is Mode.EMERGENCY,
        lockdown=s.lockdown or s.mode is Mode.LOCKDOWN,
        hold_open=s.hold_open or s.mode is Mode.HELD_OPEN,
    )
)


def _unlocks(commands: tuple[Any, ...]) -> bool:
    return any(isinstance(c, RelayOn | RelayPulse) for c in commands)


def _may_unlock_in_lockdown(event: Any) -> bool:
    return isinstance(event, OperatorUnlock) or (isinstance(event, Grant) and event.staff)


@settings(max_examples=1500, deadline=None)
@given(state=STATES, event=EVENTS, now=NOW)
def test_every_mode_and_input_steps_without_error_and_keeps_the_invariants(
    state: DoorState, event: Any, now: float
) -> None:
    s = step(state, event, now)
    assert isinstance(s.state.mode, Mode)
    new = s.state
    # Lockdown never releases the lock except for an operator or staff.
    if state.mode is Mode.LOCKDOWN and not isinstance(event, LockdownClear):
        assert new.mode is Mode.LOCKDOWN
        if not _may_unlock_in_lockdown(event):
            assert not _unlocks(s.commands)
    if new.mode is Mode.LOCKDOWN and not _may_unlock_in_lockdown(event):
        assert not _unlocks(s.commands)
    # Emergency keeps the relay on until cleared.
    if state.mode is Mode.EMERGENCY and not isinstance(event, EmergencyClear):
        assert new.mode is Mode.EMERGENCY
        assert new.relay_on
        assert not any(isinstance(c, RelayOff | RelayPulse) for c in s.commands)
    if new.mode is Mode.EMERGENCY:
        assert new.relay_on
    # After PulseEnded in locked mode the relay is off.
    if isinstance(event, PulseEnded) and new.mode is Mode.LOCKED:
        assert not new.relay_on
    if new.mode is Mode.LOCKED and state.mode is not Mode.LOCKED:
        assert RelayOff() in s.commands
    # The same input at the same moment gives the same answer (pure).
    assert step(state, event, now) == s


@settings(max_examples=500, deadline=None)
@given(state=STATES, event=EVENTS, now=NOW)
def test_the_door_goes_where_the_table_says(state: DoorState, event: Any, now: float) -> None:
    pair = (state.mode, type(event))
    goes = {TRANSITIONS[state.mode][type(event)], *(to for _g, to in GUARDS.get(pair, ()))}
    goes |= {AUTOMATIC[m][1] for m in goes if m in AUTOMATIC}
    assert step(state, event, now).state.mode in goes


@st.composite
def stories(draw: st.DrawFn) -> tuple[DoorConfig, list[tuple[float, Any]]]:
    config = draw(CONFIGS)
    moves = draw(st.lists(st.tuples(st.floats(0, 120), EVENTS), min_size=1, max_size=40))
    return config, moves


@settings(max_examples=300, deadline=None)
@given(story=stories())
def test_any_story_from_a_locked_door_stays_consistent(
    story: tuple[DoorConfig, list[tuple[float, Any]]],
) -> None:
    config, moves = story
    door = Door(config)
    forced_alarms = held_alarms = 0
    for dt, event in moves:
        was_open = door.state.contact_open
        s = door(event, after=dt)
        st_ = door.state
        if st_.contact_open != was_open:  # a new opening (or a closing) starts the count again
            forced_alarms = held_alarms = 0
        forced_alarms += kinds(s).count(AlarmKind.FORCED_OPEN)
        held_alarms += kinds(s).count(AlarmKind.HELD_OPEN)
        assert forced_alarms <= 1, "one forced alarm per opening"
        assert held_alarms <= 1, "one held-open alarm per opening"
        if st_.mode is Mode.LOCKED:
            assert not st_.relay_on
        if st_.mode in {Mode.HELD_OPEN, Mode.EMERGENCY, Mode.UNLOCKED}:
            assert st_.relay_on
        assert (st_.mode is Mode.EMERGENCY) <= st_.emergency
        assert (st_.mode is Mode.LOCKDOWN) <= st_.lockdown
        if st_.emergency and not st_.lockdown:
            assert st_.mode is Mode.EMERGENCY
        if st_.lockdown and not st_.emergency:
            assert st_.mode is Mode.LOCKDOWN
        if not st_.contact_open:
            assert not st_.forced
            assert not st_.held_alarm_raised


def test_replace_keeps_states_frozen() -> None:
    s = DoorState()
    with pytest.raises(AttributeError):
        s.mode = Mode.UNLOCKED  # type: ignore[misc]
    assert replace(s, mode=Mode.UNLOCKED).mode is Mode.UNLOCKED
