"""The credential kinds are listed once (doorkeep.policydoc); every copy is checked here."""

from __future__ import annotations

from doorkeep import policydoc
from edge.core import decide


def test_the_json_schema_enum_is_the_list_of_credential_kinds() -> None:
    schema = policydoc.schema()
    kinds = schema["properties"]["credentials"]["items"]["properties"]["kind"]["enum"]
    assert tuple(kinds) == policydoc.CREDENTIAL_KINDS


def test_the_decision_engine_accepts_exactly_the_credential_kinds() -> None:
    assert set(decide.PRESENTATION_KINDS) == set(policydoc.CREDENTIAL_KINDS)
