"""The policy document format: every problem at once, named by entity and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from doorkeep import policydoc
from doorkeep.errors import PolicyError
from tests.edge.sample import DOOR_IDS, SECRET, document

ROOT = Path(__file__).resolve().parents[2]


def messages(doc, **kw):
    return {(i.entity, i.field): i.message for i in policydoc.validate_document(doc, **kw)}


def test_the_sample_policy_of_policy_md_is_valid():
    assert policydoc.validate_document(document(), doors=DOOR_IDS) == []


def test_schema_file_in_config_is_the_one_the_validator_uses():
    on_disk = json.loads((ROOT / "config" / "policy.schema.json").read_text())
    assert on_disk == policydoc.schema()


def test_a_policy_with_every_kind_of_error_reports_every_error_at_once():
    doc = document()
    doc["settings"]["colour"] = "red"  # unknown key
    doc["people"][0]["kind"] = "alien"  # bad enum
    doc["people"][1]["groups"] = ["g-missing"]  # dangling reference
    doc["credentials"].append({"id": "c-bad", "person": "p-ken", "kind": "pin", "value": "9123"})
    doc["credentials"].append({"id": "c-dup", "person": "p-ken", "kind": "pin", "value": "2468"})
    doc["credentials"].append({"id": "c-short", "person": "p-ken", "kind": "pin", "value": "1"})
    doc["credentials"].append(
        {"id": "c-card", "person": "p-ken", "kind": "rf_card", "value": "zz!"}
    )
    doc["temp_keys"][0]["code"] = "12345678"  # temp PIN must start with 9
    doc["temp_keys"][0]["schedule"]["end"] = "2027-06-01T00:00:00"  # longer than 30 days
    doc["groups"][0]["building_default"] = None  # B1 loses its default group
    doc["reservations"][0]["end"] = "2026-11-20T17:00:00"  # ends before it starts
    doc["hold_open"][0]["door"] = "roof"  # not in site.toml
    doc["credentials"][0]["id"] = "c2"  # duplicate id
    found = messages(doc, doors=DOOR_IDS)
    expected = {
        ("settings", "colour"),
        ("people/p-judy", "kind"),
        ("people/p-ken", "groups"),
        ("credentials/c-bad", "value"),
        ("credentials/c-dup", "value"),
        ("credentials/c-card", "value"),
        ("temp_keys/t1", "code"),
        ("temp_keys/t1", "schedule.end"),
        ("buildings/B1", "id"),
        ("reservations/r1", "end"),
        ("hold_open/roof", "door"),
        ("credentials/c2", "id"),
    }
    assert expected <= set(found), expected - set(found)
    assert any(e == "credentials/c-short" for e, _ in found)


def test_error_messages_never_repeat_a_credential_value():
    doc = document()
    doc["credentials"].append({"id": "c-bad", "person": "p-ken", "kind": "pin", "value": "98765"})
    doc["credentials"].append({"id": "c-dup", "person": "p-ken", "kind": "pin", "value": "1234"})
    text = " ".join(str(i) for i in policydoc.validate_document(doc))
    assert "98765" not in text and "1234" not in text


def test_two_people_never_share_a_pin_but_may_in_apt_pin_mode_across_apartments():
    doc = document()
    doc["credentials"][4]["value"] = "1234"  # Ken takes Judy's PIN
    assert ("credentials/c5", "value") in messages(doc)
    doc["settings"]["pin_mode"] = "apt_pin"
    assert messages(doc) == {}
    doc["credentials"].append({"id": "c-sib", "person": "p-judy", "kind": "pin", "value": "1234"})
    assert "in this apartment" in messages(doc)[("credentials/c-sib", "value")]


def test_hashed_document_has_no_plaintext_and_still_validates():
    hashed = policydoc.hash_document(document(), SECRET)
    text = json.dumps(hashed)
    for secret in ("1234", "00209CBF", "7ABC123", "91487640", "QR-CLEAN-77"):
        assert secret not in text
    assert all("value" not in c and len(c["value_hmac"]) == 64 for c in hashed["credentials"])
    assert all("duress_hmac" in c for c in hashed["credentials"] if c["kind"] == "pin")
    assert policydoc.validate_document(hashed, doors=DOOR_IDS) == []


def test_uniqueness_holds_across_plaintext_and_hashed_entries_when_the_secret_is_known():
    hashed = policydoc.hash_document(document(), SECRET)
    hashed["credentials"].append(
        {"id": "c-new", "person": "p-ken", "kind": "rf_card", "value": "0x209cbf"}
    )
    assert ("credentials/c-new", "value") in messages(hashed, secret=SECRET)


def test_duress_on_refuses_a_pin_that_is_another_pin_plus_one():
    doc = document()
    doc["settings"]["duress"] = True
    doc["credentials"][4]["value"] = "1235"
    assert "duress code" in messages(doc)[("credentials/c5", "value")]


def test_digest_ignores_entity_order_and_changes_with_content():
    a = policydoc.hash_document(document(), SECRET)
    b = policydoc.hash_document(document(), SECRET)
    b["people"].reverse()
    assert policydoc.policy_digest(a) == policydoc.policy_digest(b)
    b["people"][0]["name"] = "Someone else"
    assert policydoc.policy_digest(a) != policydoc.policy_digest(b)


def test_check_document_raises_with_the_issue_list():
    doc = document()
    doc["people"][0]["kind"] = "alien"
    with pytest.raises(PolicyError) as err:
        policydoc.check_document(doc)
    assert [i.entity for i in err.value.issues] == ["people/p-judy"]


def test_non_object_document_is_one_clear_issue():
    assert [str(i) for i in policydoc.validate_document([1, 2])] == [
        "document: -: a policy document must be a JSON object"
    ]


def test_schema_errors_on_a_credential_never_quote_its_value():
    doc = document()
    doc["credentials"].append(
        {"id": "c-both", "person": "p-ken", "kind": "pin", "value": "8642", "value_hmac": "0" * 64}
    )
    doc["credentials"].append({"id": "c-num", "person": "p-ken", "kind": "pin", "value": 97531})
    doc["temp_keys"][0]["code"] = ""
    found = messages(doc)
    assert "give exactly one of value or value_hmac" in found[("credentials/c-both", "-")]
    assert ("credentials/c-num", "value") in found
    text = " ".join(str(i) for i in policydoc.validate_document(doc))
    assert "8642" not in text and "97531" not in text


@pytest.mark.parametrize(
    "bad",
    [
        {"format": "doorkeep.policy/1", "hold_open": [[None, None]]},
        {"format": "doorkeep.policy/1", "people": [1, "x"], "groups": None},
        {"format": "doorkeep.policy/1", "settings": []},
    ],
)
def test_entities_of_the_wrong_json_type_are_reported_not_crashed_on(bad):
    issues = policydoc.validate_document(bad)
    assert issues and all(i.message for i in issues)


# --- duress codes never collide (issue 9, finding 9) -----------------------------------


def _duress_doc(pin: str = "89999999", code: str = "90000000") -> dict:
    doc = document()
    doc["settings"]["duress"] = True
    doc["credentials"][4]["value"] = pin  # Ken's PIN; its duress form is the PIN plus one
    doc["temp_keys"][0]["code"] = code
    return doc


def test_a_duress_pin_equal_to_a_temp_key_code_is_refused_without_showing_either():
    found = messages(_duress_doc())
    assert "duress code" in found[("temp_keys/t1", "code")]  # never whose (issue 12)
    assert "start with 9" in found[("credentials/c5", "value")]
    text = " ".join(str(i) for i in policydoc.validate_document(_duress_doc()))
    assert "89999999" not in text and "90000000" not in text


def test_a_hashed_document_whose_duress_hmac_is_a_temp_key_code_hmac_is_refused():
    doc = _duress_doc()
    doc["settings"]["duress"] = False  # hashing and applying it with duress off is fine...
    hashed = policydoc.hash_document(doc, SECRET)
    assert messages(hashed) == {}
    hashed["settings"]["duress"] = True  # ...switching duress on is not
    issues = policydoc.validate_document(hashed)
    assert [(i.entity, i.field) for i in issues] == [("temp_keys/t1", "code")]
    assert "duress code" in issues[0].message  # never whose (issue 12)
    assert hashed["credentials"][4]["duress_hmac"] not in issues[0].message


def test_plaintext_temp_key_against_a_hashed_pin_is_compared_with_the_secret():
    doc = _duress_doc(code="91487640")
    hashed = policydoc.hash_document(doc, SECRET)
    hashed["temp_keys"][0] = {**hashed["temp_keys"][0], "code": "90000000"}
    del hashed["temp_keys"][0]["code_hmac"]
    assert (
        "duress code" in messages(hashed, secret=SECRET)[("temp_keys/t1", "code")]
    )  # never whose (issue 12)


def test_a_pin_whose_duress_form_would_start_with_9_is_refused_with_duress_on():
    # 899 + 1 = 900: the 9-space belongs to temp keys, whatever temp keys exist today
    for pin in ("89", "899", "8999999", "89999999"):
        found = messages(_duress_doc(pin=pin, code="91487640"))
        assert "start with 9" in found[("credentials/c5", "value")], pin
    doc = _duress_doc(pin="89999999", code="91487640")
    doc["settings"]["duress"] = False
    assert messages(doc) == {}  # without duress the PIN plus one means nothing


def test_a_duress_pin_equal_to_another_pin_is_refused_inside_one_apartment_in_apt_pin_mode():
    doc = document()
    doc["settings"].update(duress=True, pin_mode="apt_pin")
    doc["credentials"].append({"id": "c-sib", "person": "p-judy", "kind": "pin", "value": "1235"})
    assert "duress code" in messages(doc)[("credentials/c-sib", "value")]
    doc["credentials"][-1]["person"] = "p-ken"  # another apartment: a different code
    assert messages(doc) == {}


# --- lockout settings (issue 9, finding 6) ---------------------------------------------


def test_lockout_settings_default_to_an_hourly_cap_and_refuse_contradictions():
    lockout = policydoc.settings_of(document())["lockout"]
    assert lockout["max_per_hour"] == 20 and lockout["max_lock_s"] >= lockout["lock_s"]
    doc = document()
    doc["settings"]["lockout"] = {"failures": 5, "lock_s": 600, "max_lock_s": 300}
    assert "max_lock_s" in messages(doc)[("settings", "lockout.max_lock_s")]
    doc["settings"]["lockout"] = {"failures": 5, "max_per_hour": 4}
    assert ("settings", "lockout.max_per_hour") in messages(doc)
    doc["settings"]["lockout"] = {"max_per_hour": 0}
    assert ("settings", "lockout.max_per_hour") in messages(doc)
