"""Import and export in the reference's templates (residents, RF cards/PINs, staff cards,
apartments), as pure functions over the policy document: the edge and the cloud both
call these, so there is one implementation.

``plan_import(kind, data, doc, secret=..., doors=...)`` reads an xlsx or csv file, checks
every row and returns the new *hashed* document with a summary (``doc`` None: nothing
changes), or raises :class:`ImportRejected` listing every problem as ``row N`` / column.
``export_table`` and ``template`` write files. docs/import-export.md has the rules.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from doorkeep.imports import people, residents
from doorkeep.imports.columns import EXPORT_KINDS, IMPORT_KINDS, MASK, TEMPLATE_KINDS
from doorkeep.imports.export import export_table, template
from doorkeep.imports.plan import ImportResult, Progress, Summary
from doorkeep.imports.sheets import FORMATS, MEDIA_TYPES, ImportRejected, format_of, read_rows

__all__ = [
    "EXPORT_KINDS",
    "FORMATS",
    "IMPORT_KINDS",
    "MASK",
    "MEDIA_TYPES",
    "TEMPLATE_KINDS",
    "ImportRejected",
    "ImportResult",
    "Progress",
    "Summary",
    "export_table",
    "format_of",
    "plan_import",
    "template",
]

_PLANNERS = {
    "residents": residents.plan,
    "cards": people.plan_cards,
    "staff": people.plan_staff,
}
_WHAT = {"residents": "residents", "cards": "RF card/PIN", "staff": "staff card"}


def plan_import(
    kind: str,
    data: bytes,
    doc: Mapping[str, Any],
    *,
    secret: bytes,
    doors: Collection[str] | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Check the file ``data`` against the site's hashed ``doc``; see the module doc."""
    if kind not in IMPORT_KINDS:
        raise ValueError(f"cannot import {kind!r}: residents, cards or staff")
    if progress is not None:
        progress("reading", 0, 0)
    rows = read_rows(data, IMPORT_KINDS[kind], what=_WHAT[kind])
    return _PLANNERS[kind](rows, doc, secret=secret, doors=doors, progress=progress)
