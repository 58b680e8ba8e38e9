"""The door state machine: one door's lock, contact and alarms, as a data table.

Theory of this module
---------------------
A door is in one of five modes (:class:`Mode`): ``locked``; ``unlocked`` (a timed
release from a grant, an exit button or an operator); ``held_open`` (a hold-open
schedule); ``emergency`` (emergency unlock); ``lockdown``. Inputs are frozen event values
(:class:`Grant`, :class:`ContactOpened`, :class:`Tick`, ...). ``step(state, event, now)``
looks the pair up in ``TRANSITIONS[mode][type(event)]`` and returns a :class:`Step`: the
new state plus the relay commands, alarms and door events the shell must carry out. It
does no I/O and reads no clock: ``now`` is a POSIX timestamp passed in.

Every legal (mode, input) pair is in the table, even where the answer is "nothing
happens", so an unknown pair raises :class:`TransitionError` instead of silently doing
nothing. After the handler, the time-driven rules run (relock when the release window has
passed, the held-open pre-alarm and alarm), so a :class:`Tick` is just "time passed".

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
  lockdown. An exit button records the request (so leaving by the handle is not
  "forced") but does not release the lock.
* Emergency: the relay is on until :class:`EmergencyClear`, whatever else arrives.
* Emergency and lockdown: whichever came first holds the door until it is cleared; the
  other is remembered and takes over when the first clears. The hold-open schedule is
  remembered the same way, so clearing returns the door to what the schedule says.
* ``OperatorLock`` during a hold-open ends it until the schedule next starts one; it does
  not end an emergency (only ``EmergencyClear`` does).
* ``BoardOffline`` raises one ``board_offline`` alarm; ``BoardOnline`` after an outage
  re-issues the command that puts the relay where the mode says it should be.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from doorkeep.errors import DoorkeepError

__all__ = [
    "EVENT_TYPES",
    "EXIT_REQUEST_S",
    "GRANT_GRACE_S",
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
    "step",
]

#: After a release window ends, a contact opening this much later is still not "forced":
#: inputs are polled, so the open is seen a little after it happened.
GRANT_GRACE_S: Final = 1.5
#: An exit button press excuses a contact opening for this long (at least).
EXIT_REQUEST_S: Final = 10.0
#: ``PulseEnded`` relocks only when the release window is over to within this much; an
#: earlier one belongs to a pulse that a later grant has since extended.
PULSE_SLACK_S: Final = 0.25
#: Longest single board pulse (ms); the catalogue boards time up to minutes.
MAX_PULSE_MS: Final = 3_600_000


class TransitionError(DoorkeepError):
    """An input arrived that the table has no entry for in the current mode."""


class Mode(StrEnum):
    """What the door is doing (the ``state`` the REST API and MQTT report)."""

    LOCKED = "locked"
    UNLOCKED = "unlocked"
    HELD_OPEN = "held_open"
    EMERGENCY = "emergency"
    LOCKDOWN = "lockdown"


class AlarmKind(StrEnum):
    FORCED_OPEN = "forced_open"
    HELD_OPEN_WARNING = "held_open_warning"
    HELD_OPEN = "held_open"
    BOARD_OFFLINE = "board_offline"


class DoorAction(StrEnum):
    """Door log actions (``type = "door"`` events)."""

    OPENED = "opened"
    CLOSED = "closed"
    FORCED = "forced"
    HELD = "held"
    UNLOCKED = "unlocked"
    LOCKED = "locked"
    EMERGENCY = "emergency"
    LOCKDOWN = "lockdown"
    EXIT_REQUEST = "exit_request"
    BOARD_OFFLINE = "board_offline"
    BOARD_ONLINE = "board_online"


# -- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Grant:
    """The decision engine granted access: release for ``pulse_ms`` (None = door's own)."""

    pulse_ms: int | None = None
    staff: bool = False

    def __post_init__(self) -> None:
        if self.pulse_ms is not None and not 1 <= self.pulse_ms <= MAX_PULSE_MS:
            raise ValueError(f"Grant.pulse_ms must be 1..{MAX_PULSE_MS}, got {self.pulse_ms!r}")


@dataclass(frozen=True, slots=True)
class OperatorUnlock:
    """An operator released the door for ``seconds`` (REST, MQTT, CLI)."""

    seconds: float

    def __post_init__(self) -> None:
        if not 0 < self.seconds <= MAX_PULSE_MS / 1000:
            raise ValueError(
                f"OperatorUnlock.seconds must be > 0 and <= {MAX_PULSE_MS // 1000}, "
                f"got {self.seconds!r}"
            )


@dataclass(frozen=True, slots=True)
class OperatorLock:
    """An operator locked the door now (ends a release or a hold-open)."""


@dataclass(frozen=True, slots=True)
class PulseEnded:
    """The board's timed pulse is over (the shell's timer says so)."""


@dataclass(frozen=True, slots=True)
class ContactOpened:
    """The door contact input reports open."""


@dataclass(frozen=True, slots=True)
class ContactClosed:
    """The door contact input reports closed."""


@dataclass(frozen=True, slots=True)
class ExitButton:
    """The request-to-exit input fired."""


@dataclass(frozen=True, slots=True)
class HoldOpenStart:
    """A hold-open schedule began."""


@dataclass(frozen=True, slots=True)
class HoldOpenEnd:
    """A hold-open schedule ended."""


@dataclass(frozen=True, slots=True)
class EmergencyUnlock:
    """Emergency unlock (by hand or by the emergency input)."""


@dataclass(frozen=True, slots=True)
class EmergencyClear:
    """Emergency is over."""


@dataclass(frozen=True, slots=True)
class LockdownStart:
    """Lockdown: refuse everyone but staff and operators."""


@dataclass(frozen=True, slots=True)
class LockdownClear:
    """Lockdown is over."""


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed (the shell sends one every second or so)."""


@dataclass(frozen=True, slots=True)
class BoardOffline:
    """The door's relay board stopped answering."""


@dataclass(frozen=True, slots=True)
class BoardOnline:
    """The door's relay board answers again."""


Event = (
    Grant
    | OperatorUnlock
    | OperatorLock
    | PulseEnded
    | ContactOpened
    | ContactClosed
    | ExitButton
    | HoldOpenStart
    | HoldOpenEnd
    | EmergencyUnlock
    | EmergencyClear
    | LockdownStart
    | LockdownClear
    | Tick
    | BoardOffline
    | BoardOnline
)
#: Every input type, in the order the table lists them.
EVENT_TYPES: Final[tuple[type[Any], ...]] = (
    Grant,
    OperatorUnlock,
    OperatorLock,
    PulseEnded,
    ContactOpened,
    ContactClosed,
    ExitButton,
    HoldOpenStart,
    HoldOpenEnd,
    EmergencyUnlock,
    EmergencyClear,
    LockdownStart,
    LockdownClear,
    Tick,
    BoardOffline,
    BoardOnline,
)


# -- outputs --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelayPulse:
    """Energise the lock relay for ``ms`` milliseconds, timed by the board itself."""

    ms: int

    def __post_init__(self) -> None:
        if not 1 <= self.ms <= MAX_PULSE_MS:
            raise ValueError(f"RelayPulse.ms must be 1..{MAX_PULSE_MS}, got {self.ms!r}")


@dataclass(frozen=True, slots=True)
class RelayOn:
    """Energise the lock relay until told otherwise (door released)."""


@dataclass(frozen=True, slots=True)
class RelayOff:
    """De-energise the lock relay (door locked)."""


Command = RelayPulse | RelayOn | RelayOff


@dataclass(frozen=True, slots=True)
class Alarm:
    """An alarm record to raise (the store writes it; the UI resolves it)."""

    kind: AlarmKind
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DoorEvent:
    """A door log entry (``type = "door"``, ``action`` from :class:`DoorAction`)."""

    action: DoorAction
    detail: str = ""


# -- state ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DoorConfig:
    """The door's timings and fail mode, from its ``[[door]]`` table."""

    pulse_ms: int = 3000
    held_open_s: int = 60
    prealarm_s: int = 10
    fail_mode: str = "secure"

    def __post_init__(self) -> None:
        if not 1 <= self.pulse_ms <= MAX_PULSE_MS:
            raise ValueError(f"pulse_ms must be 1..{MAX_PULSE_MS}, got {self.pulse_ms!r}")
        if self.held_open_s < 0 or self.prealarm_s < 0:
            raise ValueError(
                f"held_open_s and prealarm_s must be >= 0, got {self.held_open_s}, "
                f"{self.prealarm_s}"
            )
        if self.held_open_s and self.prealarm_s >= self.held_open_s:
            raise ValueError(
                f"prealarm_s ({self.prealarm_s}) must be shorter than held_open_s "
                f"({self.held_open_s})"
            )
        if self.fail_mode not in {"secure", "safe"}:
            raise ValueError(f"fail_mode must be secure or safe, got {self.fail_mode!r}")

    @classmethod
    def of(cls, door: Any) -> DoorConfig:
        """From anything with the ``[[door]]`` attributes (``edge.config.DoorSection``)."""
        return cls(door.pulse_ms, door.held_open_s, door.prealarm_s, door.fail_mode)


@dataclass(frozen=True, slots=True)
class DoorState:
    """Everything the machine knows about one door. Times are POSIX timestamps."""

    config: DoorConfig = field(default_factory=DoorConfig)
    mode: Mode = Mode.LOCKED
    contact_open: bool = False
    opened_at: float | None = None
    held_since: float | None = None  # held-open timer start; None = not timing
    unlocked_until: float | None = None  # end of the latest release window
    exit_request_until: float | None = None
    prealarm_sent: bool = False
    held_alarm_raised: bool = False
    forced: bool = False  # the current opening was forced
    relay_on: bool = False  # what the relay was last told: on (or pulsing) / off
    board_online: bool = True
    hold_open: bool = False  # the hold-open schedule is in force
    emergency: bool = False  # emergency unlock is in force (maybe waiting on lockdown)
    lockdown: bool = False  # lockdown is in force (maybe waiting on emergency)

    @property
    def fail_mode(self) -> str:
        return self.config.fail_mode

    def as_dict(self) -> dict[str, Any]:
        """What ``GET /doors/{id}`` and the MQTT state topic report."""
        return {
            "state": self.mode.value,
            "contact": "open" if self.contact_open else "closed",
            "board_online": self.board_online,
            "fail_mode": self.fail_mode,
            "held_open_s": self.config.held_open_s,
            "relay_on": self.relay_on,
            "alarm": _ALARM_SHOWN.get((self.forced, self.held_alarm_raised)),
        }


# (forced, held) -> the alarm a door's state shows; forced wins over held.
_ALARM_SHOWN: Final = {(True, False): "forced", (True, True): "forced", (False, True): "held"}


@dataclass(frozen=True, slots=True)
class Step:
    """The result of one input: the new state and what the shell must do."""

    state: DoorState
    commands: tuple[Command, ...] = ()
    alarms: tuple[Alarm, ...] = ()
    events: tuple[DoorEvent, ...] = ()

    def then(
        self,
        state: DoorState,
        commands: tuple[Command, ...] = (),
        alarms: tuple[Alarm, ...] = (),
        events: tuple[DoorEvent, ...] = (),
    ) -> Step:
        return Step(state, self.commands + commands, self.alarms + alarms, self.events + events)


# -- handlers -------------------------------------------------------------------------------

Handler = Callable[[DoorState, Any, float], Step]


def _nothing(s: DoorState, _e: Any, _now: float) -> Step:
    return Step(s)


def _release(s: DoorState, now: float, ms: int, why: str) -> Step:
    """A timed release in locked/unlocked mode (grant, operator, exit button)."""
    until = max(now + ms / 1000, s.unlocked_until or 0.0)
    held_since = s.held_since
    if s.contact_open and held_since is not None:
        held_since = max(held_since, until)
    new = replace(s, mode=Mode.UNLOCKED, unlocked_until=until, relay_on=True, held_since=held_since)
    return Step(new, (RelayPulse(ms),), (), (DoorEvent(DoorAction.UNLOCKED, why),))


def _grant(s: DoorState, e: Grant, now: float) -> Step:
    return _release(s, now, e.pulse_ms or s.config.pulse_ms, "staff" if e.staff else "grant")


def _operator_unlock(s: DoorState, e: OperatorUnlock, now: float) -> Step:
    return _release(s, now, round(e.seconds * 1000), "operator")


def _exit_button(s: DoorState, _e: ExitButton, now: float) -> Step:
    step = _release(s, now, s.config.pulse_ms, "exit_button")
    new = replace(step.state, exit_request_until=_exit_until(s, now))
    return Step(new, step.commands, (), (DoorEvent(DoorAction.EXIT_REQUEST), *step.events))


def _exit_until(s: DoorState, now: float) -> float:
    return max(now + max(EXIT_REQUEST_S, s.config.pulse_ms / 1000), s.exit_request_until or 0.0)


def _exit_request_only(s: DoorState, _e: ExitButton, now: float) -> Step:
    """Lockdown/held-open/emergency: note the request, leave the relay alone."""
    new = replace(s, exit_request_until=_exit_until(s, now))
    return Step(new, (), (), (DoorEvent(DoorAction.EXIT_REQUEST),))


def _relock(s: DoorState, now: float, why: str) -> Step:
    """To locked mode with the relay off; the held-open timer starts if the door is open."""
    held_since = (s.held_since or now) if s.contact_open else None
    new = replace(s, mode=Mode.LOCKED, relay_on=False, held_since=held_since)
    return Step(new, (RelayOff(),), (), (DoorEvent(DoorAction.LOCKED, why),))


def _operator_lock(s: DoorState, _e: OperatorLock, now: float) -> Step:
    s = replace(s, unlocked_until=min(s.unlocked_until or now, now), hold_open=False)
    return _relock(s, now, "operator")


def _pulse_ended(s: DoorState, _e: PulseEnded, now: float) -> Step:
    if s.unlocked_until is not None and s.unlocked_until > now + PULSE_SLACK_S:
        return Step(s)  # a later release extended the window; its own end will come
    return _relock(s, now, "pulse_ended")


def _pulse_ended_locked(s: DoorState, _e: PulseEnded, _now: float) -> Step:
    return Step(replace(s, relay_on=False))


def _pulse_ended_lockdown(s: DoorState, _e: PulseEnded, now: float) -> Step:
    if s.unlocked_until is not None and s.unlocked_until > now + PULSE_SLACK_S:
        return Step(s)
    return Step(replace(s, relay_on=False))


def _authorised(s: DoorState, now: float) -> bool:
    in_window = s.unlocked_until is not None and now <= s.unlocked_until + GRANT_GRACE_S
    exit_req = s.exit_request_until is not None and now <= s.exit_request_until
    return in_window or exit_req


def _opened_checked(s: DoorState, _e: ContactOpened, now: float) -> Step:
    """Locked, unlocked or lockdown: an opening is either authorised or forced."""
    if s.contact_open:
        return Step(s)
    since = max(now, s.unlocked_until or now) if s.mode is Mode.UNLOCKED else now
    new = replace(
        s,
        contact_open=True,
        opened_at=now,
        held_since=since,
        prealarm_sent=False,
        held_alarm_raised=False,
    )
    if _authorised(s, now):
        return Step(new, (), (), (DoorEvent(DoorAction.OPENED),))
    new = replace(new, forced=True)
    return Step(
        new,
        (),
        (Alarm(AlarmKind.FORCED_OPEN),),
        (DoorEvent(DoorAction.OPENED), DoorEvent(DoorAction.FORCED)),
    )


def _opened_free(s: DoorState, _e: ContactOpened, now: float) -> Step:
    """Held-open or emergency: the door is meant to stand open; no timer, no alarm."""
    if s.contact_open:
        return Step(s)
    new = replace(s, contact_open=True, opened_at=now, held_since=None)
    return Step(new, (), (), (DoorEvent(DoorAction.OPENED),))


def _closed(s: DoorState, _e: ContactClosed, _now: float) -> Step:
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
    return Step(new, (), (), (DoorEvent(DoorAction.CLOSED),))


def _hold_start(s: DoorState, _e: HoldOpenStart, _now: float) -> Step:
    new = replace(s, mode=Mode.HELD_OPEN, hold_open=True, relay_on=True, held_since=None)
    return Step(new, (RelayOn(),), (), (DoorEvent(DoorAction.UNLOCKED, "hold_open"),))


def _hold_start_flag(s: DoorState, _e: HoldOpenStart, _now: float) -> Step:
    return Step(replace(s, hold_open=True))


def _hold_end_flag(s: DoorState, _e: HoldOpenEnd, _now: float) -> Step:
    return Step(replace(s, hold_open=False))


def _hold_end(s: DoorState, _e: HoldOpenEnd, now: float) -> Step:
    return _relock(replace(s, hold_open=False), now, "hold_open_end")


def _emergency(s: DoorState, _e: EmergencyUnlock, _now: float) -> Step:
    new = replace(s, mode=Mode.EMERGENCY, emergency=True, relay_on=True, held_since=None)
    return Step(new, (RelayOn(),), (), (DoorEvent(DoorAction.EMERGENCY, "unlock"),))


def _emergency_flag(s: DoorState, _e: EmergencyUnlock, _now: float) -> Step:
    return Step(replace(s, emergency=True), (), (), (DoorEvent(DoorAction.EMERGENCY, "pending"),))


def _emergency_clear_flag(s: DoorState, _e: EmergencyClear, _now: float) -> Step:
    return Step(replace(s, emergency=False))


def _lockdown(s: DoorState, _e: LockdownStart, now: float) -> Step:
    new = replace(s, mode=Mode.LOCKDOWN, lockdown=True, relay_on=False)
    if s.contact_open and s.held_since is None:
        new = replace(new, held_since=now)
    return Step(new, (RelayOff(),), (), (DoorEvent(DoorAction.LOCKDOWN, "start"),))


def _lockdown_flag(s: DoorState, _e: LockdownStart, _now: float) -> Step:
    return Step(replace(s, lockdown=True), (), (), (DoorEvent(DoorAction.LOCKDOWN, "pending"),))


def _lockdown_clear_flag(s: DoorState, _e: LockdownClear, _now: float) -> Step:
    return Step(replace(s, lockdown=False))


def _settle(s: DoorState, now: float, why: str) -> Step:
    """After an override ends: to whatever the remembered flags say, in priority order."""
    if s.emergency:
        return _emergency(s, EmergencyUnlock(), now)
    if s.lockdown:
        return _lockdown(s, LockdownStart(), now)
    if s.hold_open:
        new = replace(s, mode=Mode.HELD_OPEN, relay_on=True, held_since=None)
        return Step(new, (RelayOn(),), (), (DoorEvent(DoorAction.UNLOCKED, "hold_open"),))
    if s.mode is Mode.LOCKDOWN and s.relay_on and (s.unlocked_until or now) > now:
        return Step(replace(s, mode=Mode.UNLOCKED))  # a staff pulse is still running
    return _relock(s, now, why)


def _emergency_clear(s: DoorState, _e: EmergencyClear, now: float) -> Step:
    step = _settle(replace(s, emergency=False), now, "emergency_clear")
    return Step(
        step.state,
        step.commands,
        step.alarms,
        (DoorEvent(DoorAction.EMERGENCY, "clear"), *step.events),
    )


def _lockdown_clear(s: DoorState, _e: LockdownClear, now: float) -> Step:
    step = _settle(replace(s, lockdown=False), now, "lockdown_clear")
    return Step(
        step.state,
        step.commands,
        step.alarms,
        (DoorEvent(DoorAction.LOCKDOWN, "clear"), *step.events),
    )


def _lockdown_grant(s: DoorState, e: Grant, now: float) -> Step:
    if not e.staff:
        return Step(s)  # the decision engine refuses these; this is the second lock
    return _lockdown_pulse(s, now, e.pulse_ms or s.config.pulse_ms, "staff")


def _lockdown_operator(s: DoorState, e: OperatorUnlock, now: float) -> Step:
    return _lockdown_pulse(s, now, round(e.seconds * 1000), "operator")


def _lockdown_pulse(s: DoorState, now: float, ms: int, why: str) -> Step:
    """One release during lockdown; the mode stays lockdown."""
    until = max(now + ms / 1000, s.unlocked_until or 0.0)
    new = replace(s, unlocked_until=until, relay_on=True)
    return Step(new, (RelayPulse(ms),), (), (DoorEvent(DoorAction.UNLOCKED, why),))


def _lockdown_lock(s: DoorState, _e: OperatorLock, now: float) -> Step:
    new = replace(s, unlocked_until=min(s.unlocked_until or now, now), relay_on=False)
    return Step(new, (RelayOff(),), (), (DoorEvent(DoorAction.LOCKED, "operator"),))


def _board_offline(s: DoorState, _e: BoardOffline, _now: float) -> Step:
    if not s.board_online:
        return Step(s)  # one alarm per outage, not one per poll
    detail = f"fail_mode={s.fail_mode}"
    return Step(
        replace(s, board_online=False),
        (),
        (Alarm(AlarmKind.BOARD_OFFLINE, detail),),
        (DoorEvent(DoorAction.BOARD_OFFLINE, detail),),
    )


def _board_online(s: DoorState, _e: BoardOnline, now: float) -> Step:
    if s.board_online:
        return Step(s)
    s = replace(s, board_online=True)
    online = (DoorEvent(DoorAction.BOARD_ONLINE),)
    if s.mode in {Mode.HELD_OPEN, Mode.EMERGENCY}:
        return Step(s, (RelayOn(),), (), online)
    remaining = (s.unlocked_until or now) - now
    if s.mode is Mode.UNLOCKED and remaining * 1000 >= 1:
        return Step(s, (RelayPulse(min(round(remaining * 1000), MAX_PULSE_MS)),), (), online)
    if s.mode is Mode.UNLOCKED:
        return Step(s, (), (), online).then(*_parts(_relock(s, now, "board_online")))
    # Locked or lockdown: whatever the board did during the outage, it is off now.
    return Step(replace(s, relay_on=False), (RelayOff(),), (), online)


def _parts(
    step: Step,
) -> tuple[DoorState, tuple[Command, ...], tuple[Alarm, ...], tuple[DoorEvent, ...]]:
    return step.state, step.commands, step.alarms, step.events


# -- the table ------------------------------------------------------------------------------

_M = Mode
_COMMON: Final[dict[type[Any], Handler]] = {
    Tick: _nothing,
    BoardOffline: _board_offline,
    BoardOnline: _board_online,
    ContactClosed: _closed,
}

#: ``TRANSITIONS[mode][input type] -> handler``: every legal pair, explicitly.
TRANSITIONS: Final[Mapping[Mode, Mapping[type[Any], Handler]]] = MappingProxyType(
    {
        _M.LOCKED: MappingProxyType(
            {
                **_COMMON,
                Grant: _grant,
                OperatorUnlock: _operator_unlock,
                OperatorLock: _operator_lock,
                PulseEnded: _pulse_ended_locked,
                ContactOpened: _opened_checked,
                ExitButton: _exit_button,
                HoldOpenStart: _hold_start,
                HoldOpenEnd: _hold_end_flag,
                EmergencyUnlock: _emergency,
                EmergencyClear: _emergency_clear_flag,
                LockdownStart: _lockdown,
                LockdownClear: _lockdown_clear_flag,
            }
        ),
        _M.UNLOCKED: MappingProxyType(
            {
                **_COMMON,
                Grant: _grant,
                OperatorUnlock: _operator_unlock,
                OperatorLock: _operator_lock,
                PulseEnded: _pulse_ended,
                ContactOpened: _opened_checked,
                ExitButton: _exit_button,
                HoldOpenStart: _hold_start,
                HoldOpenEnd: _hold_end_flag,
                EmergencyUnlock: _emergency,
                EmergencyClear: _emergency_clear_flag,
                LockdownStart: _lockdown,
                LockdownClear: _lockdown_clear_flag,
            }
        ),
        _M.HELD_OPEN: MappingProxyType(
            {
                **_COMMON,
                Grant: _nothing,  # already released
                OperatorUnlock: _nothing,
                OperatorLock: _hold_end,
                PulseEnded: _nothing,  # the relay stays on for the hold-open
                ContactOpened: _opened_free,
                ExitButton: _exit_request_only,
                HoldOpenStart: _hold_start_flag,
                HoldOpenEnd: _hold_end,
                EmergencyUnlock: _emergency,
                EmergencyClear: _emergency_clear_flag,
                LockdownStart: _lockdown,
                LockdownClear: _lockdown_clear_flag,
            }
        ),
        _M.EMERGENCY: MappingProxyType(
            {
                **_COMMON,
                Grant: _nothing,
                OperatorUnlock: _nothing,
                OperatorLock: _nothing,  # only EmergencyClear ends an emergency
                PulseEnded: _nothing,
                ContactOpened: _opened_free,
                ExitButton: _exit_request_only,
                HoldOpenStart: _hold_start_flag,
                HoldOpenEnd: _hold_end_flag,
                EmergencyUnlock: _nothing,
                EmergencyClear: _emergency_clear,
                LockdownStart: _lockdown_flag,  # remembered; takes over when cleared
                LockdownClear: _lockdown_clear_flag,
            }
        ),
        _M.LOCKDOWN: MappingProxyType(
            {
                **_COMMON,
                Grant: _lockdown_grant,
                OperatorUnlock: _lockdown_operator,
                OperatorLock: _lockdown_lock,
                PulseEnded: _pulse_ended_lockdown,
                ContactOpened: _opened_checked,
                ExitButton: _exit_request_only,
                HoldOpenStart: _hold_start_flag,
                HoldOpenEnd: _hold_end_flag,
                EmergencyUnlock: _emergency_flag,  # remembered; takes over when cleared
                EmergencyClear: _emergency_clear_flag,
                LockdownStart: _nothing,
                LockdownClear: _lockdown_clear,
            }
        ),
    }
)


def step(door: DoorState, event: Event, now: float) -> Step:
    """Feed one input to the door at time ``now``; see the module docstring for the rules.

    Raises :class:`TransitionError` for a (mode, input) pair the table does not list.
    """
    try:
        handler = TRANSITIONS[door.mode][type(event)]
    except KeyError:
        raise TransitionError(
            f"door in mode {door.mode!s} has no transition for {type(event).__name__}"
        ) from None
    result = handler(door, event, now)
    return result.then(*_parts(_timers(result.state, now)))


#: Modes in which the door is meant to stand open: no held-open timing.
_FREE_MODES: Final = frozenset({Mode.HELD_OPEN, Mode.EMERGENCY})


def _timers(s: DoorState, now: float) -> Step:
    """The time-driven rules, run after every input: relock, pre-alarm, held-open alarm."""
    out = Step(s)
    if s.mode is Mode.UNLOCKED and s.unlocked_until is not None and now >= s.unlocked_until:
        out = _relock(s, now, "window_ended")
        s = out.state
    elif s.mode is Mode.LOCKDOWN and s.relay_on and (s.unlocked_until or 0.0) <= now:
        s = replace(s, relay_on=False)  # the board ended its pulse by itself
        out = Step(s, out.commands, out.alarms, out.events)
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
    return Step(s, out.commands, out.alarms + tuple(alarms), out.events + tuple(events))
