"""The values the door state machine (:mod:`edge.core.doorstate`) takes and returns.

Inputs (:class:`Grant`, :class:`ContactOpened`, :class:`Tick`, ...), outputs (relay
commands, :class:`Alarm`, :class:`DoorEvent`), the door's :class:`DoorConfig` and
:class:`DoorState`, and the :class:`Step` that one input produces. All are frozen
dataclasses validated in their constructors; none of them knows the transition rules.
Import them from :mod:`edge.core.doorstate`, which re-exports every public name here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from doorkeep.errors import DoorkeepError

__all__ = [
    "EVENT_TYPES",
    "EXIT_REQUEST_S",
    "GRANT_GRACE_S",
    "MAX_PULSE_MS",
    "PULSE_SLACK_S",
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

    def __add__(self, later: Step) -> Step:
        """This step, then ``later`` (which was computed from this step's state)."""
        return self.then(later.state, later.commands, later.alarms, later.events)
