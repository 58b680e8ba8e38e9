"""The policy document ``doorkeep.policy/1``: validation, credential hashing, digest.

The edge applies it, the cloud validates, stores and signs it, so it lives below both.
Everything here is pure: documents in, documents or problem lists out.

Validation is two passes that both run to the end, so one call reports every problem at
once: the JSON Schema (``policy.schema.json``: shapes, enums, unknown keys) and the
semantic rules of POLICY.md (references exist, PIN rules, unique PINs, default groups,
time windows). Each problem names the entity (``people/p-judy``) and the field.

A *hashed* document carries no plaintext credential: ``value`` is replaced by
``value_hmac`` (and PINs gain ``duress_hmac``, the hash of the PIN plus one), temp-key
``code`` by ``code_hmac``. Both forms validate, so an export re-applies unchanged.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Collection, Iterator, Mapping
from datetime import date, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs

from doorkeep import cards, policyrules
from doorkeep.credhash import credential_hmac, duress_pin, hash_document
from doorkeep.errors import PolicyError, PolicyIssue
from doorkeep.policytext import MAX_DEPTH, loads, text_issues

__all__ = [
    "MAX_DEPTH",
    "credential_hmac",
    "duress_pin",
    "hash_document",
    "loads",
]  # and everything public below

FORMAT = "doorkeep.policy/1"

# Entity lists of the document, in the order they are listed and applied.
ENTITY_KINDS: tuple[str, ...] = (
    "buildings",
    "apartments",
    "people",
    "credentials",
    "groups",
    "temp_keys",
    "reservations",
    "holidays",
    "hold_open",
)
# The field that identifies an entity inside its list (most have an "id").
_KEY_FIELD = {"holidays": "date", "hold_open": "door"}

DEFAULT_SETTINGS: Mapping[str, Any] = {
    "pin_mode": "pin",
    "temp_key_max_days": 30,
    "lockout": {
        "failures": 5,
        "window_s": 60,
        "lock_s": 300,
        "max_per_hour": 20,
        "max_lock_s": 3600,
    },
    "emergency": {"doors": [], "auto_unlock_on_alarm": True},
    "duress": False,
    "door_event_days": 30,
}

# The credential kinds, listed once: the edge model and the decision engine
# (``edge.core.decide.PRESENTATION_KINDS``) derive their sets from this tuple; only the
# JSON Schema's ``credentials.kind`` enum repeats it, being JSON.
CREDENTIAL_KINDS: tuple[str, ...] = (
    "pin",
    "rf_card",
    "uhf_card",
    "license_plate",
    "face",
    "fingerprint",
    "id_card_qr",
    "qr",
    "nfc",
    "ble",
)
MAX_PLATES_PER_PERSON = 5
_PIN = re.compile(r"[0-8][0-9]{1,7}")
_TEMP_PIN = re.compile(r"9[0-9]{7}")
_FLOOR_NUMBER = re.compile(r"-?[0-9]{1,3}")


def key_field(kind: str) -> str:
    """The field that identifies an entity of the list ``kind`` ("id" for most)."""
    return _KEY_FIELD.get(kind, "id")


def entity_key(kind: str, entity: Mapping[str, Any]) -> str:
    """The identifier of ``entity`` inside the list ``kind``."""
    return str(entity.get(key_field(kind), ""))


def empty_document() -> dict[str, Any]:
    """A valid document with no entities and default settings."""
    doc: dict[str, Any] = {"format": FORMAT, "settings": copy.deepcopy(dict(DEFAULT_SETTINGS))}
    for kind in ENTITY_KINDS:
        doc[kind] = []
    return doc


def settings_of(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document's settings with every default filled in."""
    merged = copy.deepcopy(dict(DEFAULT_SETTINGS))
    for key, value in (doc.get("settings") or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def canonical_json(obj: object) -> bytes:
    """Canonical JSON bytes: sorted keys, no white space, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical_document(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` with every entity list present and sorted by key, settings filled in."""
    out: dict[str, Any] = {"format": FORMAT, "settings": settings_of(doc)}
    for kind in ENTITY_KINDS:
        out[kind] = sorted(doc.get(kind) or [], key=lambda e, k=kind: entity_key(k, e))
    return out


def policy_digest(hashed_doc: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of the canonical hashed document: equal policies, equal digests."""
    return "sha256:" + hashlib.sha256(canonical_json(canonical_document(hashed_doc))).hexdigest()


# --- validation ----------------------------------------------------------------------


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of the document (also at ``config/policy.schema.json``)."""
    text = resources.files("doorkeep").joinpath("policy.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator() -> Any:
    # jsonschema-rs: the same Draft 2020-12 rules, ~100x faster than the pure-Python
    # validator on a 100k-credential policy (0.07 s instead of 10 s).
    return jsonschema_rs.validator_for(schema())


# Error kinds whose message names only keys, never the instance's values.
_KEY_ONLY_KINDS = frozenset({"AdditionalProperties", "Required"})


def _locate(doc: Any, path: list[Any]) -> tuple[str, str]:
    """The entity (``people/p-judy``) and field (``floors.B1``) an error path points at."""
    if len(path) >= 2 and path[0] in ENTITY_KINDS and isinstance(path[1], int):
        item = doc[path[0]][path[1]]
        key = entity_key(path[0], item) if isinstance(item, dict) else ""
        return f"{path[0]}/{key or '#' + str(path[1])}", ".".join(str(p) for p in path[2:]) or "-"
    if path and path[0] == "settings":
        return "settings", ".".join(str(p) for p in path[1:]) or "-"
    return "document", ".".join(str(p) for p in path) or "-"


def _schema_issues(doc: Any) -> list[PolicyIssue]:
    issues = []
    for err in _validator().iter_errors(doc):
        path = list(err.instance_path)
        kind = type(err.kind).__name__
        entity, field = _locate(doc, path)
        message = err.message
        secret_bearing = bool(path) and path[0] in ("credentials", "temp_keys")
        if kind == "AdditionalProperties":
            unexpected = sorted(getattr(err.kind, "unexpected", None) or _unexpected(message))
            field = ".".join([*([] if field == "-" else [field]), *unexpected[:1]]) or field
            message = f"unknown key(s) {', '.join(unexpected)}"
        elif kind.startswith("OneOf") and secret_bearing and len(path) == 2:
            name = "value" if path[0] == "credentials" else "code"
            message = f"give exactly one of {name} or {name}_hmac"
        elif _is_secret_field(path) or (secret_bearing and kind not in _KEY_ONLY_KINDS):
            message = f"{field} is not valid ({kind})"  # never echo a secret value
        issues.append(PolicyIssue(entity, field, message))
    return issues


def _unexpected(message: str) -> list[str]:
    names = re.findall(r"'([^']+)'", message)
    return names or ["?"]


def _is_secret_field(path: list[Any]) -> bool:
    return bool(path) and path[-1] in ("value", "code")


def _parse_dt(text: Any) -> datetime | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError
    return datetime.fromisoformat(text)


def _comparable(moment: datetime) -> datetime:
    # Naive times are site wall-clock; for ordering checks inside one document that is
    # good enough when both ends use the same form.
    return moment.replace(tzinfo=None) if moment.tzinfo is None else moment


class _Checker:
    """Collects semantic problems of one (schema-valid) document."""

    def __init__(
        self,
        doc: Mapping[str, Any],
        doors: Collection[str] | None,
        secret: bytes | None,
        known: Mapping[str, Any] | None = None,
    ) -> None:
        self.doc = doc
        self.known = doc if known is None else known  # ids that references may name
        self.doors = set(doors) if doors is not None else None
        self.secret = secret
        self.issues: list[PolicyIssue] = []
        self.ids: dict[str, set[str]] = {}

    def add(self, entity: str, field: str, message: str) -> None:
        self.issues.append(PolicyIssue(entity, field, message))

    def items(self, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for item in self.doc.get(kind) or []:
            yield f"{kind}/{entity_key(kind, item)}", item

    def run(self) -> list[PolicyIssue]:
        for kind in ENTITY_KINDS:
            seen: set[str] = set()
            for name, item in self.items(kind):
                key = entity_key(kind, item)
                if key in seen:
                    self.add(name, key_field(kind), f"duplicate {kind} key {key!r}")
                seen.add(key)
            known = self.known.get(kind)
            self.ids[kind] = seen | {
                entity_key(kind, e)
                for e in (known if isinstance(known, list) else [])
                if isinstance(e, dict)
            }
        self.settings()
        self.apartments()
        self.people()
        self.credentials()
        self.groups()
        self.temp_keys()
        self.reservations()
        self.holidays_and_hold_open()
        self.issues += policyrules.issues(self.doc, self.known, self.door_ref)
        return self.issues

    def door_ref(self, entity: str, field: str, door: str) -> None:
        if self.doors is not None and door not in self.doors:
            self.add(entity, field, f"door {door!r} is not in site.toml")

    def window(
        self, entity: str, start_field: str, end_field: str, item: Mapping[str, Any]
    ) -> None:
        try:
            start, end = _parse_dt(item.get(start_field)), _parse_dt(item.get(end_field))
        except (TypeError, ValueError):
            for field in (start_field, end_field):
                try:
                    _parse_dt(item.get(field))
                except (TypeError, ValueError):
                    self.add(entity, field, "not an ISO 8601 date-time")
            return
        if start and end and _comparable(start) >= _comparable(end):
            self.add(entity, end_field, f"{end_field} must be after {start_field}")

    def schedule(self, entity: str, sched: Mapping[str, Any]) -> None:
        if sched.get("repeat") == "never":
            self.window(entity, "schedule.start", "schedule.end", _prefixed(sched, "schedule."))

    def settings(self) -> None:
        emergency = (self.doc.get("settings") or {}).get("emergency") or {}
        for door in emergency.get("doors") or []:
            self.door_ref("settings", "emergency.doors", door)
        lockout = settings_of(self.doc)["lockout"]
        if lockout["max_lock_s"] < lockout["lock_s"]:
            self.add(
                "settings",
                "lockout.max_lock_s",
                "max_lock_s (the longest escalated lock) must be at least lock_s",
            )
        if lockout["max_per_hour"] < lockout["failures"]:
            self.add(
                "settings",
                "lockout.max_per_hour",
                "max_per_hour must be at least failures (else failures never applies)",
            )

    def apartments(self) -> None:
        numbers: dict[str, str] = {}
        for name, apt in self.items("apartments"):
            if apt["building"] not in self.ids["buildings"]:
                self.add(name, "building", f"building {apt['building']!r} does not exist")
            self.window(name, "valid_from", "valid_until", apt)
            number = apt.get("number")
            if number:
                if number in numbers:
                    self.add(
                        name, "number", f"apartment number {number!r} is also {numbers[number]}"
                    )
                numbers[number] = apt["id"]

    def people(self) -> None:
        for name, person in self.items("people"):
            apt = person.get("apartment")
            if apt is not None and apt not in self.ids["apartments"]:
                self.add(name, "apartment", f"apartment {apt!r} does not exist")
            if person["kind"] == "resident" and apt is None:
                self.add(name, "apartment", "a resident needs an apartment")
            for group in person.get("groups") or []:
                if group not in self.ids["groups"]:
                    self.add(name, "groups", f"group {group!r} does not exist")
            self.floors(name, person.get("floors") or {})
            self.window(name, "valid_from", "valid_until", person)

    def floors(self, name: str, floors: Mapping[str, list[str]]) -> None:
        for building, values in floors.items():
            if building not in self.ids["buildings"]:
                self.add(name, f"floors.{building}", f"building {building!r} does not exist")
            if len(values) > 10 and "all" not in values:
                self.add(name, f"floors.{building}", "at most 10 floors per building (or 'all')")
            for value in values:
                if _FLOOR_NUMBER.fullmatch(value) and not -10 <= int(value) <= 128:
                    self.add(name, f"floors.{building}", f"floor {value} is outside -10..128")

    def credentials(self) -> None:
        apartment_of = {
            p["id"]: p.get("apartment")
            for p in self.known.get("people") or []
            if isinstance(p, dict)
        }
        apt_mode = (self.doc.get("settings") or {}).get("pin_mode") == "apt_pin"
        seen: dict[tuple[Any, ...], str] = {}
        plates: dict[str, int] = {}
        for name, cred in self.items("credentials"):
            person = cred["person"]
            if person not in apartment_of:
                self.add(name, "person", f"person {person!r} does not exist")
            self.window(name, "valid_from", "valid_until", cred)
            kind = cred["kind"]
            if kind == "license_plate":
                plates[person] = plates.get(person, 0) + 1
                if plates[person] == MAX_PLATES_PER_PERSON + 1:
                    self.add(name, "person", f"a person has at most {MAX_PLATES_PER_PERSON} plates")
            key = self.value_key(name, kind, cred.get("value"), cred.get("value_hmac"))
            if key is None:
                continue
            scope = apartment_of.get(person) if (kind == "pin" and apt_mode) else None
            full = (scope, *key)
            if full in seen:  # never say whose: that would tell who holds this PIN
                what = "PIN" if kind == "pin" else f"{kind} value"
                where = " in this apartment" if scope else ""
                self.add(name, "value", f"this {what} is already taken{where}: choose another")
            else:
                seen[full] = name
        self.seen_values = seen
        if (self.doc.get("settings") or {}).get("duress"):
            self.duress_collisions(apartment_of if apt_mode else {})

    def duress_collisions(self, scope_of: Mapping[str, str | None]) -> None:
        """With duress on, a duress code (the PIN plus one) opens nothing else.

        It may not be another PIN (in ``apt_pin`` mode: of the same apartment), nor any
        temp-key code (temp keys match in every mode), and, on plaintext, may not start
        with 9, the temp keys' space (only 89, 899, ... 89999999 do): so issuing a temp
        key later never collides either. Codes are compared as HMACs when the secret is
        known or the entries are hashed, as plaintext otherwise; no message shows one.
        """
        pins: dict[tuple[str | None, str], str] = {}
        duress: dict[tuple[str | None, str], str] = {}  # (scope, code) -> credential
        duress_any: dict[str, str] = {}  # code -> credential, whatever its scope
        for name, cred in self.items("credentials"):
            if cred["kind"] != "pin":
                continue
            scope = scope_of.get(cred["person"])
            value = cred.get("value")
            forced_key: str | None
            if value is not None and _PIN.fullmatch(value):
                forced = duress_pin(value)
                if forced.startswith("9"):
                    self.add(
                        name,
                        "value",
                        "with duress on, a PIN's duress form (the PIN plus one) must not "
                        "start with 9, which is reserved for temp keys: choose another PIN",
                    )
                pin_key, forced_key = self.code_key(value), self.code_key(forced)
            elif value is None:
                pin_key, forced_key = cred["value_hmac"], cred.get("duress_hmac")
            else:
                continue  # a malformed PIN, reported by value_key
            pins[(scope, pin_key)] = name
            if forced_key is not None:
                duress[(scope, forced_key)] = name
                duress_any.setdefault(forced_key, name)
        for key, name in pins.items():
            if key in duress:
                self.add(name, "value", "this PIN is taken (another PIN's duress code)")
        for name, temp in self.items("temp_keys"):
            if temp["kind"] != "pin":
                continue
            code = temp.get("code")
            code_key = self.code_key(code) if code is not None else temp.get("code_hmac")
            if code_key in duress_any:
                self.add(name, "code", "this code is taken (a PIN's duress code): choose another")

    def code_key(self, pin: str) -> str:
        """How a PIN-space code is compared: its HMAC when the secret is known."""
        if self.secret is None:
            return pin
        try:
            return credential_hmac(self.secret, "pin", pin)
        except ValueError:  # malformed: value_key reports it
            return pin

    def value_key(
        self, name: str, kind: str, value: str | None, hashed: str | None, *, temp: bool = False
    ) -> tuple[Any, ...] | None:
        field = "code" if temp else "value"
        if value is None:
            return ("h", hashed)
        if kind == "pin":
            rule = _TEMP_PIN if temp else _PIN
            if not rule.fullmatch(value):
                text = (
                    "temp-key PIN must be 8 digits starting with 9"
                    if temp
                    else "PIN must be 2-8 digits and must not start with 9"
                )
                self.add(name, field, text)
                return None
        try:
            if self.secret is not None:
                return ("h", credential_hmac(self.secret, kind, value))
            return ("v", "pin" if kind == "pin" else kind, cards.normalise(kind, value))
        except ValueError as err:
            self.add(name, field, str(err))
            return None

    def groups(self) -> None:
        defaults: dict[str, str] = {}
        for name, group in self.items("groups"):
            building = group.get("building_default")
            if building is not None:
                if building not in self.ids["buildings"]:
                    self.add(name, "building_default", f"building {building!r} does not exist")
                elif building in defaults:
                    self.add(
                        name, "building_default", f"{building} already has {defaults[building]}"
                    )
                defaults[building] = group["id"]
            for door in group["doors"]:
                self.door_ref(name, "doors", door)
            self.schedule(name, group["schedule"])
        known_defaults = {
            g.get("building_default") for g in self.known.get("groups") or [] if isinstance(g, dict)
        }
        for building in sorted(self.ids["buildings"] - set(defaults) - known_defaults):
            self.add(
                f"buildings/{building}",
                "id",
                "every building needs its default group: add a group with "
                f'"building_default": "{building}" holding its public doors',
            )

    def temp_keys(self) -> None:
        max_days = (self.doc.get("settings") or {}).get("temp_key_max_days", 30)
        seen = getattr(self, "seen_values", {})
        for name, key in self.items("temp_keys"):
            apt = key.get("apartment")
            if apt is not None and apt not in self.ids["apartments"]:
                self.add(name, "apartment", f"apartment {apt!r} does not exist")
            for door in key["doors"]:
                self.door_ref(name, "doors", door)
            sched = key["schedule"]
            self.schedule(name, sched)
            if sched.get("repeat") == "never":
                try:
                    start, end = _parse_dt(sched["start"]), _parse_dt(sched["end"])
                except (TypeError, ValueError):
                    start = end = None
                if (
                    start
                    and end
                    and _comparable(end) - _comparable(start) > timedelta(days=max_days)
                ):
                    self.add(name, "schedule.end", f"a temp key lasts at most {max_days} days")
            vkey = self.value_key(
                name, key["kind"], key.get("code"), key.get("code_hmac"), temp=True
            )
            if vkey is not None:
                full = (None, *vkey)
                if full in seen:
                    self.add(name, "code", "this code is already taken: choose another")
                seen[full] = name

    def reservations(self) -> None:
        for name, res in self.items("reservations"):
            if res["person"] not in self.ids["people"]:
                self.add(name, "person", f"person {res['person']!r} does not exist")
            self.door_ref(name, "door", res["door"])
            self.window(name, "start", "end", res)

    def holidays_and_hold_open(self) -> None:
        for name, day in self.items("holidays"):
            try:
                date.fromisoformat(day["date"])
            except ValueError:
                self.add(name, "date", "not a calendar date (YYYY-MM-DD)")
        for name, hold in self.items("hold_open"):
            self.door_ref(name, "door", hold["door"])
            self.schedule(name, hold["schedule"])


def _prefixed(mapping: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {prefix + k: v for k, v in mapping.items()}


# -- decoding ------------------------------------------------------------------------------


def _entity_of(doc: Mapping[str, Any], path: list[str | int]) -> str | None:
    if len(path) >= 2 and path[0] in ENTITY_KINDS and isinstance(path[1], int):
        kind = str(path[0])
        item = doc[kind][path[1]]
        key = entity_key(kind, item) if isinstance(item, dict) else str(path[1])
        return f"{kind}/{key}"
    return None


def validate_document(
    doc: Any, *, doors: Collection[str] | None = None, secret: bytes | None = None
) -> list[PolicyIssue]:
    """Every problem of ``doc`` (schema, then semantic rules); ``[]`` when it is valid.

    ``doors``: the site's door ids, when known (the edge knows them, the cloud knows
    the inventory the site reported). ``secret``: when given, plaintext and hashed
    credentials are compared for uniqueness too.
    """
    if not isinstance(doc, dict):
        return [PolicyIssue("document", "-", "a policy document must be a JSON object")]
    issues = text_issues(doc, _entity_of)
    if issues:  # the schema validator and the messages below need real text
        return issues
    issues = _schema_issues(doc)
    if issues:
        # The semantic pass assumes the shapes the schema guarantees; report what the
        # schema found plus the semantic problems of the entities it did not flag.
        flagged = {i.entity for i in issues}
        partial = {
            k: [e for e in v if isinstance(e, dict) and f"{k}/{entity_key(k, e)}" not in flagged]
            if k in ENTITY_KINDS and isinstance(v, list)
            else v
            for k, v in doc.items()
            if k not in ENTITY_KINDS or isinstance(v, list)
        }
        if "settings" in flagged:
            partial.pop("settings", None)
        try:
            return issues + _Checker(partial, doors, secret, known=doc).run()
        except (KeyError, TypeError, AttributeError):
            return issues
    return _Checker(doc, doors, secret).run()


def check_document(
    doc: Any, *, doors: Collection[str] | None = None, secret: bytes | None = None
) -> None:
    """Raise PolicyError listing every problem of ``doc``; return quietly if valid."""
    issues = validate_document(doc, doors=doors, secret=secret)
    if issues:
        raise PolicyError(f"the policy has {len(issues)} problem(s)", issues)
