"""What a notification says: pure functions from alarms and events to messages.

No I/O here. An alarm record or a recovery event becomes a ``Notice`` (a title and a few
labelled lines, nothing else); notices become an email (``email_message``) or a webhook
body (``webhook_body``); many notices become one digest. Only the fields in
``SAFE_DETAIL`` ever leave the site, so no notification can carry a PIN, a card number or
a hash of one whatever an alarm's detail holds (docs/security.md). The one message that
carries a code is the visitor's own temp-key email (``temp_key_message``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Final
from zoneinfo import ZoneInfo

#: Alarm kinds in words (the title of a message).
TITLES: Final[Mapping[str, str]] = {
    "board_offline": "Relay board offline",
    "relay_failed": "Door relay not confirming",
    "forced_open": "Door forced open",
    "held_open": "Door held open",
    "held_open_warning": "Door about to be held open too long",
    "emergency": "Emergency unlock",
    "lockdown": "Lockdown",
    "tamper": "Tamper input active",
    "alarm": "Alarm input active",
    "duress": "Duress code used",
    "pin_guessing": "PIN guessing at a reader",
    "clock": "Clock not trusted",
    "storage_unavailable": "Storage was unavailable",
    "policy_stale": "Policy stale (no contact with the cloud)",
    "bundle_rejected": "Policy update rejected",
    "notify_failed": "Notifications failing",
}

#: Recovery events -> the alarm kind they end (one message when a link breaks, one when
#: it recovers). The notifier's own recovery is ``notify_recovered``.
RECOVERIES: Final[Mapping[str, str]] = {
    "board_online": "board_offline",
    "relay_recovered": "relay_failed",
    "clock_trusted": "clock",
}
RECOVERY_TITLES: Final[Mapping[str, str]] = {
    "board_online": "Relay board back online",
    "relay_recovered": "Door relay confirming again",
    "clock_trusted": "Clock trusted again",
    "notify_recovered": "Notifications delivered again",
}

#: Alarm/event detail keys a notification may show: ids, counts, times and reasons.
#: Anything else in a detail (now or added later) stays on the site.
SAFE_DETAIL: Final = frozenset({
    "board",
    "channel",
    "door",
    "reader",
    "input",
    "function",
    "action",
    "actor",
    "person",
    "problem",
    "wall",
    "expected",
    "wrong_pins_last_hour",
    "lockouts",
    "locked_until",
    "dropped",
    "since",
    "message",
    "error",
    "channel_name",
    "held",
})  # fmt: skip
#: Longest text value shown from a detail (a message, an error).
MAX_VALUE = 200
#: A digest lists this many notices; the rest are counted.
DIGEST_LINES = 50


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing worth telling: ``kind`` (an alarm kind or recovery event), a title,
    when (site time), and labelled lines, every one of them safe to send."""

    kind: str
    title: str
    at: str
    lines: tuple[tuple[str, str], ...] = ()
    recovery: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "at": self.at,
            "recovery": self.recovery,
            "fields": dict(self.lines),
        }

    def text(self) -> str:
        head = f"{self.at}  {self.title}"
        return "\n".join([head, *(f"    {k}: {v}" for k, v in self.lines)])


@dataclass(frozen=True, slots=True)
class Message:
    """What a channel sends: a subject, the notices, and whether it is a digest."""

    subject: str
    notices: tuple[Notice, ...]
    digest: bool = False
    note: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def body(self) -> str:
        parts = [self.note] if self.note else []
        shown = self.notices[:DIGEST_LINES]
        parts.extend(n.text() for n in shown)
        if len(self.notices) > len(shown):
            parts.append(f"... and {len(self.notices) - len(shown)} more (see the alarm log)")
        return "\n\n".join(parts) + "\n"


def _value(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None if value is None else str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value[:MAX_VALUE]
    return None  # lists and objects stay on the site


def safe_lines(detail: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """The allowed keys of a detail, scalars only, in a stable order."""
    out = []
    for key in sorted(detail or {}):
        if key in SAFE_DETAIL:
            shown = _value((detail or {})[key])
            if shown is not None:
                out.append((key, shown))
    return tuple(out)


def _local(at: str | None, tz: ZoneInfo) -> str:
    if not at:
        return ""
    try:
        return datetime.fromisoformat(at).astimezone(tz).isoformat(timespec="seconds")
    except ValueError:
        return at[:40]


def alarm_notice(alarm: Mapping[str, Any], tz: ZoneInfo) -> Notice:
    """The notice of an alarm record (the store's row: id, kind, source, at, detail)."""
    kind = str(alarm.get("kind", "alarm"))
    lines = [("alarm", str(alarm.get("id", ""))), ("source", str(alarm.get("source", ""))[:64])]
    lines.extend(safe_lines(alarm.get("detail")))
    return Notice(kind, TITLES.get(kind, kind.replace("_", " ").capitalize()), _local(
        alarm.get("at"), tz), tuple(lines))  # fmt: skip


def recovery_notice(event: Mapping[str, Any], tz: ZoneInfo) -> Notice:
    """The notice of a recovery event (``board_online``, ``clock_trusted``, ...)."""
    action = str(event.get("action", ""))
    lines = []
    if event.get("door"):
        lines.append(("door", str(event["door"])))
    lines.extend(safe_lines(event.get("detail")))
    title = RECOVERY_TITLES.get(action, action.replace("_", " ").capitalize())
    return Notice(action, title, _local(event.get("at"), tz), tuple(lines), recovery=True)


def single(site_name: str, notice: Notice) -> Message:
    """One notice as its own message."""
    state = "recovered" if notice.recovery else "alarm"
    return Message(f"[{site_name}] {state}: {notice.title}", (notice,))


def digest(site_name: str, notices: Sequence[Notice], *, dropped: int = 0, why: str) -> Message:
    """Many notices as one message (after the rate limit, or held during an outage)."""
    counts: dict[str, int] = {}
    for n in notices:
        counts[n.title] = counts.get(n.title, 0) + 1
    summary = ", ".join(f"{c} x {t}" for t, c in counts.items())
    total = len(notices) + dropped
    note = f"{why}\n{total} notifications: {summary}"
    if dropped:
        note += f" (and {dropped} not kept: the queue was full)"
    return Message(
        f"[{site_name}] digest: {total} notifications", tuple(notices), digest=True, note=note
    )


def merge(site_name: str, messages: Iterable[Message], *, why: str) -> Message:
    """Messages a channel could not deliver, as one digest."""
    notices = [n for m in messages for n in m.notices]
    return digest(site_name, notices, why=why)


def email_message(
    message: Message, *, sender: str, to: Sequence[str], now: datetime
) -> EmailMessage:
    """An alarm/digest email (plain text: nothing to render, nothing remote to load)."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = ", ".join(to)
    mail["Subject"] = message.subject
    mail["Date"] = format_datetime(now)
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(message.body())
    return mail


def webhook_body(message: Message, *, site: str, now: datetime) -> bytes:
    """The JSON a webhook receives (compact, UTF-8)."""
    payload = {
        "site": site,
        "sent_at": now.isoformat(timespec="seconds"),
        "subject": message.subject,
        "digest": message.digest,
        "note": message.note,
        "notices": [n.as_dict() for n in message.notices],
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """``X-Doorkeep-Signature``: ``sha256=`` hex HMAC over ``<timestamp>.<body>``.

    The receiver recomputes it with the shared key and compares in constant time; the
    timestamp (``X-Doorkeep-Timestamp``, seconds) lets it refuse a replayed request.
    """
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()
