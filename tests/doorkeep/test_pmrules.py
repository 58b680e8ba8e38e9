"""The shared property-manager rules: value facts, default groups, leases, list queries."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from doorkeep import credfacts, listing, lockformats, policyrules

TZ = ZoneInfo("Europe/Berlin")


def test_value_facts_never_hold_a_pins_digits() -> None:
    facts = credfacts.value_facts("pin", "4711")
    assert facts == {"length": 4, "charset": "digits", "masked": "••••"}
    card = credfacts.value_facts("rf_card", "00209cbf11")
    assert card["charset"] == "hex" and card["length"] == 10
    assert card["masked"] == "…BF11"  # the last four of the canonical 209CBF11
    short = credfacts.value_facts("rf_card", "0x1F")
    assert short["masked"] == "••••" and short["charset"] == "other"


def test_facts_carry_over_only_for_the_same_hashed_value() -> None:
    old = {"id": "c1", "value_hmac": "a" * 64, "value_facts": {"length": 4}}
    assert credfacts.carry_facts(old, {"id": "c1", "value_hmac": "a" * 64})["value_facts"]
    assert "value_facts" not in credfacts.carry_facts(old, {"id": "c1", "value_hmac": "b" * 64})
    assert "value_facts" not in credfacts.carry_facts(old, {"id": "c1", "value": "1234"})


def test_default_group_ids_never_collide_and_fit_the_id_rule() -> None:
    doc = {"groups": [{"id": "g-B1"}, {"id": "g-B1-2"}]}
    assert policyrules.default_group(doc, {"id": "B1"})["id"] == "g-B1-3"
    long = "B" * 64
    gid = policyrules.default_group({"groups": [{"id": f"g-{long}"[:64]}]}, {"id": long})["id"]
    assert len(gid) <= 64 and gid.endswith("-2")


def test_ended_leases_remove_residents_only_with_auto_delete() -> None:
    doc = {
        "apartments": [
            {"id": "A1", "valid_until": "2026-01-01T00:00:00", "auto_delete": True},
            {"id": "A2", "valid_until": "2026-01-01T00:00:00"},
        ],
        "people": [
            {"id": "p1", "kind": "resident", "apartment": "A1"},
            {"id": "p2", "kind": "resident", "apartment": "A2"},
        ],
        "credentials": [{"id": "c1", "person": "p1"}, {"id": "c2", "person": "p2"}],
        "reservations": [{"id": "r1", "person": "p1"}],
    }
    before = datetime(2025, 12, 31, 22, 59, tzinfo=UTC)  # 23:59 in Berlin
    assert policyrules.ended_leases(doc, before, TZ)[1] == {}
    after = datetime(2025, 12, 31, 23, 0, tzinfo=UTC)
    new, removed = policyrules.ended_leases(doc, after, TZ)
    assert removed == {"people": ["p1"], "credentials": ["c1"], "reservations": ["r1"]}
    assert [p["id"] for p in new["people"]] == ["p2"]


def test_strip_contacts() -> None:
    person = {"id": "p1", "email": "a@b.c", "mobile": "123", "name": "A"}
    assert policyrules.strip_contacts(person)
    assert person == {"id": "p1", "name": "A"}
    assert not policyrules.strip_contacts(person)


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 1001}, {"offset": -1}, {"colour": "x"}, {"kind": "password"}],
)
def test_a_bad_list_query_is_refused(params: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"limit|offset|colour|kind"):
        listing.Query.of("credentials", params)


def test_lock_report_without_facts_says_it_cannot_check() -> None:
    doc = {
        "settings": {"lock_families": {"d1": "itec"}},
        "groups": [{"id": "g", "doors": ["d1"]}],
        "people": [{"id": "p", "groups": ["g"]}],
        "credentials": [{"id": "c", "person": "p", "kind": "pin", "value_hmac": "a" * 64}],
    }
    (row,) = lockformats.report(doc, "itec")["unsyncable"]
    assert row["reason"] == lockformats.UNCHECKED
