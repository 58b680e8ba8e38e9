"""What the ``doorkeep cloud ...`` commands do, as functions the CLI calls.

Each opens the store for one operation and closes it; the printed output (the code or
token *last*, so scripts can take the last line) is the CLI's job.
"""

from __future__ import annotations

import os

from cloud_sync.keys import CloudKeys
from cloud_sync.reconcile import SILENT_AFTER_S, ReconcileReport
from cloud_sync.reconcile import reconcile as run_reconcile
from cloud_sync.service import DEFAULT_KEY_DIR
from cloud_sync.store import CloudStore

DEFAULT_DB = "sqlite:///doorkeep-cloud.db"


def key_dir_default() -> str:
    """``$DOORKEEP_CLOUD_KEYS`` or ``./doorkeep-cloud-keys``."""
    return os.environ.get("DOORKEEP_CLOUD_KEYS", DEFAULT_KEY_DIR)


async def site_add(
    db_url: str = DEFAULT_DB, site_id: str = "", *, name: str = "", key_dir: str | None = None
) -> str:
    """``cloud site add ID``: create the site; its one-time enrollment code."""
    keys = CloudKeys.load(key_dir or key_dir_default())
    async with CloudStore(db_url, keys) as store:
        return await store.add_site(site_id, name)


async def site_code(db_url: str, site_id: str, *, key_dir: str | None = None) -> str:
    """``cloud site code ID``: a new one-time enrollment code (re-enrolling a gateway)."""
    keys = CloudKeys.load(key_dir or key_dir_default())
    async with CloudStore(db_url, keys) as store:
        return await store.new_enrollment_code(site_id)


async def token_create(
    db_url: str = DEFAULT_DB, *, name: str = "", key_dir: str | None = None
) -> str:
    """``cloud token create``: a new admin bearer token."""
    keys = CloudKeys.load(key_dir or key_dir_default())
    async with CloudStore(db_url, keys) as store:
        return await store.create_admin_token(name)


async def reconcile(
    db_url: str = DEFAULT_DB, *, key_dir: str | None = None, silent_after_s: float = SILENT_AFTER_S
) -> ReconcileReport:
    """``cloud reconcile``: one run of the job over every site; print ``report.table()``
    (or ``report.to_json()`` with ``--json``)."""
    keys = CloudKeys.load(key_dir or key_dir_default())
    async with CloudStore(db_url, keys) as store:
        return await run_reconcile(store, silent_after_s=silent_after_s)
