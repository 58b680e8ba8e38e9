"""The edge's side of the cloud link: enrollment, and the sync client wired to the site.

``cloud_sync`` is a library that never imports ``edge``; this module hands it the
site's policy state, its event outbox and a way to install verified bundles.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloud_sync.bundle import VerifiedBundle
from cloud_sync.client import Enrollment, SyncClient, enroll
from doorkeep import policydoc
from doorkeep.errors import ConfigError, SyncError
from edge.config import SiteConfig, write_site_toml
from edge.service import SECRET_FILE
from edge.store import AuditEntry, EdgeStore

if TYPE_CHECKING:
    from edge.service import Site

log = logging.getLogger(__name__)

ENROLLMENT_FILE = Path("keys") / "cloud.json"
STALE_AFTER_S = 3600.0


def enrollment_path(config: SiteConfig) -> Path:
    return config.site.data_dir / ENROLLMENT_FILE


def load_enrollment(config: SiteConfig) -> Enrollment:
    path = enrollment_path(config)
    try:
        return Enrollment.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise ConfigError(
            f"{config.path}: [cloud] is set but {path} is missing; run `doorkeep enroll URL CODE`"
        ) from None


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)


async def enroll_site(config: SiteConfig, url: str, code: str) -> dict[str, Any]:
    """Pair the site with a cloud: pin its key, hand it the policy, agree on the secret.

    A site that already has a policy offers it, with the HMAC secret it is hashed under,
    for the cloud to adopt (people, credentials as HMACs, groups, temp keys; their uses
    travel as the events the site uploads). When the cloud adopts it, nothing changes
    here but the owner: the same secret, the same document, and the first poll brings a
    snapshot of that same document at a version above the site's. When the cloud keeps
    its own policy (it had one already), the site takes the cloud's secret (the old one
    kept as ``site.secret.pre-enroll``) and the first poll installs the cloud's policy.
    """
    data = config.site.data_dir
    secret_path = data / SECRET_FILE
    async with EdgeStore.open(data / "doorkeep.db", site_id=config.site.id) as store:
        state = store.load_policy()
    adopt = None
    if secret_path.exists() and any(state.doc.get(k) for k in policydoc.ENTITY_KINDS):
        adopt = {
            "secret": secret_path.read_text().strip(),
            "document": dict(state.doc),
            "version": state.version,
        }
    enrollment = await enroll(url, code, adopt=adopt)
    if enrollment.site_id != config.site.id:
        raise SyncError(
            f"the code belongs to cloud site {enrollment.site_id!r}, but this is site "
            f"{config.site.id!r}: add the site with that id in the cloud, or use its code"
        )
    _write_private(enrollment_path(config), json.dumps(enrollment.as_dict()))
    same_secret = secret_path.exists() and secret_path.read_text().strip() == enrollment.secret
    if not same_secret:
        if secret_path.exists():
            secret_path.replace(secret_path.with_name("site.secret.pre-enroll"))
        _write_private(secret_path, enrollment.secret)
    raw = json.loads(json.dumps(dict(config.raw)))
    raw["cloud"] = {"url": enrollment.url}
    write_site_toml(config.path, raw)
    await _set_owner(
        config,
        "cloud",
        AuditEntry(
            "cli",
            "site.enroll",
            "policy",
            {"cloud": enrollment.url, "key_id": enrollment.key_id, "adopted": same_secret},
        ),
    )
    return {
        "site_id": enrollment.site_id,
        "url": enrollment.url,
        "key_id": enrollment.key_id,
        "adopted": same_secret,
    }


async def _set_owner(config: SiteConfig, owner: str, audit: AuditEntry) -> None:
    data = config.site.data_dir
    async with EdgeStore.open(data / "doorkeep.db", site_id=config.site.id) as store:
        state = store.load_policy()
        await store.apply_policy_change(
            upserts={},
            deletes={},
            settings=None,
            replace=False,
            version=state.version,
            digest=state.digest,
            owner=owner,
            audit=[audit],
        )


async def unenroll_site(config: SiteConfig) -> dict[str, Any]:
    """Leave the cloud: the site keeps the policy it last received (and the secret it is
    hashed under), and edits it locally again. The cloud credential is set aside as
    ``cloud.json.unenrolled``; the cloud keeps its copy until the site is deleted or
    enrolled again with a new code."""
    path = enrollment_path(config)
    url = None
    if path.exists():
        url = json.loads(path.read_text()).get("url")
        path.replace(path.with_name("cloud.json.unenrolled"))
    raw = json.loads(json.dumps(dict(config.raw)))
    raw.pop("cloud", None)
    write_site_toml(config.path, raw)
    await _set_owner(config, "local", AuditEntry("cli", "site.unenroll", "policy", {"cloud": url}))
    return {"site_id": config.site.id, "url": url}


class _State:
    def __init__(self, site: Site) -> None:
        self.site = site

    def version(self) -> int:
        return self.site.snapshot.version if self.site.policy.owner == "cloud" else 0

    def digest(self) -> str | None:
        return self.site.snapshot.digest or None


class _Outbox:
    def __init__(self, store: EdgeStore) -> None:
        self.store = store
        self.epoch = store.epoch

    async def batch_above(self, seq: int, limit: int) -> list[dict[str, Any]]:
        return await self.store.events_above(seq, limit)

    async def acknowledged(self, seq: int) -> None:
        if seq > self.store.acknowledged():
            await self.store.set_acknowledged(seq)


class SyncLink:
    """What the site sees of the sync client (``site.sync``)."""

    def __init__(self, client: SyncClient) -> None:
        self.client = client

    def poke(self) -> None:
        self.client.poke()

    def status(self) -> dict[str, Any]:
        last = self.client.last_contact
        return {
            "stale": self.client.stale,
            "last_contact": None if last is None else datetime.fromtimestamp(last, UTC).isoformat(),
            "acknowledged": self.client.acked,
            "rejected": list(self.client.rejected[-5:]),
        }


async def start_sync(site: Site, stack: contextlib.AsyncExitStack) -> SyncLink:
    """Run the sync client for ``site`` inside ``stack``; sets ``site.sync``."""
    enrollment = load_enrollment(site.config)

    async def apply_bundle(bundle: VerifiedBundle) -> None:
        current = site.policy_document() if bundle.kind == "delta" else {}
        new_doc = bundle.apply_to(current)
        await site.policy.install(
            new_doc, version=bundle.version, digest=bundle.digest, actor="cloud"
        )

    async def on_alarm(kind: str, message: str) -> None:
        await site.log.raise_alarm(kind, source="cloud", detail={"message": message})

    def inventory() -> dict[str, Any]:
        cfg = site.config
        return {
            "timezone": cfg.site.timezone,
            "doors": [d.id for d in cfg.doors],
            "readers": [r.id for r in cfg.readers],
            "boards": [{"id": b.id, "type": b.type} for b in cfg.boards],
            "version": site.version,
        }

    client = SyncClient(
        enrollment.url,
        enrollment,
        state=_State(site),
        apply_bundle=apply_bundle,
        outbox=_Outbox(site.store),
        inventory=inventory,
        on_alarm=on_alarm,
        stale_after_s=STALE_AFTER_S,
    )
    await stack.enter_async_context(client)
    link = SyncLink(client)
    site.sync = link
    site.clock_guard.vouchers.append(client.vouches_for)  # signed cloud time confirms
    return link
