"""Credential values at rest: HMAC-SHA256 keys, duress forms, hashed documents.

Plaintext credential values exist only in a policy document on its way in; these
functions replace them at once (docs/credentials.md, docs/architecture.md). Part of the
policy document format: ``doorkeep.policydoc`` re-exports every name.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from doorkeep import cards
from doorkeep.credfacts import value_facts
from doorkeep.errors import PolicyError, PolicyIssue


def credential_hmac(secret: bytes, kind: str, value: str) -> str:
    """The at-rest key of a credential value: HMAC-SHA256 over ``kind:normalised``.

    Temp-key PINs share the ``pin`` namespace (they start with 9, people's PINs never do)
    and temp-key QR codes the ``qr`` one, so one lookup finds either.
    """
    norm = cards.normalise(kind, value)
    space = "pin" if kind == "pin" else kind
    return hmac.new(secret, f"{space}:{norm}".encode(), hashlib.sha256).hexdigest()


def duress_pin(pin: str) -> str:
    """The duress form of a PIN: the PIN plus one, same length (1234 -> 1235)."""
    return str(int(pin) + 1).zfill(len(pin))


def hash_document(doc: Mapping[str, Any], secret: bytes) -> dict[str, Any]:
    """A copy of ``doc`` with every plaintext credential replaced by its HMAC.

    Raises PolicyError (with every problem) when a value cannot be normalised; the
    messages never repeat a value.
    """
    out = copy.deepcopy(dict(doc))
    issues: list[PolicyIssue] = []
    for cred in out.get("credentials") or []:
        if "value" not in cred:
            continue
        value = cred.pop("value")
        try:
            cred["value_hmac"] = credential_hmac(secret, cred["kind"], value)
            cred["value_facts"] = value_facts(cred["kind"], value)
            if cred["kind"] == "pin":
                cred["duress_hmac"] = credential_hmac(secret, "pin", duress_pin(value))
        except (ValueError, KeyError) as err:
            issues.append(PolicyIssue(f"credentials/{cred.get('id')}", "value", str(err)))
    for key in out.get("temp_keys") or []:
        if "code" not in key:
            continue
        code = key.pop("code")
        try:
            key["code_hmac"] = credential_hmac(secret, key["kind"], code)
        except (ValueError, KeyError) as err:
            issues.append(PolicyIssue(f"temp_keys/{key.get('id')}", "code", str(err)))
    if issues:
        raise PolicyError(f"{len(issues)} credential value(s) are malformed", issues)
    return out
