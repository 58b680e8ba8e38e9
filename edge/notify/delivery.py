"""Temp-key delivery: a new code for a visitor's key, emailed to the visitor, then stored.

PINs are hashed at rest, so a key's code can be sent only when it is made. Delivery
therefore always issues a code (generated, or given by the operator) and, in this order:

1. checks the key as it would be with the new code against the whole policy (nothing
   stored yet: a clash or a bad code is a 422 and nothing is sent);
2. sends the email (a server that refuses it is a 503 and nothing changes: the old code,
   if any, still works);
3. stores the key with the new code's HMAC (the old code stops working) and audits
   ``temp_keys.send`` with the recipient.

The clear code lives only in this call and in the email.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from doorkeep import policydoc
from doorkeep.errors import Conflict, NotFound, PolicyError
from edge.config.notify import email_problem
from edge.notify.transport import send_mail, utc_now
from edge.notify.visitor import new_code, temp_key_message

if TYPE_CHECKING:
    from edge.config import SiteConfig
    from edge.site.policy import SitePolicy
    from edge.store import EdgeStore

#: Fresh codes tried when a generated one happens to clash with another key's.
CODE_ATTEMPTS: Final = 5


class TempKeyDelivery:
    """``site.notify.temp_keys``: issue a temp key's code and email it to the visitor."""

    def __init__(
        self, config: SiteConfig, policy: SitePolicy, store: EdgeStore, secret: bytes
    ) -> None:
        self.config = config
        self.policy = policy
        self.store = store
        self.secret = secret

    async def send(
        self,
        key_id: str,
        to: str,
        *,
        actor: str,
        code: str | None = None,
        create: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Issue a code for temp key ``key_id`` (a new key when ``create`` is its body),
        email it to ``to`` and store it; the stored (hashed) key and the recipient."""
        smtp = self.config.notify.smtp if self.config.notify else None
        if smtp is None:
            raise Conflict(
                "temp keys are emailed through [notify.smtp] in site.toml, which is not "
                "configured (docs/notifications.md)"
            )
        problem = email_problem(to)
        if problem:
            raise _field_error(f"send_to {problem}", "send_to")
        if self.policy.owner == "cloud":
            raise Conflict(
                "this site's policy is managed by the cloud it is enrolled with: "
                "make the change there"
            )
        if create is not None:
            if _exists(self.policy, key_id):
                raise Conflict(f"temp_keys {key_id!r} already exists; use PUT to replace it")
            base = {k: v for k, v in create.items() if k not in ("send_to", "code_hmac")}
            code = code if code is not None else base.pop("code", None)
        else:
            base = self.policy.get_entity("temp_keys", key_id)
            base.pop("code_hmac", None)
        base["id"] = key_id
        if "kind" not in base:
            raise _field_error("a temp key needs its kind: pin or qr", "kind")
        entity, issued = await asyncio.to_thread(self._with_code, base, code)

        doors = {d.id: d.name for d in self.config.doors}
        mail = temp_key_message(
            entity,
            issued,
            site_name=self.config.site.name,
            door_names=[doors.get(d, d) for d in entity.get("doors") or []],
            tz_name=self.config.site.timezone,
            sender=smtp.sender,
            to=to,
            now=utc_now(),
        )
        await send_mail(smtp, mail)  # NotifyError (503): nothing stored, nothing changed
        stored = await self.policy.put_entity("temp_keys", key_id, entity, actor=actor)
        await self.store.audit(
            actor, "temp_keys.send", f"temp_keys/{key_id}", {"to": to, "new": create is not None}
        )
        return {"temp_key": stored, "sent_to": to}

    def _with_code(self, base: Mapping[str, Any], code: str | None) -> tuple[dict[str, Any], str]:
        """The key with a code that passes the whole policy's checks (off the loop)."""
        given = code is not None
        for _ in range(1 if given else CODE_ATTEMPTS):
            candidate = code if code is not None else new_code(str(base["kind"]))
            entity = {**copy.deepcopy(dict(base)), "code": candidate}
            try:
                self._check(entity)
            except PolicyError as err:
                clash = any(i.field == "code" for i in err.issues)
                if given or not clash:
                    raise
                continue
            return entity, candidate
        raise Conflict("could not find a free code for this temp key; try again")

    def _check(self, entity: Mapping[str, Any]) -> None:
        doc = self.policy.document()
        items = [t for t in doc.get("temp_keys") or [] if t.get("id") != entity["id"]]
        doc["temp_keys"] = [*items, dict(entity)]
        policydoc.check_document(
            doc, doors=frozenset(self.policy.snapshot.doors), secret=self.secret
        )


def _exists(policy: SitePolicy, key_id: str) -> bool:
    try:
        policy.get_entity("temp_keys", key_id)
    except NotFound:
        return False
    return True


def _field_error(message: str, field: str) -> ValueError:
    err = ValueError(message)
    err.field = field  # type: ignore[attr-defined]
    return err
