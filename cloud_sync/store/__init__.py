"""The cloud store: sites, policies, deltas, events and alarms, in SQLite or PostgreSQL.

``async with CloudStore(url, keys) as store``. Workers are stateless: everything lives
here, and a policy change wakes long-polling workers through PostgreSQL ``LISTEN/NOTIFY``
(every worker process) or an in-process asyncio wake-up (SQLite: one process).

What is never stored in clear: site HMAC secrets and plaintext credential values are
AES-GCM sealed under the key file (see ``cloud_sync.keys``); tokens and enrollment codes
are stored as SHA-256 hashes.

The rooms, each over one :class:`Database` (engine, connections, migrations, wake-ups):

- ``_schema``: the tables and the ordered migrations;
- ``_sites``: :class:`SiteRegistry`, admin tokens, site credentials, status and reports;
- ``_enroll``: :class:`Enroller`, adding sites and trading a one-time code once;
- ``_policy``: :class:`PolicyStore`, versions, deltas and signed bundles;
- ``_events``: :class:`EventLog`, exactly-once ingest keyed ``(site, epoch, seq)``;
- ``_alarms``: :class:`AlarmLog`;
- ``_cloudstore``: :class:`CloudStore`, which holds them all.

Tunables live with the code that reads them (tests patch them there):
``_policy.DELTA_RETENTION``, ``_enroll.ENROLL_CODE_TTL_S``, ``_db.LISTEN_BACKOFF``.
"""

from cloud_sync.store._alarms import AlarmLog
from cloud_sync.store._cloudstore import CloudStore
from cloud_sync.store._db import Database, Notifier, engine_url
from cloud_sync.store._enroll import SITE_ID, Enroller
from cloud_sync.store._events import EventLog, IngestResult, event_hash
from cloud_sync.store._policy import PolicyStore
from cloud_sync.store._schema import (
    MIGRATIONS,
    SchemaTooNewError,
    admin_tokens,
    alarms,
    epochs,
    event_ts,
    events,
    metadata,
    policies,
    policy_deltas,
    schema_version,
    sites,
)
from cloud_sync.store._sites import SiteRegistry

__all__ = [
    "MIGRATIONS",
    "SITE_ID",
    "AlarmLog",
    "CloudStore",
    "Database",
    "Enroller",
    "EventLog",
    "IngestResult",
    "Notifier",
    "PolicyStore",
    "SchemaTooNewError",
    "SiteRegistry",
    "admin_tokens",
    "alarms",
    "engine_url",
    "epochs",
    "event_hash",
    "event_ts",
    "events",
    "metadata",
    "policies",
    "policy_deltas",
    "schema_version",
    "sites",
]
