"""Properties of the decision engine over generated policies and presentations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doorkeep import policydoc
from edge.core.decide import Presentation, Reason, SiteState, decide
from edge.core.model import Memory, build_snapshot

from .sample import DOOR_IDS, DOORS, READERS, SECRET, TZ, snapshot

DOOR_LIST = sorted(DOOR_IDS)
READER_IDS = [r.id for r in READERS]
KINDS = ["pin", "rf_card", "uhf_card", "license_plate", "qr", "nfc"]
BASE = datetime(2026, 11, 16, tzinfo=UTC)

times = st.integers(0, 23 * 3600 + 59 * 60).map(lambda s: f"{s // 3600:02d}:{s // 60 % 60:02d}")
schedules = st.one_of(
    st.builds(lambda a, b: {"repeat": "daily", "start": a, "end": b}, times, times),
    st.builds(
        lambda days, a, b: {"repeat": "weekly", "days": days, "start": a, "end": b},
        st.lists(
            st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
            min_size=1,
            max_size=7,
            unique=True,
        ),
        times,
        times,
    ),
    st.builds(
        lambda start, hours: {
            "repeat": "never",
            "start": (BASE + timedelta(hours=start)).replace(tzinfo=None).isoformat(),
            "end": (BASE + timedelta(hours=start + hours)).replace(tzinfo=None).isoformat(),
        },
        st.integers(0, 200),
        st.integers(1, 100),
    ),
)


def _value(kind: str, n: int) -> str:
    if kind == "pin":
        return f"{1000 + n}"
    if kind == "qr":
        return f"QR{n}"
    if kind == "license_plate":
        return f"P{n}X"
    return format(0x100000 + n, "X")


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    n_groups = draw(st.integers(1, 4))
    groups = [
        {
            "id": f"g{i}",
            "schedule": draw(schedules),
            "doors": draw(
                st.lists(st.sampled_from(DOOR_LIST), min_size=1, max_size=4, unique=True)
            ),
            **({"building_default": "B1"} if i == 0 else {}),
        }
        for i in range(n_groups)
    ]
    people, credentials = [], []
    for i in range(draw(st.integers(1, 6))):
        valid = draw(st.sampled_from([None, "past", "future"]))
        person = {
            "id": f"p{i}",
            "kind": draw(st.sampled_from(["resident", "staff", "delivery"])),
            "groups": draw(
                st.lists(st.sampled_from([g["id"] for g in groups]), max_size=3, unique=True)
            ),
            "active": draw(st.booleans()),
            "floors": {
                "B1": draw(
                    st.lists(
                        st.sampled_from(["G1", "1", "7", "12", "all"]), max_size=3, unique=True
                    )
                )
            },
        }
        if person["kind"] == "resident":
            person["apartment"] = "A1"
        if valid == "past":
            person["valid_until"] = "2026-11-01T00:00:00"
        elif valid == "future":
            person["valid_from"] = "2027-01-01T00:00:00"
        people.append(person)
        for j, kind in enumerate(draw(st.lists(st.sampled_from(KINDS), max_size=3, unique=True))):
            credentials.append(
                {
                    "id": f"c{i}-{j}",
                    "person": f"p{i}",
                    "kind": kind,
                    "value": _value(kind, i * 10 + j),
                    "active": draw(st.booleans()),
                }
            )
    temp_keys = [
        {
            "id": f"t{i}",
            "kind": "pin",
            "code": f"9{i:07d}",
            "schedule": draw(schedules),
            "uses_per_door": draw(st.one_of(st.none(), st.integers(1, 3))),
            "doors": draw(
                st.lists(st.sampled_from(DOOR_LIST), min_size=1, max_size=3, unique=True)
            ),
        }
        for i in range(draw(st.integers(0, 2)))
    ]
    return {
        "format": "doorkeep.policy/1",
        "settings": {
            "pin_mode": draw(st.sampled_from(["pin", "apt_pin"])),
            "duress": draw(st.booleans()),
            "temp_key_max_days": 30,
        },
        "buildings": [{"id": "B1"}],
        "apartments": [
            {
                "id": "A1",
                "building": "B1",
                "number": "1#1",
                "valid_until": draw(st.sampled_from([None, "2026-11-20T00:00:00"])),
            }
        ],
        "people": people,
        "credentials": credentials,
        "groups": groups,
        "temp_keys": temp_keys,
    }


presentations = st.builds(
    Presentation,
    st.sampled_from([*READER_IDS, "ghost"]),
    st.sampled_from(KINDS),
    st.one_of(
        st.builds(_value, st.sampled_from(KINDS), st.integers(0, 60)),
        st.sampled_from(["91234567", "90000000", "90000001", "1#1#1000", "1#1#1011"]),
        st.text(min_size=1, max_size=20),
    ),
)
moments = st.integers(0, 400 * 3600).map(lambda s: BASE + timedelta(seconds=s))
states = st.builds(SiteState, st.booleans(), st.booleans())


def _snapshot(doc: dict[str, Any]):
    assert policydoc.validate_document(doc, doors=DOOR_IDS) == []
    hashed = policydoc.hash_document(doc, SECRET)
    return build_snapshot(hashed, tz=TZ, secret=SECRET, doors=DOORS, readers=READERS)


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(policies(), st.lists(st.tuples(presentations, moments, states), max_size=15))
def test_decide_never_raises_and_always_explains_a_denial(doc, steps):
    policy = _snapshot(doc)
    memory = Memory()
    for presentation, moment, state in steps:
        d = decide(policy, presentation, moment, memory, state)
        assert d.granted == (d.reason is None)
        assert d.reason is None or isinstance(d.reason, Reason)
        memory.apply(d.effects)


@PROPERTY
@given(policies(), st.data())
def test_deleted_or_expired_credential_is_never_granted(doc, data):
    if not doc["credentials"]:
        return
    victim = data.draw(st.sampled_from(doc["credentials"]))
    how = data.draw(st.sampled_from(["deleted", "person_expired"]))
    if how == "deleted":
        doc["credentials"].remove(victim)
    else:
        person = next(p for p in doc["people"] if p["id"] == victim["person"])
        person.pop("valid_from", None)
        person["valid_until"] = "2026-11-01T00:00:00"
    policy = _snapshot(doc)
    value = victim["value"]
    if victim["kind"] == "pin" and doc["settings"]["pin_mode"] == "apt_pin":
        value = f"1#1#{value}"
    for reader in READER_IDS:
        moment = data.draw(moments)
        d = decide(policy, Presentation(reader, victim["kind"], value), moment, Memory())
        assert not d.granted, (how, d)


@PROPERTY
@given(policies(), st.lists(st.tuples(presentations, moments), max_size=25))
def test_lockdown_never_grants_a_non_staff_person(doc, steps):
    policy = _snapshot(doc)
    memory = Memory()
    staff = {p["id"] for p in doc["people"] if p["kind"] == "staff"}
    for presentation, moment in steps:
        d = decide(policy, presentation, moment, memory, SiteState(lockdown=True))
        if d.granted:
            assert d.person in staff and d.temp_key is None
        memory.apply(d.effects)


@PROPERTY
@given(
    policies(), st.lists(st.tuples(st.sampled_from(READER_IDS), moments), max_size=40), st.data()
)
def test_temp_key_grants_never_exceed_uses_times_doors(doc, steps, data):
    if not doc["temp_keys"]:
        return
    key = data.draw(st.sampled_from(doc["temp_keys"]))
    policy = _snapshot(doc)
    memory = Memory()
    grants = 0
    for reader, moment in steps:
        d = decide(policy, Presentation(reader, "pin", key["code"]), moment, memory)
        grants += d.granted
        memory.apply(d.effects)
    if key["uses_per_door"] is not None:
        assert grants <= key["uses_per_door"] * len(key["doors"])


@PROPERTY
@given(
    st.lists(
        st.tuples(st.integers(1, 900), st.booleans()),  # seconds since the last try; own PIN?
        min_size=1,
        max_size=120,
    ),
    st.integers(1, 30),
)
def test_no_hour_ever_holds_more_tested_wrong_pins_than_max_per_hour(steps, max_per_hour):
    """Whatever the pacing and however often a valid PIN comes between (issue 9/6)."""
    lockout = {"failures": min(5, max_per_hour), "max_per_hour": max_per_hour}
    policy = snapshot(lockout=lockout)
    memory, t, tested = Memory(), 0, []
    for n, (wait, own) in enumerate(steps):
        t += wait
        value = "1234" if own else f"1{n:05d}"
        now = BASE + timedelta(seconds=t)
        decision = decide(policy, Presentation("gate-in", "pin", value), now, memory)
        memory.apply(decision.effects)
        if decision.reason is Reason.UNKNOWN_CREDENTIAL:
            tested.append(t)
            assert sum(1 for x in tested if t - x < 3600) <= max_per_hour
