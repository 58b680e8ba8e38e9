"""The decision engine: may this presentation open this door, now?

``decide(policy, presentation, now, memory, state)`` is a pure function. It reads the
indexed policy snapshot and the decision memory, and returns a ``Decision`` carrying the
outcome, the one deny reason from the closed ``Reason`` list, and the ``effects`` the
caller applies to memory (and persists with the event). It never raises on any input:
a malformed value is an unknown credential, an unknown reader a denial.

The order of checks is the order a person at the door would want explained: first who
you are (credential, person, lease), then whether this door takes that kind of
credential, then whether you may be here now. Each check is one function returning a
reason or None, so the order is a table at the bottom of the module.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from doorkeep import cards
from edge.core.model import (
    ALL_FLOORS,
    CREDENTIAL_KINDS,
    HOUR_S,
    Credential,
    DoorSpec,
    Effect,
    Memory,
    Person,
    PinFailed,
    PinFailuresCleared,
    PolicySnapshot,
    PositionSet,
    ReaderLocked,
    ReaderSpec,
    Streak,
    TempKey,
    TempKeyUsed,
)
from edge.core.schedule import Instant


class Reason(StrEnum):
    """Why a presentation was refused. Closed: every denial carries one of these."""

    UNKNOWN_READER = "unknown_reader"
    UNKNOWN_CREDENTIAL = "unknown_credential"
    CREDENTIAL_DISABLED = "credential_disabled"
    PERSON_DISABLED = "person_disabled"
    OUTSIDE_VALIDITY = "outside_validity"
    LEASE_NOT_STARTED = "lease_not_started"
    LEASE_ENDED = "lease_ended"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    # the resident's apartment does not enable this credential kind (apartment "methods")
    METHOD_DISABLED_FOR_APARTMENT = "method_disabled_for_apartment"
    UHF_CARD_REQUIRED = "uhf_card_required"
    NO_ACCESS = "no_access"
    OUTSIDE_SCHEDULE = "outside_schedule"
    NOT_WITHIN_RESERVATION = "not_within_reservation"
    NO_FLOORS = "no_floors"
    TEMP_KEY_NOT_HERE = "temp_key_not_for_this_door"
    TEMP_KEY_EXPIRED = "temp_key_expired"
    TEMP_KEY_USED_UP = "temp_key_used_up"
    LOCKED_OUT = "locked_out"
    ANTI_PASSBACK = "anti_passback"
    LOCKDOWN = "lockdown"
    CLOCK_UNTRUSTED = "clock_untrusted"
    CREDENTIAL_OUTSIDE_VALIDITY = "credential_outside_validity"
    PARKING_FULL = "parking_full"  # the entry reader's car park is full (when_full = refuse)
    # Not decided by the engine: the site refuses before deciding when it can neither
    # write nor hold another event (docs/storage.md), so nothing opens unrecorded.
    STORAGE_UNAVAILABLE = "storage_unavailable"


#: What a reader may present: every credential kind of the policy document, listed once in
#: ``doorkeep.policydoc.CREDENTIAL_KINDS`` (temp keys are PINs or QR codes, both among them).
PRESENTATION_KINDS: frozenset[str] = CREDENTIAL_KINDS


@dataclass(frozen=True, slots=True)
class Presentation:
    """One credential shown at one reader. ``value`` is plaintext and never stored."""

    reader: str
    kind: str
    value: str = field(repr=False)

    def __post_init__(self) -> None:
        if self.kind not in PRESENTATION_KINDS:
            raise ValueError(
                f"kind {self.kind!r} is not one of {', '.join(sorted(PRESENTATION_KINDS))}"
            )
        if not isinstance(self.value, str) or not self.value or len(self.value) > 256:
            raise ValueError("value must be a non-empty string of at most 256 characters")
        if not isinstance(self.reader, str) or not self.reader:
            raise ValueError("reader must be a reader id")


@dataclass(frozen=True, slots=True)
class SiteState:
    """Site-wide conditions a decision depends on (set by operators and the clock)."""

    lockdown: bool = False
    clock_ok: bool = True
    # entry readers of car parks that are full and refuse (edge/site/parking.py)
    parking_full: frozenset[str] = frozenset()


NORMAL = SiteState()


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one presentation. No plaintext credential value is kept."""

    granted: bool
    reason: Reason | None
    reader: str
    door: str | None
    credential_kind: str
    person: str | None = None
    apartment: str | None = None
    credential: str | None = None
    temp_key: str | None = None
    staff: bool = False
    duress: bool = False
    floors: tuple[str, ...] = ()
    effects: tuple[Effect, ...] = ()
    pin_guessing: Guessing | None = None  # this wrong PIN opens a pin_guessing episode


@dataclass(frozen=True, slots=True)
class Guessing:
    """What the ``pin_guessing`` alarm says: the reader's wrong PINs in the last hour, the
    lockouts of this episode so far, and until when the reader is locked (POSIX time)."""

    wrong_pins_last_hour: int
    lockouts: int
    locked_until: float


@dataclass(frozen=True, slots=True)
class _Ctx:
    """Everything one decision looks at, computed once."""

    policy: PolicySnapshot
    p: Presentation
    at: Instant
    memory: Memory
    state: SiteState
    reader: ReaderSpec
    door: DoorSpec


def _hmac(policy: PolicySnapshot, kind: str, value: str) -> str | None:
    try:
        norm = cards.normalise(kind, value)
    except ValueError:
        return None
    space = "pin" if kind == "pin" else kind
    return hmac.new(policy.secret, f"{space}:{norm}".encode(), hashlib.sha256).hexdigest()


def decide(
    policy: PolicySnapshot,
    presentation: Presentation,
    now: datetime,
    memory: Memory,
    state: SiteState = NORMAL,
) -> Decision:
    """Decide one presentation. Pure: the caller applies ``Decision.effects``."""
    p = presentation
    reader = policy.readers.get(p.reader)
    door = policy.doors.get(reader.door) if reader else None
    if reader is None or door is None:
        return Decision(False, Reason.UNKNOWN_READER, p.reader, None, p.kind)
    ctx = _Ctx(policy, p, Instant.of(now, policy.tz), memory, state, reader, door)

    if p.kind == "pin" and memory.locked_until.get(reader.id, 0.0) > ctx.at.utc:
        return _deny(ctx, Reason.LOCKED_OUT)

    value, apartment_number = p.value, None
    if p.kind == "pin" and policy.settings.pin_mode == "apt_pin" and "#" in value:
        apartment_number, _, value = value.rpartition("#")
    digest = _hmac(policy, p.kind, value)
    if digest is None:
        return _unknown(ctx)

    creds = policy.credentials.get(digest, ())
    if apartment_number is not None:
        creds = tuple(c for c in creds if _apartment_number(policy, c) == apartment_number)
    elif p.kind == "pin" and policy.settings.pin_mode == "apt_pin":
        creds = ()  # in APT+PIN mode a bare PIN opens nothing (temp keys aside)
    if creds:
        return _person_decision(ctx, creds[0], duress=False)
    temp_key = policy.temp_keys.get(digest)
    if temp_key is not None and temp_key.kind == p.kind:
        return _temp_key_decision(ctx, temp_key)
    if p.kind == "pin" and policy.settings.duress:
        forced = policy.duress.get(digest, ())
        if apartment_number is not None:
            forced = tuple(c for c in forced if _apartment_number(policy, c) == apartment_number)
        if forced:
            return _person_decision(ctx, forced[0], duress=True)
    return _unknown(ctx)


def _apartment_number(policy: PolicySnapshot, cred: Credential) -> str | None:
    person = policy.people.get(cred.person)
    apartment = policy.apartments.get(person.apartment) if person and person.apartment else None
    return apartment.number if apartment else None


def _deny(ctx: _Ctx, reason: Reason, **kw: object) -> Decision:
    return Decision(False, reason, ctx.reader.id, ctx.door.id, ctx.p.kind, **kw)  # type: ignore[arg-type]


def _unknown(ctx: _Ctx) -> Decision:
    """An unknown credential; at a PIN pad it counts towards the reader's lockout."""
    if ctx.p.kind != "pin":
        return _deny(ctx, Reason.UNKNOWN_CREDENTIAL)
    s = ctx.policy.settings
    now, reader = ctx.at.utc, ctx.reader.id
    effects: tuple[Effect, ...] = (PinFailed(reader, now, s.lockout_window_s),)
    short = ctx.memory.failures_in_window(reader, now, s.lockout_window_s) + 1
    hour = (*ctx.memory.failures_last_hour(reader, now), now)
    over_hour = len(hour) >= s.lockout_max_per_hour
    if short < s.lockout_failures and not over_hour:
        return _deny(ctx, Reason.UNKNOWN_CREDENTIAL, effects=effects)
    streak = ctx.memory.streak(reader, now)
    lockouts = streak.lockouts + 1
    # each lockout of an episode lasts twice the one before, up to max_lock_s ...
    lock_s = min(s.lockout_s * 2.0 ** min(lockouts - 1, 32), max(s.lockout_max_lock_s, s.lockout_s))
    until = now + lock_s
    if over_hour:  # ... and at least until the hour holds fewer than max_per_hour again
        until = max(until, hour[len(hour) - s.lockout_max_per_hour] + HOUR_S)
    alarm = not streak.alarmed and (over_hour or lockouts >= 2)
    new_streak = Streak(lockouts, until, streak.alarmed or alarm, last=now)
    effects = (*effects, ReaderLocked(reader, until, new_streak))
    guessing = Guessing(len(hour), lockouts, until) if alarm else None
    return _deny(ctx, Reason.UNKNOWN_CREDENTIAL, effects=effects, pin_guessing=guessing)


def _success_effects(ctx: _Ctx) -> tuple[Effect, ...]:
    if ctx.p.kind == "pin" and ctx.memory.pin_failures.get(ctx.reader.id):
        return (PinFailuresCleared(ctx.reader.id),)
    return ()


# --- a person's credential ----------------------------------------------------------

_PersonCheck = Callable[[_Ctx, Person, Credential], Reason | None]


def _check_credential(ctx: _Ctx, person: Person, cred: Credential) -> Reason | None:
    del ctx, person
    return None if cred.active else Reason.CREDENTIAL_DISABLED


def _check_person(ctx: _Ctx, person: Person, cred: Credential) -> Reason | None:
    del ctx, cred
    return None if person.active else Reason.PERSON_DISABLED


def _check_lockdown(ctx: _Ctx, person: Person, cred: Credential) -> Reason | None:
    del cred
    return Reason.LOCKDOWN if ctx.state.lockdown and person.kind != "staff" else None


def _check_clock(ctx: _Ctx, person: Person, cred: Credential) -> Reason | None:
    """No time-limited grant while the clock is known to be wrong."""
    if ctx.state.clock_ok:
        return None
    apartment = ctx.policy.apartments.get(person.apartment or "")
    limited = (
        person.validity.bounded
        or cred.validity.bounded
        or (apartment is not None and apartment.lease.bounded)
    )
    return Reason.CLOCK_UNTRUSTED if limited else None


def _check_validity(ctx: _Ctx, person: Person, cred: Credential) -> Reason | None:
    del cred
    t = ctx.at.utc
    return (
        Reason.OUTSIDE_VALIDITY if person.validity.before(t) or person.validity.after(t) else None
    )


def _check_credential_validity(ctx: _Ctx, person: Person, cred: Credential) -> Reason | None:
    """A credential's own window (a plate or UHF card of a vehicle that is not long-term)."""
    del person
    t = ctx.at.utc
    outside = cred.validity.before(t) or cred.validity.after(t)
    return Reason.CREDENTIAL_OUTSIDE_VALIDITY if outside else None


def _check_parking(ctx: _Ctx, person: Person, cred: Credential) -> Reason | None:
    """Last: a full car park refuses only a vehicle that would otherwise have come in."""
    del person, cred
    return Reason.PARKING_FULL if ctx.reader.id in ctx.state.parking_full else None


def _check_lease(ctx: _Ctx, person: Person, cred: Credential) -> Reason | None:
    del cred
    apartment = ctx.policy.apartments.get(person.apartment or "")
    if apartment is None:
        return None
    if apartment.lease.before(ctx.at.utc):
        return Reason.LEASE_NOT_STARTED
    return Reason.LEASE_ENDED if apartment.lease.after(ctx.at.utc) else None


def _check_method(ctx: _Ctx, person: Person, cred: Credential) -> Reason | None:
    del cred
    if ctx.p.kind not in ctx.door.methods:
        return Reason.METHOD_NOT_ALLOWED
    apartment = ctx.policy.apartments.get(person.apartment or "")
    methods = apartment.methods if apartment is not None else None
    if methods is not None and ctx.p.kind not in methods:
        return Reason.METHOD_DISABLED_FOR_APARTMENT
    return None


def _check_plate(ctx: _Ctx, person: Person, cred: Credential) -> Reason | None:
    """Where a person has both plate and UHF card, only the UHF card opens."""
    del ctx
    return Reason.UHF_CARD_REQUIRED if cred.kind == "license_plate" and person.has_uhf else None


def _check_access(ctx: _Ctx, person: Person, cred: Credential) -> Reason | None:
    del cred
    door = ctx.door
    if door.kind == "lift":
        return None if _floors(door, person.floors) else Reason.NO_FLOORS
    holds_door = False
    for group_id in person.groups:
        group = ctx.policy.groups.get(group_id)
        if group is None or door.id not in group.doors:
            continue
        holds_door = True
        if group.schedule.is_time_limited() and not ctx.state.clock_ok:
            continue
        if group.schedule.is_open(ctx.at, ctx.policy.holidays):
            return None
    if door.kind == "amenity":
        reservations = ctx.policy.reservations.get((person.id, door.id), ())
        if reservations and not ctx.state.clock_ok:
            return Reason.CLOCK_UNTRUSTED
        t = ctx.at.utc
        if any(not r.window.before(t) and not r.window.after(t) for r in reservations):
            return None
        return Reason.NOT_WITHIN_RESERVATION
    if holds_door:
        return Reason.CLOCK_UNTRUSTED if not ctx.state.clock_ok else Reason.OUTSIDE_SCHEDULE
    return Reason.NO_ACCESS


def _check_passback(ctx: _Ctx, person: Person, cred: Credential) -> Reason | None:
    del cred
    if not ctx.door.anti_passback:
        return None
    last = ctx.memory.positions.get((person.id, ctx.door.id))
    return Reason.ANTI_PASSBACK if last == ctx.reader.direction else None


PERSON_CHECKS: tuple[_PersonCheck, ...] = (
    _check_credential,
    _check_person,
    _check_lockdown,
    _check_clock,
    _check_validity,
    _check_credential_validity,
    _check_lease,
    _check_method,
    _check_plate,
    _check_access,
    _check_passback,
    _check_parking,
)


def _floors(door: DoorSpec, allowed: Mapping[str, frozenset[str]]) -> tuple[str, ...]:
    floors = allowed.get(door.building or "", frozenset())
    if ALL_FLOORS in floors:
        return door.floors
    return tuple(f for f in door.floors if f in floors)


def _person_decision(ctx: _Ctx, cred: Credential, *, duress: bool) -> Decision:
    person = ctx.policy.people.get(cred.person)
    if person is None:  # a validated policy never has this; stay total anyway
        return _unknown(ctx)
    who = {
        "person": person.id,
        "apartment": person.apartment,
        "credential": cred.id,
        "staff": person.kind == "staff",
        "duress": duress,
    }
    for check in PERSON_CHECKS:
        reason = check(ctx, person, cred)
        if reason is not None:
            return _deny(ctx, reason, **who)
    effects = _success_effects(ctx)
    if ctx.door.anti_passback:
        effects = (*effects, PositionSet(person.id, ctx.door.id, ctx.reader.direction))
    floors = _floors(ctx.door, person.floors) if ctx.door.kind == "lift" else ()
    return Decision(
        True,
        None,
        ctx.reader.id,
        ctx.door.id,
        ctx.p.kind,
        floors=floors,
        effects=effects,
        **who,  # type: ignore[arg-type]
    )


# --- a visitor's temp key -----------------------------------------------------------


def _temp_key_reason(ctx: _Ctx, key: TempKey) -> Reason | None:
    if ctx.state.lockdown:
        return Reason.LOCKDOWN
    if ctx.p.kind not in ctx.door.methods:
        return Reason.METHOD_NOT_ALLOWED
    if key.schedule.is_time_limited() and not ctx.state.clock_ok:
        return Reason.CLOCK_UNTRUSTED
    if ctx.door.id not in key.doors:
        return Reason.TEMP_KEY_NOT_HERE
    apartment = ctx.policy.apartments.get(key.apartment or "")
    if apartment is not None:
        if not ctx.state.clock_ok and apartment.lease.bounded:
            return Reason.CLOCK_UNTRUSTED
        if apartment.lease.before(ctx.at.utc):
            return Reason.LEASE_NOT_STARTED
        if apartment.lease.after(ctx.at.utc):
            return Reason.LEASE_ENDED
    if key.schedule.has_ended(ctx.at):
        return Reason.TEMP_KEY_EXPIRED
    if not key.schedule.is_open(ctx.at, ctx.policy.holidays):
        return Reason.OUTSIDE_SCHEDULE
    if key.total_uses is not None and ctx.memory.temp_key_uses.get(key.id, 0) >= key.total_uses:
        return Reason.TEMP_KEY_USED_UP
    if ctx.door.kind == "lift" and not _floors(ctx.door, key.floors):
        return Reason.NO_FLOORS
    return Reason.PARKING_FULL if ctx.reader.id in ctx.state.parking_full else None


def _temp_key_decision(ctx: _Ctx, key: TempKey) -> Decision:
    who = {"apartment": key.apartment, "temp_key": key.id}
    reason = _temp_key_reason(ctx, key)
    if reason is not None:
        return _deny(ctx, reason, **who)
    effects = (*_success_effects(ctx), TempKeyUsed(key.id))
    floors = _floors(ctx.door, key.floors) if ctx.door.kind == "lift" else ()
    return Decision(
        True,
        None,
        ctx.reader.id,
        ctx.door.id,
        ctx.p.kind,
        floors=floors,
        effects=effects,
        **who,  # type: ignore[arg-type]
    )
