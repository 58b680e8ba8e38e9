"""The stored policy: hashed entities, settings and the header (version, digest, owner).

A change is checked here before it reaches the writer (``check_change``) and then
written with its audit rows in one transaction (``write_change``).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from doorkeep import policydoc
from doorkeep.errors import PolicyError, PolicyIssue
from edge.store import _audit, _schema
from edge.store._chain import StoreError
from edge.store._db import dumps, get_meta, meta_int, open_read_only, set_meta

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime

# Entity fields that would hold plaintext secrets; a hashed policy has *_hmac instead.
_PLAINTEXT_FIELDS: Mapping[str, str] = {"credentials": "value", "temp_keys": "code"}


@dataclass(frozen=True, slots=True)
class PolicyState:
    """The stored (hashed) policy document and its header."""

    doc: dict[str, Any]
    version: int
    digest: str
    owner: Literal["local", "cloud"]


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """A checked change, ready for the writer: rows to upsert and keys to delete."""

    rows: list[tuple[str, str, str]]
    delete_rows: list[tuple[str, str]]
    settings_json: str | None
    replace: bool
    version: int
    digest: str
    owner: str | None
    audit: list[_audit.AuditEntry]


def load(conn: sqlite3.Connection) -> PolicyState:
    """The stored hashed policy document with its version, digest and owner."""
    doc = policydoc.empty_document()
    settings = get_meta(conn, "policy_settings")
    if settings is not None:
        doc["settings"] = json.loads(settings)
    for kind, body in conn.execute("SELECT kind, body FROM policy_entity ORDER BY rowid"):
        doc.setdefault(kind, []).append(json.loads(body))
    owner = get_meta(conn, "policy_owner", "local")
    return PolicyState(
        doc=doc,
        version=meta_int(conn, "policy_version"),
        digest=get_meta(conn, "policy_digest", "") or "",
        owner="cloud" if owner == "cloud" else "local",
    )


def header(conn: sqlite3.Connection) -> tuple[int, str]:
    """The committed (version, digest)."""
    return meta_int(conn, "policy_version"), get_meta(conn, "policy_digest", "") or ""


def check_change(
    *,
    upserts: Mapping[str, list[dict[str, Any]]],
    deletes: Mapping[str, list[str]],
    settings: Mapping[str, Any] | None,
    replace: bool,
    version: int,
    digest: str,
    owner: str | None,
    audit: list[_audit.AuditEntry],
) -> PolicyChange:
    """The change as rows, or PolicyError naming every problem (nothing is written then)."""
    issues: list[PolicyIssue] = []
    rows: list[tuple[str, str, str]] = []
    for kind, entities in upserts.items():
        if kind not in policydoc.ENTITY_KINDS:
            issues.append(PolicyIssue(kind, "", "unknown entity kind"))
            continue
        for entity in entities:
            key = policydoc.entity_key(kind, entity)
            if not key:
                issues.append(PolicyIssue(f"{kind}/?", "id", "entity has no key"))
                continue
            secret_field = _PLAINTEXT_FIELDS.get(kind)
            if secret_field and secret_field in entity:
                issues.append(
                    PolicyIssue(
                        f"{kind}/{key}",
                        secret_field,
                        "plaintext value reached the store; hash the document first",
                    )
                )
                continue
            rows.append((kind, key, dumps(entity)))
    issues.extend(
        PolicyIssue(kind, "", "unknown entity kind")
        for kind in deletes
        if kind not in policydoc.ENTITY_KINDS
    )
    if owner not in (None, "local", "cloud"):
        issues.append(PolicyIssue("policy", "owner", f"{owner!r} is not local or cloud"))
    if issues:
        raise PolicyError(f"{len(issues)} problem(s) in the policy change", issues)
    return PolicyChange(
        rows=rows,
        delete_rows=[(kind, str(key)) for kind, keys in deletes.items() for key in keys],
        settings_json=None if settings is None else dumps(dict(settings)),
        replace=replace,
        version=version,
        digest=digest,
        owner=owner,
        audit=audit,
    )


def write_change(
    conn: sqlite3.Connection, change: PolicyChange, clock: Callable[[], datetime]
) -> None:
    """Apply a checked change and its audit rows. Runs on the writer thread."""
    if change.replace:
        conn.execute("DELETE FROM policy_entity")
    conn.executemany("DELETE FROM policy_entity WHERE kind = ? AND key = ?", change.delete_rows)
    conn.executemany(
        "INSERT INTO policy_entity (kind, key, body) VALUES (?, ?, ?) "
        "ON CONFLICT(kind, key) DO UPDATE SET body = excluded.body",
        change.rows,
    )
    if change.settings_json is not None:
        set_meta(conn, "policy_settings", change.settings_json)
    set_meta(conn, "policy_version", int(change.version))
    set_meta(conn, "policy_digest", change.digest)
    if change.owner is not None:
        set_meta(conn, "policy_owner", change.owner)
    for entry in change.audit:
        _audit.insert(conn, entry, clock())


def read_only(path: Path) -> PolicyState | None:
    """The stored policy of the database at ``path``, read without writing anything
    (``doorkeep check``); None when there is no database yet."""
    if not path.exists():
        return None
    conn = open_read_only(path)
    try:
        version = _schema.current_version(conn)
        if version > _schema.LATEST:
            raise _schema.SchemaTooNewError(
                f"{path}: database schema version {version} is newer than this doorkeep "
                f"supports ({_schema.LATEST}); upgrade doorkeep or restore an older backup"
            )
        return load(conn)
    except sqlite3.DatabaseError as err:
        raise StoreError(f"{path}: cannot be read: {err}") from err
    finally:
        conn.close()
