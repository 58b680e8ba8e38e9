"""The edge store: the site's SQLite database (see docs/storage.md).

``EdgeStore`` is the one public entry point; open it with
``async with EdgeStore.open(path, site_id=...) as store``.
"""

from edge.store._audit import AuditEntry
from edge.store._chain import (
    SensitiveDataError,
    StoreError,
    StoreQueryError,
    cursor_pattern,
    event_hash,
    genesis_hash,
)
from edge.store._events import ChainReport, Scope
from edge.store._outage import STORAGE_ALARM
from edge.store._policy import PolicyState
from edge.store._policy import read_only as read_policy
from edge.store._schema import LATEST as SCHEMA_VERSION
from edge.store._schema import SchemaTooNewError
from edge.store._store import EdgeStore
from edge.store._writer import StorageStatus, StorageUnavailable

__all__ = [
    "SCHEMA_VERSION",
    "STORAGE_ALARM",
    "AuditEntry",
    "ChainReport",
    "EdgeStore",
    "PolicyState",
    "SchemaTooNewError",
    "Scope",
    "SensitiveDataError",
    "StorageStatus",
    "StorageUnavailable",
    "StoreError",
    "StoreQueryError",
    "cursor_pattern",
    "event_hash",
    "genesis_hash",
    "read_policy",
]
