"""The indexed policy snapshot and the decision memory.

``PolicySnapshot`` is an immutable view of one hashed policy document joined with the
site's hardware (doors and readers from site.toml), indexed for the decision engine:
every lookup a decision makes is one dict access. It is rebuilt whole when the policy
changes and swapped in atomically, so a decision always sees one consistent version.

``Memory`` is the small mutable state that decisions consult: temp-key uses, PIN
failures and lockouts per reader, anti-passback positions.

PIN guessing is limited per reader by two counts: the short window (``failures`` wrong
PINs in ``window_s``), which a successful PIN clears so that a resident's typos are
forgiven, and the last hour (``max_per_hour``), which nothing but time clears, so that
neither slow guessing nor a resident entering their own PIN between guesses gets past
it. Consecutive lockouts of a reader form a *streak*: each lock lasts twice the one before
(from ``lock_s`` up to ``max_lock_s``), and the streak ends only after a quiet hour (no
wrong PIN and no lock at that reader for ``QUIET_S``). ``decide`` never changes it;
it returns ``Effect`` values, and ``Memory.apply`` turns them into both the new state
and the rows the store writes in the same transaction as the event, so what a decision
remembered survives a restart exactly when its event does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from doorkeep import policydoc
from edge.core.schedule import Schedule

CREDENTIAL_KINDS = frozenset(policydoc.CREDENTIAL_KINDS)
DOOR_KINDS = frozenset({"door", "amenity", "lift"})
DIRECTIONS = frozenset({"in", "out"})
ALL_FLOORS = "all"
#: The long window of the hourly PIN cap, and how long a reader must stay quiet (no wrong
#: PIN, no lock) before its lock streak ends and lock times start again at ``lock_s``.
HOUR_S = 3600.0
QUIET_S = 3600.0


@dataclass(frozen=True, slots=True)
class DoorSpec:
    """What the decision engine needs to know of a door from site.toml."""

    id: str
    methods: frozenset[str]
    kind: str = "door"
    building: str | None = None
    anti_passback: bool = False
    floors: tuple[str, ...] = ()  # lift doors: the floors its outputs can enable

    def __post_init__(self) -> None:
        if self.kind not in DOOR_KINDS:
            raise ValueError(
                f"door {self.id!r}: kind {self.kind!r} is not one of {sorted(DOOR_KINDS)}"
            )
        unknown = self.methods - CREDENTIAL_KINDS - {"remote", "temp_key"}
        if unknown:
            raise ValueError(f"door {self.id!r}: unknown methods {sorted(unknown)}")


@dataclass(frozen=True, slots=True)
class ReaderSpec:
    """A reader and the door it feeds."""

    id: str
    door: str
    direction: str = "in"

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"reader {self.id!r}: direction {self.direction!r} is not in/out")


@dataclass(frozen=True, slots=True)
class Window:
    """An absolute validity window as POSIX timestamps; ``None`` is unbounded."""

    start: float | None = None
    end: float | None = None

    @property
    def bounded(self) -> bool:
        return self.start is not None or self.end is not None

    def before(self, t: float) -> bool:
        return self.start is not None and t < self.start

    def after(self, t: float) -> bool:
        return self.end is not None and t > self.end


UNBOUNDED = Window()


@dataclass(frozen=True, slots=True)
class Apartment:
    id: str
    building: str
    number: str | None
    lease: Window
    methods: frozenset[str] | None = None  # kinds its residents may use; None: every kind


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    kind: str
    apartment: str | None
    groups: tuple[str, ...]
    floors: Mapping[str, frozenset[str]]
    validity: Window
    active: bool
    has_uhf: bool


@dataclass(frozen=True, slots=True)
class Credential:
    id: str
    person: str
    kind: str
    active: bool
    validity: Window = UNBOUNDED  # valid_from/valid_until: the reference's long-term vehicle


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    schedule: Schedule
    doors: frozenset[str]
    building_default: str | None


@dataclass(frozen=True, slots=True)
class TempKey:
    id: str
    kind: str
    apartment: str | None
    schedule: Schedule
    doors: frozenset[str]
    total_uses: int | None  # uses_per_door x number of doors; None = unlimited
    floors: Mapping[str, frozenset[str]]


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    person: str
    door: str
    window: Window


@dataclass(frozen=True, slots=True)
class Settings:
    pin_mode: str
    lockout_failures: int
    lockout_window_s: float
    lockout_s: float
    duress: bool
    lockout_max_per_hour: int = 20
    lockout_max_lock_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class PolicySnapshot:
    """One policy version, indexed for decisions. Build it with ``build_snapshot``."""

    tz: ZoneInfo
    secret: bytes = field(repr=False)
    settings: Settings
    doors: Mapping[str, DoorSpec]
    readers: Mapping[str, ReaderSpec]
    people: Mapping[str, Person]
    apartments: Mapping[str, Apartment]
    groups: Mapping[str, Group]
    credentials: Mapping[str, tuple[Credential, ...]]  # value_hmac -> credentials
    duress: Mapping[str, tuple[Credential, ...]]  # duress_hmac -> PIN credentials
    temp_keys: Mapping[str, TempKey]  # code_hmac -> temp key
    reservations: Mapping[tuple[str, str], tuple[Reservation, ...]]  # (person, door)
    holidays: frozenset[date]
    hold_open: tuple[tuple[str, Schedule], ...] = ()  # (door, schedule) of the policy
    version: int = 0
    digest: str = ""


def _window(tz: ZoneInfo, start: str | None, end: str | None) -> Window:
    return Window(_timestamp(tz, start), _timestamp(tz, end))


def _timestamp(tz: ZoneInfo, text: str | None) -> float | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.timestamp()


def _floors(raw: Mapping[str, Iterable[str]] | None) -> Mapping[str, frozenset[str]]:
    return {building: frozenset(values) for building, values in (raw or {}).items()}


def build_snapshot(
    doc: Mapping[str, Any],
    *,
    tz: ZoneInfo,
    secret: bytes,
    doors: Iterable[DoorSpec],
    readers: Iterable[ReaderSpec],
    version: int = 0,
    digest: str = "",
) -> PolicySnapshot:
    """Index a *hashed*, validated policy document for the decision engine."""
    settings = policydoc.settings_of(doc)
    lockout = settings["lockout"]
    uhf_holders = {c["person"] for c in doc.get("credentials") or [] if c["kind"] == "uhf_card"}
    people = {
        p["id"]: Person(
            id=p["id"],
            kind=p["kind"],
            apartment=p.get("apartment"),
            groups=tuple(p.get("groups") or ()),
            floors=_floors(p.get("floors")),
            validity=_window(tz, p.get("valid_from"), p.get("valid_until")),
            active=p.get("active", True),
            has_uhf=p["id"] in uhf_holders,
        )
        for p in doc.get("people") or []
    }
    credentials: dict[str, list[Credential]] = {}
    duress: dict[str, list[Credential]] = {}
    for c in doc.get("credentials") or []:
        cred = Credential(
            c["id"],
            c["person"],
            c["kind"],
            c.get("active", True),
            _window(tz, c.get("valid_from"), c.get("valid_until")),
        )
        credentials.setdefault(c["value_hmac"], []).append(cred)
        if "duress_hmac" in c:
            duress.setdefault(c["duress_hmac"], []).append(cred)
    temp_keys = {}
    for t in doc.get("temp_keys") or []:
        key_doors = frozenset(t["doors"])
        per_door = t.get("uses_per_door")
        temp_keys[t["code_hmac"]] = TempKey(
            id=t["id"],
            kind=t["kind"],
            apartment=t.get("apartment"),
            schedule=Schedule.from_dict(t["schedule"], tz),
            doors=key_doors,
            total_uses=None if per_door is None else per_door * len(key_doors),
            floors=_floors(t.get("floors")),
        )
    reservations: dict[tuple[str, str], list[Reservation]] = {}
    for r in doc.get("reservations") or []:
        res = Reservation(r["id"], r["person"], r["door"], _window(tz, r["start"], r["end"]))
        reservations.setdefault((r["person"], r["door"]), []).append(res)
    return PolicySnapshot(
        tz=tz,
        secret=secret,
        settings=Settings(
            pin_mode=settings["pin_mode"],
            lockout_failures=int(lockout["failures"]),
            lockout_window_s=float(lockout["window_s"]),
            lockout_s=float(lockout["lock_s"]),
            duress=bool(settings.get("duress", False)),
            lockout_max_per_hour=int(lockout["max_per_hour"]),
            lockout_max_lock_s=float(lockout["max_lock_s"]),
        ),
        doors={d.id: d for d in doors},
        readers={r.id: r for r in readers},
        people=people,
        apartments={
            a["id"]: Apartment(
                a["id"],
                a["building"],
                a.get("number"),
                _window(tz, a.get("valid_from"), a.get("valid_until")),
                None if a.get("methods") is None else frozenset(a["methods"]),
            )
            for a in doc.get("apartments") or []
        },
        groups={
            g["id"]: Group(
                g["id"],
                Schedule.from_dict(g["schedule"], tz),
                frozenset(g["doors"]),
                g.get("building_default"),
            )
            for g in doc.get("groups") or []
        },
        credentials={k: tuple(v) for k, v in credentials.items()},
        duress={k: tuple(v) for k, v in duress.items()},
        temp_keys=temp_keys,
        reservations={k: tuple(v) for k, v in reservations.items()},
        holidays=frozenset(date.fromisoformat(h["date"]) for h in doc.get("holidays") or []),
        hold_open=tuple(
            (h["door"], Schedule.from_dict(h["schedule"], tz)) for h in doc.get("hold_open") or []
        ),
        version=version,
        digest=digest,
    )


# --- decision memory ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TempKeyUsed:
    temp_key: str


@dataclass(frozen=True, slots=True)
class PinFailed:
    """A wrong PIN: counted in the short window and in the last hour."""

    reader: str
    at: float
    window_s: float


@dataclass(frozen=True, slots=True)
class Streak:
    """Consecutive lockouts of one reader: how many, when the last lock ends, whether this
    episode's ``pin_guessing`` alarm has been raised, and the last wrong PIN seen."""

    lockouts: int
    until: float
    alarmed: bool = False
    last: float = 0.0

    def quiet(self, now: float) -> bool:
        """Over: no lock and no wrong PIN for ``QUIET_S`` up to ``now``."""
        return now - max(self.until, self.last) > QUIET_S

    def row(self) -> list[Any]:
        return [self.lockouts, self.until, self.alarmed, self.last]


NO_STREAK = Streak(0, 0.0)


@dataclass(frozen=True, slots=True)
class ReaderLocked:
    """The reader refuses PINs until ``until``; ``streak`` is the episode after this lock
    (the default, one unalarmed lockout, is what a row written before streaks means)."""

    reader: str
    until: float
    streak: Streak | None = None


@dataclass(frozen=True, slots=True)
class PinFailuresCleared:
    reader: str


@dataclass(frozen=True, slots=True)
class PositionSet:
    person: str
    door: str
    direction: str


Effect = TempKeyUsed | PinFailed | ReaderLocked | PinFailuresCleared | PositionSet


@dataclass(slots=True)
class Memory:
    """What decisions remember. Persisted as rows keyed ``kind:subject``."""

    temp_key_uses: dict[str, int] = field(default_factory=dict)
    pin_failures: dict[str, tuple[float, ...]] = field(default_factory=dict)
    locked_until: dict[str, float] = field(default_factory=dict)
    positions: dict[tuple[str, str], str] = field(default_factory=dict)
    pin_hour: dict[str, tuple[float, ...]] = field(default_factory=dict)
    streaks: dict[str, Streak] = field(default_factory=dict)

    def failures_in_window(self, reader: str, now: float, window_s: float) -> int:
        return sum(1 for t in self.pin_failures.get(reader, ()) if now - t <= window_s)

    def failures_last_hour(self, reader: str, now: float) -> tuple[float, ...]:
        """The times of the wrong PINs at ``reader`` in the hour up to ``now``, oldest first."""
        return tuple(t for t in self.pin_hour.get(reader, ()) if now - t < HOUR_S)

    def streak(self, reader: str, now: float) -> Streak:
        """The reader's lock streak at ``now``; over after a quiet hour."""
        streak = self.streaks.get(reader, NO_STREAK)
        return NO_STREAK if streak.quiet(now) else streak

    def apply(self, effects: Iterable[Effect]) -> dict[str, Any]:
        """Apply ``effects``; return the changed rows (``None`` deletes a row)."""
        rows: dict[str, Any] = {}
        for effect in effects:
            match effect:
                case TempKeyUsed(temp_key):
                    count = self.temp_key_uses.get(temp_key, 0) + 1
                    self.temp_key_uses[temp_key] = count
                    rows[f"tk:{temp_key}"] = count
                case PinFailed(reader, at, window_s):
                    kept = tuple(t for t in self.pin_failures.get(reader, ()) if at - t <= window_s)
                    self.pin_failures[reader] = (*kept, at)
                    rows[f"pinfail:{reader}"] = list(self.pin_failures[reader])
                    self.pin_hour[reader] = (*self.failures_last_hour(reader, at), at)
                    rows[f"pinhour:{reader}"] = list(self.pin_hour[reader])
                    streak = self.streaks.get(reader)
                    if streak is not None and streak.quiet(at):  # a new episode begins
                        del self.streaks[reader]
                        rows[f"pinstreak:{reader}"] = None
                    elif streak is not None:
                        self.streaks[reader] = replace(streak, last=at)
                        rows[f"pinstreak:{reader}"] = self.streaks[reader].row()
                case ReaderLocked(reader, until, streak):
                    self.locked_until[reader] = until
                    self.pin_failures.pop(reader, None)
                    rows[f"lock:{reader}"] = until
                    rows[f"pinfail:{reader}"] = None
                    if streak is not None:
                        self.streaks[reader] = streak
                        rows[f"pinstreak:{reader}"] = streak.row()
                case PinFailuresCleared(reader):
                    self.pin_failures.pop(reader, None)
                    rows[f"pinfail:{reader}"] = None
                case PositionSet(person, door, direction):
                    self.positions[(person, door)] = direction
                    rows[f"apb:{door}:{person}"] = direction
        return rows

    @classmethod
    def from_rows(cls, rows: Mapping[str, Any]) -> Memory:
        """Rebuild memory from the rows the store kept."""
        memory = cls()
        for key, value in rows.items():
            if value is None:
                continue
            kind, _, subject = key.partition(":")
            if kind == "tk":
                memory.temp_key_uses[subject] = int(value)
            elif kind == "pinfail":
                memory.pin_failures[subject] = tuple(float(t) for t in value)
            elif kind == "lock":
                memory.locked_until[subject] = float(value)
            elif kind == "pinhour":
                memory.pin_hour[subject] = tuple(float(t) for t in value)
            elif kind == "pinstreak":
                lockouts, until, alarmed, last = value
                memory.streaks[subject] = Streak(
                    int(lockouts), float(until), bool(alarmed), float(last)
                )
            elif kind == "apb":
                door, _, person = subject.partition(":")
                memory.positions[(person, door)] = str(value)
        return memory
