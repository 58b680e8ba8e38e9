"""The rules of POLICY.md, one named test each, plus the issue's extra rules."""

from __future__ import annotations

from datetime import datetime

import pytest

from doorkeep import wiegand
from edge.core.decide import Decision, Presentation, Reason, SiteState, decide
from edge.core.model import Memory, PolicySnapshot

from .sample import TZ, document, snapshot

TUESDAY_AFTERNOON = "2026-11-17T14:00:00"  # inside t1's window, a staff weekday


def at(text: str) -> datetime:
    """A wall-clock time in the site's zone."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def present(
    policy: PolicySnapshot,
    reader: str,
    kind: str,
    value: str,
    when: str = TUESDAY_AFTERNOON,
    memory: Memory | None = None,
    state: SiteState | None = None,
) -> Decision:
    memory = Memory() if memory is None else memory
    decision = decide(
        policy, Presentation(reader, kind, value), at(when), memory, state or SiteState()
    )
    memory.apply(decision.effects)
    return decision


@pytest.fixture(scope="module")
def policy() -> PolicySnapshot:
    return snapshot()


# --- who you are --------------------------------------------------------------------


def test_known_pin_at_a_door_of_the_persons_group_is_granted(policy):
    d = present(policy, "gate-in", "pin", "1234")
    assert d.granted and d.reason is None and d.person == "p-judy" and d.apartment == "B1-203"


def test_unknown_credential_is_refused_with_reason(policy):
    d = present(policy, "gate-in", "pin", "7777")
    assert not d.granted and d.reason is Reason.UNKNOWN_CREDENTIAL and d.person is None


def test_disabled_credential_is_refused():
    doc = document()
    doc["credentials"][0]["active"] = False
    d = present(snapshot(doc), "gate-in", "pin", "1234")
    assert d.reason is Reason.CREDENTIAL_DISABLED


def test_disabled_person_is_refused():
    doc = document()
    doc["people"][0]["active"] = False
    assert present(snapshot(doc), "gate-in", "pin", "1234").reason is Reason.PERSON_DISABLED


def test_person_outside_own_validity_is_refused():
    doc = document()
    doc["people"][0]["valid_from"] = "2026-12-01T00:00:00"
    policy = snapshot(doc)
    assert present(policy, "gate-in", "pin", "1234").reason is Reason.OUTSIDE_VALIDITY
    assert present(policy, "gate-in", "pin", "1234", "2026-12-01T00:00:00").granted


def test_apartment_lease_ended_refuses_every_credential_of_its_residents(policy):
    when = "2027-01-31T00:00:01"  # one second after the lease's inclusive end
    for kind, value in (("pin", "1234"), ("rf_card", "00209CBF"), ("license_plate", "7ABC123")):
        d = present(policy, "gate-in", kind, value, when)
        assert d.reason is Reason.LEASE_ENDED, kind
    assert present(policy, "gate-in", "pin", "1234", "2027-01-31T00:00:00").granted
    assert present(policy, "gate-in", "pin", "5678", when).granted  # another apartment


def test_lease_not_started_is_refused():
    doc = document()
    doc["apartments"][1]["valid_from"] = "2026-12-01T00:00:00"
    d = present(snapshot(doc), "gate-in", "pin", "5678")
    assert d.reason is Reason.LEASE_NOT_STARTED


# --- whether this door takes it ----------------------------------------------------


def test_door_accepts_only_its_listed_credential_kinds(policy):
    # the plant room is a card-only relay: Cathy's PIN does not open it, her card does
    assert present(policy, "plant-in", "pin", "2468").reason is Reason.METHOD_NOT_ALLOWED
    assert present(policy, "plant-in", "rf_card", "13579").granted


def test_an_apartment_that_disables_a_method_refuses_its_residents_credential_of_that_kind():
    # the reference's "enabled access methods" per apartment: B1-203 allows cards only
    doc = document()
    apartment = next(a for a in doc["apartments"] if a["id"] == "B1-203")
    apartment["methods"] = ["rf_card"]
    d = present(snapshot(doc), "gate-in", "pin", "1234")
    assert not d.granted
    assert d.reason is Reason.METHOD_DISABLED_FOR_APARTMENT
    assert d.person == "p-judy"
    apartment["methods"] = None  # null: every kind, as without the field
    assert present(snapshot(doc), "gate-in", "pin", "1234").granted


def test_license_plate_opens_when_person_has_no_uhf_card(policy):
    assert present(policy, "garage-in", "license_plate", "7ABC123").granted


def test_person_with_uhf_card_and_plate_opens_with_uhf_card_only():
    doc = document()
    doc["credentials"].append(
        {"id": "c9", "person": "p-ken", "kind": "uhf_card", "value": "E200ABCD"}
    )
    policy = snapshot(doc)
    assert present(policy, "garage-in", "license_plate", "BKN42").reason is Reason.UHF_CARD_REQUIRED
    assert present(policy, "garage-in", "uhf_card", "e200abcd").granted


# --- whether you may be here now ----------------------------------------------------


def test_door_outside_every_group_is_no_access(policy):
    assert present(policy, "plant-in", "rf_card", "00209CBF").reason is Reason.NO_ACCESS


def test_group_schedule_closed_is_outside_schedule(policy):
    # staff weekdays 07:00-19:00; Saturday is closed, so is 19:00:01
    assert present(policy, "plant-in", "rf_card", "13579", "2026-11-21T12:00:00").reason is (
        Reason.OUTSIDE_SCHEDULE
    )
    assert present(policy, "plant-in", "rf_card", "13579", "2026-11-17T19:00:00").granted
    assert not present(policy, "plant-in", "rf_card", "13579", "2026-11-17T19:00:01").granted


def test_weekly_schedule_except_holidays_is_closed_on_a_holiday(policy):
    christmas_friday = "2026-12-25T12:00:00"
    assert present(policy, "plant-in", "rf_card", "13579", christmas_friday).reason is (
        Reason.OUTSIDE_SCHEDULE
    )


def test_overnight_daily_window_crosses_midnight():
    doc = document()
    doc["groups"][2]["schedule"] = {"repeat": "daily", "start": "22:00", "end": "06:00"}
    policy = snapshot(doc)
    assert present(policy, "parcel-in", "pin", "4321", "2026-11-17T23:30:00").granted
    assert present(policy, "parcel-in", "pin", "4321", "2026-11-18T05:59:59").granted
    assert not present(policy, "parcel-in", "pin", "4321", "2026-11-18T12:00:00").granted


def test_overnight_weekly_window_belongs_to_the_day_it_starts_on():
    doc = document()
    doc["groups"][2]["schedule"] = {
        "repeat": "weekly",
        "days": ["fri"],
        "start": "22:00",
        "end": "02:00",
    }
    policy = snapshot(doc)
    assert present(policy, "parcel-in", "pin", "4321", "2026-11-21T01:00:00").granted  # Sat 01:00
    assert not present(policy, "parcel-in", "pin", "4321", "2026-11-20T01:00:00").granted  # Fri


def test_schedule_times_are_site_wall_clock_across_dst():
    # 08:00-20:00 Berlin is 07:00 UTC in winter and 06:00 UTC in summer
    doc = document()
    policy = snapshot(doc)
    winter = datetime.fromisoformat("2026-01-15T07:00:00+00:00")
    summer = datetime.fromisoformat("2026-07-15T06:00:00+00:00")
    for moment in (winter, summer):
        assert decide(policy, Presentation("parcel-in", "pin", "4321"), moment, Memory()).granted
    just_before = datetime.fromisoformat("2026-07-15T05:59:59+00:00")
    assert not decide(
        policy, Presentation("parcel-in", "pin", "4321"), just_before, Memory()
    ).granted


def test_amenity_door_opens_only_inside_the_reservation(policy):
    assert present(policy, "gym-in", "pin", "1234", "2026-11-20T18:30:00").granted
    d = present(policy, "gym-in", "pin", "1234", "2026-11-20T19:30:00")
    assert d.reason is Reason.NOT_WITHIN_RESERVATION
    assert present(policy, "gym-in", "pin", "5678", "2026-11-20T18:30:00").reason is (
        Reason.NOT_WITHIN_RESERVATION
    )


def test_amenity_door_in_a_staff_group_opens_for_staff(policy):
    assert present(policy, "gym-in", "rf_card", "13579").granted


def test_lift_reader_grants_the_persons_floors(policy):
    d = present(policy, "lift-b1", "pin", "1234")
    assert d.granted and set(d.floors) == {"7", "G1"}


def test_lift_reader_refuses_a_person_without_floors_there(policy):
    assert present(policy, "lift-b1", "pin", "5678").reason is Reason.NO_FLOORS


def test_lift_all_floors_grants_every_floor_of_the_lift():
    doc = document()
    doc["people"][1]["floors"] = {"B1": ["all"]}
    d = present(snapshot(doc), "lift-b1", "pin", "5678")
    assert d.floors == ("G1", "1", "7", "12")


# --- PINs ---------------------------------------------------------------------------


def test_apt_pin_mode_needs_the_apartment_number_split_at_the_last_hash():
    policy = snapshot(pin_mode="apt_pin")
    assert present(policy, "gate-in", "pin", "2#203#1234").granted  # number holds a '#'
    assert present(policy, "gate-in", "pin", "1#101#1234").reason is Reason.UNKNOWN_CREDENTIAL
    assert present(policy, "gate-in", "pin", "1234").reason is Reason.UNKNOWN_CREDENTIAL


def test_apt_pin_mode_allows_the_same_pin_in_two_apartments():
    doc = document()
    doc["settings"]["pin_mode"] = "apt_pin"
    doc["credentials"][4]["value"] = "1234"  # Ken (1#101) now has Judy's PIN
    policy = snapshot(doc)
    assert present(policy, "gate-in", "pin", "1#101#1234").person == "p-ken"
    assert present(policy, "gate-in", "pin", "2#203#1234").person == "p-judy"


# --- temp keys ----------------------------------------------------------------------


def test_temp_key_grants_n_times_k_doors_in_total_at_any_of_its_doors(policy):
    memory = Memory()
    # 1 use per door x 3 doors = 3 grants, even all at one door
    results = [present(policy, "gate-in", "pin", "91487640", memory=memory) for _ in range(4)]
    assert [d.granted for d in results] == [True, True, True, False]
    assert results[-1].reason is Reason.TEMP_KEY_USED_UP
    assert memory.temp_key_uses == {"t1": 3}


def test_temp_key_with_unlimited_uses_opens_inside_its_schedule_only(policy):
    memory = Memory()
    wednesday = "2026-11-18T10:00:00"
    assert all(
        present(policy, "lobby-in", "qr", "QR-CLEAN-77", wednesday, memory).granted
        for _ in range(10)
    )
    assert present(policy, "lobby-in", "qr", "QR-CLEAN-77", "2026-11-18T12:00:01").reason is (
        Reason.OUTSIDE_SCHEDULE
    )


def test_temp_key_after_its_window_is_expired(policy):
    d = present(policy, "gate-in", "pin", "91487640", "2026-11-18T13:54:01")
    assert d.reason is Reason.TEMP_KEY_EXPIRED and d.temp_key == "t1"


def test_temp_key_refused_at_a_door_it_does_not_list(policy):
    d = present(policy, "plant-in", "pin", "91487640")
    assert d.reason in (Reason.METHOD_NOT_ALLOWED, Reason.TEMP_KEY_NOT_HERE)
    assert present(policy, "gym-in", "pin", "91487640").reason is Reason.TEMP_KEY_NOT_HERE


def test_temp_key_of_an_apartment_whose_lease_ended_is_refused():
    doc = document()
    doc["apartments"][0]["valid_until"] = "2026-11-17T00:00:00"
    assert present(snapshot(doc), "gate-in", "pin", "91487640").reason is Reason.LEASE_ENDED


# --- cards --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "00209CBF",
        "00209cbf",
        "0x209CBF",
        "hex:209cbf",
        "dec:2137279",
        "2137279",
        "32,40127",
        "w26:10010000010011100101111110",
    ],
)
def test_card_values_in_hex_decimal_and_wiegand_forms_match(policy, spelling):
    d = present(policy, "gate-in", "rf_card", spelling)
    assert d.granted and d.person == "p-judy"


@pytest.mark.parametrize(
    ("enrolled", "card"),
    [
        ("w34:1000,12345", wiegand.Card("H10306", 1000, 12345)),
        ("w35:2000,654321", wiegand.Card("C1000", 2000, 654321)),
        ("w37:40000,500000", wiegand.Card("H10304", 40000, 500000)),
        ("w37:123456789", wiegand.Card("H10302", None, 123456789)),
    ],
)
def test_a_long_wiegand_card_enrolled_by_its_printed_numbers_opens_when_read(enrolled, card):
    # issue 11: a w35: frame was an unknown credential; 34/37-bit FC,CN could not be enrolled
    doc = document()
    doc["credentials"].append(
        {"id": "c-long", "person": "p-judy", "kind": "rf_card", "value": enrolled}
    )
    bits = wiegand.to_text(wiegand.encode(card), card.length)
    d = present(snapshot(doc), "gate-in", "rf_card", f"w{card.length}:{bits}")
    assert d.granted and d.person == "p-judy"


def test_license_plates_match_without_spaces_dashes_or_case(policy):
    assert present(policy, "gate-in", "license_plate", "b-kn 42").person == "p-ken"


# --- beyond the reference -----------------------------------------------------------


def test_lockdown_refuses_everyone_but_staff(policy):
    lockdown = SiteState(lockdown=True)
    assert present(policy, "gate-in", "pin", "1234", state=lockdown).reason is Reason.LOCKDOWN
    assert present(policy, "gate-in", "pin", "91487640", state=lockdown).reason is Reason.LOCKDOWN
    assert present(policy, "gate-in", "rf_card", "13579", state=lockdown).granted


def test_pin_brute_force_locks_the_reader_out(policy):
    memory = Memory()
    for guess in ("1111", "2222", "3333", "4444"):
        assert (
            present(policy, "gate-in", "pin", guess, memory=memory).reason
            is Reason.UNKNOWN_CREDENTIAL
        )
    assert (
        present(policy, "gate-in", "pin", "5555", memory=memory).reason is Reason.UNKNOWN_CREDENTIAL
    )
    # the fifth failure inside 60 s locked the reader for 300 s: even the right PIN fails
    assert present(policy, "gate-in", "pin", "1234", memory=memory).reason is Reason.LOCKED_OUT
    assert present(policy, "lobby-in", "pin", "1234", memory=memory).granted  # per reader
    assert present(policy, "gate-in", "rf_card", "00209CBF", memory=memory).granted  # PINs only
    assert present(policy, "gate-in", "pin", "1234", "2026-11-17T14:05:01", memory).granted


def test_pin_failures_outside_the_window_do_not_add_up(policy):
    memory = Memory()
    for minute in range(6):
        present(policy, "gate-in", "pin", "1111", f"2026-11-17T14:{minute * 2:02d}:00", memory)
    assert present(policy, "gate-in", "pin", "1234", "2026-11-17T14:11:00", memory).granted


def test_the_hourly_cap_is_not_reset_by_a_success_and_locks_until_the_hour_drains(policy):
    memory = Memory()
    for n in range(19):  # 19 wrong PINs, 2 minutes apart, each followed by the right one
        when = f"2026-11-17T14:{n * 2:02d}:00"
        assert present(policy, "gate-in", "pin", "1111", when, memory).pin_guessing is None
        assert present(policy, "gate-in", "pin", "1234", when, memory).granted
    d = present(policy, "gate-in", "pin", "1111", "2026-11-17T14:40:00", memory)
    assert d.reason is Reason.UNKNOWN_CREDENTIAL  # the 20th of the hour is still tested...
    assert d.pin_guessing is not None and d.pin_guessing.wrong_pins_last_hour == 20
    # ... then the reader stays locked until the first of the 20 is an hour old
    assert present(policy, "gate-in", "pin", "1234", "2026-11-17T14:59:59", memory).reason is (
        Reason.LOCKED_OUT
    )
    assert present(policy, "gate-in", "pin", "1234", "2026-11-17T15:00:01", memory).granted


def test_lock_streak_and_hourly_count_are_rebuilt_from_the_stored_rows(policy):
    memory, rows = Memory(), {}
    for second in range(10):  # two lockouts: the second doubles and raises the alarm
        when = f"2026-11-17T14:{second // 5 * 6:02d}:{second % 5:02d}"
        decision = decide(
            policy, Presentation("gate-in", "pin", "1111"), at(when), memory, SiteState()
        )
        rows.update(memory.apply(decision.effects))
    assert decision.pin_guessing is not None and decision.pin_guessing.lockouts == 2
    restored = Memory.from_rows(rows)
    assert restored == memory
    assert restored.locked_until["gate-in"] == at("2026-11-17T14:06:04").timestamp() + 600


def test_duress_pin_opens_and_flags_a_silent_alarm():
    policy = snapshot(duress=True)
    d = present(policy, "gate-in", "pin", "1235")
    assert d.granted and d.duress and d.person == "p-judy"
    assert not present(policy, "gate-in", "pin", "1234").duress
    assert present(snapshot(), "gate-in", "pin", "1235").reason is Reason.UNKNOWN_CREDENTIAL


def test_anti_passback_refuses_a_second_entry_without_an_exit(policy):
    memory = Memory()
    assert present(policy, "garage-in", "license_plate", "7ABC123", memory=memory).granted
    d = present(policy, "garage-in", "license_plate", "7ABC123", memory=memory)
    assert d.reason is Reason.ANTI_PASSBACK
    assert present(policy, "garage-out", "license_plate", "7ABC123", memory=memory).granted
    assert present(policy, "garage-in", "license_plate", "7ABC123", memory=memory).granted


def test_clock_guard_refuses_time_limited_grants_only(policy):
    bad_clock = SiteState(clock_ok=False)
    assert (
        present(policy, "gate-in", "pin", "91487640", state=bad_clock).reason
        is Reason.CLOCK_UNTRUSTED
    )
    # Judy's apartment has a lease end: time-limited
    assert (
        present(policy, "gate-in", "pin", "1234", state=bad_clock).reason is Reason.CLOCK_UNTRUSTED
    )
    # Ken has no validity and no lease; his group is a recurring daily window
    assert present(policy, "gate-in", "pin", "5678", state=bad_clock).granted


def test_unknown_reader_is_refused_not_raised(policy):
    assert present(policy, "nowhere", "pin", "1234").reason is Reason.UNKNOWN_READER


def test_malformed_card_value_is_an_unknown_credential(policy):
    assert present(policy, "gate-in", "rf_card", "not-a-card!").reason is Reason.UNKNOWN_CREDENTIAL


def test_malformed_presentation_is_a_clear_value_error():
    with pytest.raises(ValueError, match="kind 'password' is not one of"):
        Presentation("gate-in", "password", "x")
    with pytest.raises(ValueError, match="non-empty string"):
        Presentation("gate-in", "pin", "")


def test_every_denial_carries_a_reason_from_the_closed_list(policy):
    cases = [
        ("gate-in", "pin", "0000"),
        ("plant-in", "pin", "2468"),
        ("plant-in", "rf_card", "00209CBF"),
    ]
    for reader, kind, value in cases:
        d = present(policy, reader, kind, value)
        assert not d.granted and isinstance(d.reason, Reason)


def test_a_dry_run_changes_no_memory(policy):
    memory = Memory()
    decide(policy, Presentation("gate-in", "pin", "91487640"), at(TUESDAY_AFTERNOON), memory)
    assert memory == Memory()


# --- car parks and long-term vehicles (issue 11) ------------------------------------


def test_a_plate_outside_its_own_validity_is_refused_and_inside_it_opens():
    # the reference's "long-term vehicle" switched off: the plate has a window of its own
    doc = document()
    ken_plate = next(c for c in doc["credentials"] if c["id"] == "c6")
    ken_plate.update(valid_from="2026-11-17T08:00:00", valid_until="2026-11-17T18:00:00")
    policy = snapshot(doc)
    before = present(policy, "garage-in", "license_plate", "BKN42", "2026-11-17T07:59:59")
    assert before.reason is Reason.CREDENTIAL_OUTSIDE_VALIDITY and before.person == "p-ken"
    assert present(policy, "garage-in", "license_plate", "BKN42", "2026-11-17T12:00:00").granted
    assert present(policy, "garage-in", "license_plate", "BKN42", "2026-11-17T18:00:00").granted
    after = present(policy, "garage-in", "license_plate", "BKN42", "2026-11-17T18:00:01")
    assert after.reason is Reason.CREDENTIAL_OUTSIDE_VALIDITY
    # Ken's other credentials are not limited by the plate's window
    assert present(policy, "gate-in", "pin", "5678", "2026-11-17T19:00:00").granted
    # a windowed credential is time-limited: refused while the clock is untrusted
    bad_clock = SiteState(clock_ok=False)
    assert (
        present(policy, "garage-in", "license_plate", "BKN42", state=bad_clock).reason
        is Reason.CLOCK_UNTRUSTED
    )
    assert present(policy, "gate-in", "pin", "5678", state=bad_clock).granted


def test_a_credential_window_ending_before_it_starts_is_a_policy_issue():
    from doorkeep import policydoc

    doc = document()
    doc["credentials"][0].update(
        valid_from="2026-12-01T00:00:00", valid_until="2026-11-01T00:00:00"
    )
    doc["credentials"][1].update(valid_until="next tuesday")
    issues = {(i.entity, i.field) for i in policydoc.validate_document(doc)}
    assert ("credentials/c1", "valid_until") in issues
    assert ("credentials/c2", "valid_until") in issues


def test_a_full_car_park_refuses_an_entry_that_would_otherwise_open(policy):
    full = SiteState(parking_full=frozenset({"garage-in"}))
    d = present(policy, "garage-in", "license_plate", "7ABC123", state=full)
    assert not d.granted and d.reason is Reason.PARKING_FULL and d.person == "p-judy"
    assert d.effects == ()  # no anti-passback position for a car that stayed out
    # other refusals keep their own reason; other readers are not affected
    assert (
        present(policy, "garage-in", "license_plate", "NOPE1", state=full).reason
        is Reason.UNKNOWN_CREDENTIAL
    )
    assert present(policy, "garage-out", "license_plate", "7ABC123", state=full).granted
    assert present(policy, "gate-in", "pin", "1234", state=full).granted
