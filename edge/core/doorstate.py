"""The door state machine: one door's lock, contact and alarms, as a data table.

Theory of this module
---------------------
A door is in one of five modes (:class:`Mode`): ``locked``; ``unlocked`` (a timed
release from a grant, an exit button or an operator); ``held_open`` (a hold-open
schedule); ``emergency`` (emergency unlock); ``lockdown``. Inputs are frozen event values
(:class:`Grant`, :class:`ContactOpened`, :class:`Tick`, ...; see
:mod:`edge.core.doorvalues`). ``step(state, event, now)`` returns a :class:`Step`: the new
state plus the relay commands, alarms and door events the shell must carry out. It does
no I/O and reads no clock: ``now`` is passed in, in seconds of the monotonic clock
(the shell uses ``time.monotonic``, so a wall-clock step never shortens or stretches a
release window).

Where the door goes is data, as in h11's ``_state.py``: ``TRANSITIONS[mode][input type]``
is the next mode, for every legal pair, even where the answer is "it stays"; an unknown
pair raises :class:`TransitionError`. Four cells depend on what the door remembers (a
release window that a later grant extended, an override waiting behind another one); they
are refined by ``GUARDS``, statechart-style ``[condition] -> mode`` rows checked in order.
After the input, ``AUTOMATIC`` transitions fire on time alone (the release window is
over), so a :class:`Tick` is just "time passed".

What the door *does* is derived from the move, never written per pair. ``step`` runs, in
this order: what the input itself records (:data:`_RECORD`, one small rule per input
type: the contact, the exit request, the remembered overrides, the board); the exit
action of the old mode and the entry action of the new one when the mode changes
(:data:`_EXIT`, :data:`_ENTER`: put the relay where the mode wants it and log why); the
releases the mode carries out (:data:`_RELEASES`); then the time rules (relock, the
held-open pre-alarm and alarm). Which of the rules apply is decided by small per-mode
sets (:data:`_FREE_MODES`, :data:`_RELEASES`), so a rule reads as a sentence about modes.

Rules that are easy to get wrong, and what this machine does:

* Unlocks use the board's own timed pulse (:class:`RelayPulse`), so a door relocks even
  if the daemon dies mid-pulse; ``PulseEnded`` and ``Tick`` only bring the state in line.
* A contact that opens while the door is locked is *forced* unless a release window
  (plus ``GRANT_GRACE_S`` for input polling delay) or an exit request is current.
* ``held_open_s`` counts from the later of the door opening and the end of its release
  window; ``held_open_s = 0`` switches held-open alarms off. No held-open alarm while the
  door is meant to stand open (hold-open schedule, emergency).
* Lockdown: the relay is off and stays off; only an :class:`OperatorUnlock` or a
  :class:`Grant` with ``staff=True`` releases it, for one pulse, and the door stays in
  lockdown (the relay moves, the mode does not). An exit button records the request (so
  leaving by the handle is not "forced") but does not release the lock.
* Emergency: the relay is on until :class:`EmergencyClear`, whatever else arrives.
* Emergency and lockdown: whichever came first holds the door until it is cleared; the
  other is remembered ("pending") and takes over when the first clears. The hold-open
  schedule is remembered the same way, so clearing returns the door to what the schedule
  says.
* ``OperatorLock`` during a hold-open ends it until the schedule next starts one; it does
  not end an emergency (only ``EmergencyClear`` does).
* ``BoardOffline`` raises one ``board_offline`` alarm; ``BoardOnline`` after an outage
  re-issues the command that puts the relay where the mode says it should be.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Final

from edge.core.doorvalues import (
    EVENT_TYPES,
    EXIT_REQUEST_S,
    GRANT_GRACE_S,
    MAX_PULSE_MS,
    PULSE_SLACK_S,
    Alarm,
    AlarmKind,
    BoardOffline,
    BoardOnline,
    Command,
    ContactClosed,
    ContactOpened,
    DoorAction,
    DoorConfig,
    DoorEvent,
    DoorState,
    EmergencyClear,
    EmergencyUnlock,
    Event,
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
)

__all__ = [
    "AUTOMATIC",
    "EVENT_TYPES",
    "EXIT_REQUEST_S",
    "GRANT_GRACE_S",
    "GUARDS",
    "PULSE_SLACK_S",
    "TRANSITIONS",
    "Alarm",
    "AlarmKind",
    "BoardOffline",
    "BoardOnline",
    "Command",
    "ContactClosed",
    "ContactOpened",
    "DoorAction",
    "DoorConfig",
    "DoorEvent",
    "DoorState",
    "EmergencyClear",
    "EmergencyUnlock",
    "Event",
    "ExitButton",
    "Grant",
    "Guard",
    "HoldOpenEnd",
    "HoldOpenStart",
    "LockdownClear",
    "LockdownStart",
    "Mode",
    "OperatorLock",
    "OperatorUnlock",
    "PulseEnded",
    "RelayOff",
    "RelayOn",
    "RelayPulse",
    "Step",
    "Tick",
    "TransitionError",
    "markdown_table",
    "step",
]

_L, _U, _H, _E, _D = Mode.LOCKED, Mode.UNLOCKED, Mode.HELD_OPEN, Mode.EMERGENCY, Mode.LOCKDOWN

# -- where a door goes ----------------------------------------------------------------------

#: The columns of ``_TABLE``.
_MODES: Final = (_L, _U, _H, _E, _D)
# One row per input type, one column per mode: the mode after the input.
_TABLE: Final[Mapping[type[Any], tuple[Mode, Mode, Mode, Mode, Mode]]] = {
    #                locked  unlocked  held_open  emergency  lockdown
    Grant:           (_U,    _U,       _H,        _E,        _D),
    OperatorUnlock:  (_U,    _U,       _H,        _E,        _D),
    OperatorLock:    (_L,    _L,       _L,        _E,        _D),
    PulseEnded:      (_L,    _L,       _H,        _E,        _D),
    ContactOpened:   (_L,    _U,       _H,        _E,        _D),
    ContactClosed:   (_L,    _U,       _H,        _E,        _D),
    ExitButton:      (_U,    _U,       _H,        _E,        _D),
    HoldOpenStart:   (_H,    _H,       _H,        _E,        _D),
    HoldOpenEnd:     (_L,    _U,       _L,        _E,        _D),
    EmergencyUnlock: (_E,    _E,       _E,        _E,        _D),
    EmergencyClear:  (_L,    _U,       _H,        _L,        _D),
    LockdownStart:   (_D,    _D,       _D,        _E,        _D),
    LockdownClear:   (_L,    _U,       _H,        _E,        _L),
    Tick:            (_L,    _U,       _H,        _E,        _D),
    BoardOffline:    (_L,    _U,       _H,        _E,        _D),
    BoardOnline:     (_L,    _U,       _H,        _E,        _D),
}  # fmt: skip

#: ``TRANSITIONS[mode][input type] -> mode``: every legal pair, explicitly.
TRANSITIONS: Final[Mapping[Mode, Mapping[type[Any], Mode]]] = MappingProxyType(
    {
        mode: MappingProxyType({kind: row[i] for kind, row in _TABLE.items()})
        for i, mode in enumerate(_MODES)
    }
)


@dataclass(frozen=True, slots=True)
class Guard:
    """A condition on the door's memory (read before the input), named for the docs."""

    label: str
    holds: Callable[[DoorState, float], bool]


def _window_extended(s: DoorState, now: float) -> bool:
    return s.unlocked_until is not None and s.unlocked_until > now + PULSE_SLACK_S


def _rest_of_window_ms(s: DoorState, now: float) -> float:
    return ((s.unlocked_until or now) - now) * 1000


_EXTENDED = Guard("a later release extended the window", _window_extended)
_OUTAGE_OUTLASTED_WINDOW = Guard(
    "the board was offline and the window is over",
    lambda s, now: not s.board_online and _rest_of_window_ms(s, now) < 1,
)
_EMERGENCY_PENDING = Guard("an emergency is pending", lambda s, _now: s.emergency)
_LOCKDOWN_PENDING = Guard("a lockdown is pending", lambda s, _now: s.lockdown)
_HOLD_OPEN_DUE = Guard("the hold-open schedule is on", lambda s, _now: s.hold_open)
_STAFF_PULSE = Guard(
    "a staff or operator pulse is still running",
    lambda s, now: s.relay_on and (s.unlocked_until or now) > now,
)

#: ``GUARDS[(mode, input type)]``: ``(guard, mode)`` rows that override the table's cell,
#: first match wins. Clearing an override resumes what the door remembers, in priority order.
GUARDS: Final[Mapping[tuple[Mode, type[Any]], tuple[tuple[Guard, Mode], ...]]] = MappingProxyType(
    {
        (_U, PulseEnded): ((_EXTENDED, _U),),
        (_U, BoardOnline): ((_OUTAGE_OUTLASTED_WINDOW, _L),),
        (_E, EmergencyClear): ((_LOCKDOWN_PENDING, _D), (_HOLD_OPEN_DUE, _H)),
        (_D, LockdownClear): (
            (_EMERGENCY_PENDING, _E),
            (_HOLD_OPEN_DUE, _H),
            (_STAFF_PULSE, _U),
        ),
    }
)

_WINDOW_OVER = Guard(
    "the release window is over",
    lambda s, now: s.unlocked_until is not None and now >= s.unlocked_until,
)

#: Transitions on time alone, checked after every input: ``mode -> (guard, mode, why)``.
AUTOMATIC: Final[Mapping[Mode, tuple[Guard, Mode, str]]] = MappingProxyType(
    {_U: (_WINDOW_OVER, _L, "window_ended")}
)


def _target(door: DoorState, kind: type[Any], now: float) -> Mode:
    try:
        target = TRANSITIONS[door.mode][kind]
    except KeyError:
        raise TransitionError(
            f"door in mode {door.mode!s} has no transition for {kind.__name__}"
        ) from None
    for guard, mode in GUARDS.get((door.mode, kind), ()):
        if guard.holds(door, now):
            return mode
    return target


# -- per-mode rules -------------------------------------------------------------------------

#: Modes in which the door is meant to stand open: the relay is held on (not pulsed),
#: openings are neither checked nor timed, and an operator lock does not shorten a window.
_FREE_MODES: Final = frozenset({_H, _E})

#: The release requests each mode carries out, by the detail they log. In locked and
#: unlocked mode a release (re)starts the window; in lockdown it pulses the relay and the
#: door stays in lockdown; held-open and emergency doors are released already.
_ANYONE: Final = frozenset({"grant", "staff", "operator", "exit_button"})
_STAFF: Final = frozenset({"staff", "operator"})
_RELEASES: Final[Mapping[Mode, frozenset[str]]] = MappingProxyType(
    {_L: _ANYONE, _U: _ANYONE, _H: frozenset(), _E: frozenset(), _D: _STAFF}
)

#: Self-transitions that still run the mode's entry action (external, in statechart
#: terms): an operator lock of a locked door switches the relay off again.
_REENTERS: Final = frozenset({(_L, OperatorLock)})

#: Why a door relocks, by the input that moved it to ``locked`` (the ``locked`` event's detail).
_LOCK_REASONS: Final[Mapping[type[Any], str]] = MappingProxyType(
    {
        OperatorLock: "operator",
        PulseEnded: "pulse_ended",
        HoldOpenEnd: "hold_open_end",
        EmergencyClear: "emergency_clear",
        LockdownClear: "lockdown_clear",
        BoardOnline: "board_online",
    }
)


def _lock_reason(old: Mode, kind: type[Any]) -> str:
    # Leaving a hold-open is logged as its end, whether the schedule or an operator ended it.
    return "hold_open_end" if old is _H else _LOCK_REASONS[kind]


# -- what an input records, whatever the move -----------------------------------------------

Recorder = Callable[[DoorState, Any, float, Mode], Step]


def _nothing(s: DoorState, _e: Any, _now: float, _to: Mode) -> Step:
    return Step(s)


def _authorised(s: DoorState, now: float) -> bool:
    in_window = s.unlocked_until is not None and now <= s.unlocked_until + GRANT_GRACE_S
    exit_req = s.exit_request_until is not None and now <= s.exit_request_until
    return in_window or exit_req


def _contact_opened(s: DoorState, _e: ContactOpened, now: float, _to: Mode) -> Step:
    if s.contact_open:
        return Step(s)
    opened = (DoorEvent(DoorAction.OPENED),)
    if s.mode in _FREE_MODES:  # meant to stand open: no timer, no alarm
        return Step(replace(s, contact_open=True, opened_at=now, held_since=None), events=opened)
    # Unlocked: the held-open clock starts when the release window ends.
    since = max(now, s.unlocked_until or now) if s.mode is _U else now
    new = replace(
        s,
        contact_open=True,
        opened_at=now,
        held_since=since,
        prealarm_sent=False,
        held_alarm_raised=False,
    )
    if _authorised(s, now):
        return Step(new, events=opened)
    return Step(
        replace(new, forced=True),
        alarms=(Alarm(AlarmKind.FORCED_OPEN),),
        events=(*opened, DoorEvent(DoorAction.FORCED)),
    )


def _contact_closed(s: DoorState, _e: ContactClosed, _now: float, _to: Mode) -> Step:
    if not s.contact_open:
        return Step(s)
    new = replace(
        s,
        contact_open=False,
        held_since=None,
        prealarm_sent=False,
        held_alarm_raised=False,
        forced=False,
    )
    return Step(new, events=(DoorEvent(DoorAction.CLOSED),))


def _exit_button(s: DoorState, _e: ExitButton, now: float, _to: Mode) -> Step:
    until = max(now + max(EXIT_REQUEST_S, s.config.pulse_ms / 1000), s.exit_request_until or 0.0)
    return Step(replace(s, exit_request_until=until), events=(DoorEvent(DoorAction.EXIT_REQUEST),))


def _operator_lock(s: DoorState, _e: OperatorLock, now: float, to: Mode) -> Step:
    if s.mode not in _FREE_MODES:  # the release window ends now
        s = replace(s, unlocked_until=min(s.unlocked_until or now, now))
    if to is _L:  # a lock that locks ends the hold-open until the schedule starts one again
        s = replace(s, hold_open=False)
    return Step(s)


def _pulse_ended(s: DoorState, _e: PulseEnded, now: float, _to: Mode) -> Step:
    # The relay is off now, unless it is held on or (in a mode that pulses it on purpose) a
    # later release extended the pulse.
    if s.mode in _FREE_MODES or (s.mode is not _L and _window_extended(s, now)):
        return Step(s)
    return Step(replace(s, relay_on=False))


def _pending(action: DoorAction, mode: Mode, to: Mode) -> tuple[DoorEvent, ...]:
    """An override that arrives while the other one holds the door waits for it."""
    return () if to is mode else (DoorEvent(action, "pending"),)


def _emergency_unlock(s: DoorState, _e: EmergencyUnlock, _now: float, to: Mode) -> Step:
    return Step(replace(s, emergency=True), events=_pending(DoorAction.EMERGENCY, _E, to))


def _lockdown_start(s: DoorState, _e: LockdownStart, _now: float, to: Mode) -> Step:
    return Step(replace(s, lockdown=True), events=_pending(DoorAction.LOCKDOWN, _D, to))


def _board_offline(s: DoorState, _e: BoardOffline, _now: float, _to: Mode) -> Step:
    if not s.board_online:
        return Step(s)  # one alarm per outage, not one per poll
    detail = f"fail_mode={s.fail_mode}"
    return Step(
        replace(s, board_online=False),
        alarms=(Alarm(AlarmKind.BOARD_OFFLINE, detail),),
        events=(DoorEvent(DoorAction.BOARD_OFFLINE, detail),),
    )


#: The relay command that holds each mode's relay where it belongs (re-issued after an
#: outage); an unlocked door gets the rest of its window instead.
_HOLD_RELAY: Final[Mapping[Mode, Command]] = MappingProxyType(
    {_L: RelayOff(), _H: RelayOn(), _E: RelayOn(), _D: RelayOff()}
)


def _board_online(s: DoorState, _e: BoardOnline, now: float, _to: Mode) -> Step:
    if s.board_online:
        return Step(s)
    s = replace(s, board_online=True)
    online = (DoorEvent(DoorAction.BOARD_ONLINE),)
    if s.mode is _U:
        rest_ms = _rest_of_window_ms(s, now)
        if rest_ms >= 1:
            return Step(s, (RelayPulse(min(round(rest_ms), MAX_PULSE_MS)),), events=online)
        return Step(s, events=online)  # the window ended during the outage: a guard relocks
    command = _HOLD_RELAY[s.mode]
    if isinstance(command, RelayOff):  # whatever the board did during the outage, it is off
        s = replace(s, relay_on=False)
    return Step(s, (command,), events=online)


#: What each input records about the door before it moves: one rule per input type.
_RECORD: Final[Mapping[type[Any], Recorder]] = MappingProxyType(
    {
        Grant: _nothing,  # releases: see _RELEASES
        OperatorUnlock: _nothing,
        OperatorLock: _operator_lock,
        PulseEnded: _pulse_ended,
        ContactOpened: _contact_opened,
        ContactClosed: _contact_closed,
        ExitButton: _exit_button,
        HoldOpenStart: lambda s, _e, _now, _to: Step(replace(s, hold_open=True)),
        HoldOpenEnd: lambda s, _e, _now, _to: Step(replace(s, hold_open=False)),
        EmergencyUnlock: _emergency_unlock,
        EmergencyClear: lambda s, _e, _now, _to: Step(replace(s, emergency=False)),
        LockdownStart: _lockdown_start,
        LockdownClear: lambda s, _e, _now, _to: Step(replace(s, lockdown=False)),
        Tick: _nothing,
        BoardOffline: _board_offline,
        BoardOnline: _board_online,
    }
)


# -- moving between modes: exit and entry actions -------------------------------------------

#: Logged when a door leaves an override (only its clear input does that).
_EXIT: Final[Mapping[Mode, DoorEvent]] = MappingProxyType(
    {_E: DoorEvent(DoorAction.EMERGENCY, "clear"), _D: DoorEvent(DoorAction.LOCKDOWN, "clear")}
)


def _enter_locked(s: DoorState, why: str, now: float) -> Step:
    """Relay off; the held-open clock starts if the door stands open."""
    held_since = (s.held_since or now) if s.contact_open else None
    new = replace(s, mode=_L, relay_on=False, held_since=held_since)
    return Step(new, (RelayOff(),), events=(DoorEvent(DoorAction.LOCKED, why),))


def _enter_unlocked(s: DoorState, _why: str, _now: float) -> Step:
    """Nothing of its own: the release that comes with it (or a pulse still running) does it."""
    return Step(replace(s, mode=_U))


def _enter_held_open(s: DoorState, _why: str, _now: float) -> Step:
    new = replace(s, mode=_H, relay_on=True, held_since=None)
    return Step(new, (RelayOn(),), events=(DoorEvent(DoorAction.UNLOCKED, "hold_open"),))


def _enter_emergency(s: DoorState, _why: str, _now: float) -> Step:
    new = replace(s, mode=_E, relay_on=True, held_since=None)
    return Step(new, (RelayOn(),), events=(DoorEvent(DoorAction.EMERGENCY, "unlock"),))


def _enter_lockdown(s: DoorState, _why: str, now: float) -> Step:
    new = replace(s, mode=_D, relay_on=False)
    if s.contact_open and s.held_since is None:
        new = replace(new, held_since=now)
    return Step(new, (RelayOff(),), events=(DoorEvent(DoorAction.LOCKDOWN, "start"),))


#: Run when a door enters the mode: put the relay where the mode wants it and log why.
_ENTER: Final[Mapping[Mode, Callable[[DoorState, str, float], Step]]] = MappingProxyType(
    {
        _L: _enter_locked,
        _U: _enter_unlocked,
        _H: _enter_held_open,
        _E: _enter_emergency,
        _D: _enter_lockdown,
    }
)


def _move(s: DoorState, old: Mode, to: Mode, kind: type[Any], now: float) -> Step:
    if to is old and (old, kind) not in _REENTERS:
        return Step(s)
    why = _lock_reason(old, kind) if to is _L else ""
    exit_ = _EXIT.get(old) if to is not old else None
    return Step(s, events=(exit_,) if exit_ else ()) + _ENTER[to](s, why, now)


# -- the relay without a change of mode -----------------------------------------------------

#: The release an input asks for: (pulse ms, the detail it logs).
_RELEASE_OF: Final[Mapping[type[Any], Callable[[Any, DoorConfig], tuple[int, str]]]] = (
    MappingProxyType(
        {
            Grant: lambda e, c: (e.pulse_ms or c.pulse_ms, "staff" if e.staff else "grant"),
            OperatorUnlock: lambda e, _c: (round(e.seconds * 1000), "operator"),
            ExitButton: lambda _e, c: (c.pulse_ms, "exit_button"),
        }
    )
)


def _release(s: DoorState, event: Any, old: Mode, now: float) -> Step:
    """Carry out the release ``event`` asks for, if the door's old mode accepts it."""
    release_of = _RELEASE_OF.get(type(event))
    if release_of is None:
        return Step(s)
    ms, why = release_of(event, s.config)
    if why not in _RELEASES[old]:
        return Step(s)  # refused; for lockdown, the decision engine's refusal was the first lock
    until = max(now + ms / 1000, s.unlocked_until or 0.0)
    held_since = s.held_since
    if s.mode is _U and s.contact_open and held_since is not None:
        held_since = max(held_since, until)  # held open counts from the end of the window
    new = replace(s, unlocked_until=until, relay_on=True, held_since=held_since)
    return Step(new, (RelayPulse(ms),), events=(DoorEvent(DoorAction.UNLOCKED, why),))


#: Modes in which an operator lock switches the relay off but keeps the mode (in lockdown
#: it ends a staff pulse); elsewhere the table sends a lock to ``locked``, or ignores it.
_LOCKS_IN_PLACE: Final = frozenset({_D})


def _lock_in_place(s: DoorState, event: Any, old: Mode) -> Step:
    if old not in _LOCKS_IN_PLACE or not isinstance(event, OperatorLock):
        return Step(s)
    new = replace(s, relay_on=False)
    return Step(new, (RelayOff(),), events=(DoorEvent(DoorAction.LOCKED, "operator"),))


# -- time -----------------------------------------------------------------------------------


def _time_rules(s: DoorState, now: float) -> Step:
    """Run after every input: automatic transitions, then the held-open pre-alarm and alarm."""
    out = Step(s)
    automatic = AUTOMATIC.get(s.mode)
    if automatic is not None and automatic[0].holds(s, now):
        _guard, to, why = automatic
        out = _ENTER[to](s, why, now)
    elif s.mode is _D and s.relay_on and (s.unlocked_until or 0.0) <= now:
        out = Step(replace(s, relay_on=False))  # the board ended its pulse by itself
    s = out.state
    held, since = s.config.held_open_s, s.held_since
    if not s.contact_open or not held or since is None or s.mode in _FREE_MODES:
        return out
    alarms: list[Alarm] = []
    events: list[DoorEvent] = []
    warn_at = since + held - s.config.prealarm_s
    if s.config.prealarm_s and not s.prealarm_sent and now >= warn_at and not s.held_alarm_raised:
        s = replace(s, prealarm_sent=True)
        alarms.append(Alarm(AlarmKind.HELD_OPEN_WARNING, f"{s.config.prealarm_s}s to alarm"))
    if not s.held_alarm_raised and now >= since + held:
        s = replace(s, held_alarm_raised=True, prealarm_sent=True)
        alarms.append(Alarm(AlarmKind.HELD_OPEN, f"open longer than {held}s"))
        events.append(DoorEvent(DoorAction.HELD))
    return out + Step(s, (), tuple(alarms), tuple(events))


def step(door: DoorState, event: Event, now: float) -> Step:
    """Feed one input to the door at time ``now``; see the module docstring for the rules.

    Raises :class:`TransitionError` for a (mode, input) pair the table does not list.
    """
    kind = type(event)
    old = door.mode
    to = _target(door, kind, now)
    out = _RECORD[kind](door, event, now, to)
    out = out + _move(out.state, old, to, kind, now)
    out = out + _release(out.state, event, old, now)
    out = out + _lock_in_place(out.state, event, old)
    return out + _time_rules(out.state, now)


# -- the table, for people ------------------------------------------------------------------


def markdown_table() -> str:
    """``TRANSITIONS`` with its guards and automatic transitions, as in docs/doors.md.

    ``·`` marks a door that stays in its mode (no entry action runs).
    """
    lines = [
        "| input | " + " | ".join(f"`{m}`" for m in _MODES) + " |",
        "|---" * (len(_MODES) + 1) + "|",
    ]
    for kind in EVENT_TYPES:
        cells = []
        for mode in _MODES:
            to = TRANSITIONS[mode][kind]
            rows = [f"`{alt}` if {g.label}" for g, alt in GUARDS.get((mode, kind), ())]
            stays = to is mode and (mode, kind) not in _REENTERS
            if rows:
                cells.append("; ".join([*rows, "else " + ("stays" if stays else f"`{to}`")]))
            else:
                cells.append("·" if stays else f"`{to}`")
        lines.append(f"| `{kind.__name__}` | " + " | ".join(cells) + " |")
    for mode, (guard, to, _why) in AUTOMATIC.items():
        cells = [f"`{to}` if {guard.label}" if m is mode else "" for m in _MODES]
        lines.append("| (time) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
