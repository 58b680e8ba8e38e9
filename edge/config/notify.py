"""``[notify]``: where alarm notifications go (email, a webhook) and how many per minute.

```toml
[notify]
email_to = ["pm@example.org"]      # alarm recipients
alarms = ["board_offline", "forced_open", "held_open", "duress"]   # default: every kind
max_per_minute = 6                 # messages per minute; the rest go into one digest

[notify.smtp]                      # needed for email_to and for temp-key delivery
host = "smtp.example.org"
port = 587
security = "starttls"              # starttls | tls | none (none: loopback hosts only)
username = "doorkeep@example.org"
password_file = "keys/smtp.password"   # relative to data_dir; mode 0600
from = "doorkeep@example.org"

[notify.webhook]
url = "https://hooks.example.org/doorkeep"   # https, or http to a loopback address
secret_file = "keys/webhook.secret"          # HMAC key; made (0600) on first start
```

Secrets never live in site.toml (it is shown by ``GET /hardware`` and kept in backups of
the config): the SMTP password and the webhook key are files with mode 0600. This module
owns its keys, values and checks; ``validate`` calls :func:`check_notify` once.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from edge.config.keys import BOOL, INT, LIST, STR, Key, _between, _nonempty, _one_of

#: Every alarm kind the site raises today (grep raise_alarm), in the order docs list them.
ALARM_KINDS: Final = (
    "board_offline",
    "relay_failed",
    "forced_open",
    "held_open",
    "held_open_warning",
    "emergency",
    "lockdown",
    "tamper",
    "alarm",
    "duress",
    "pin_guessing",
    "clock",
    "storage_unavailable",
    "policy_stale",
    "bundle_rejected",
)
SECURITY: Final = ("starttls", "tls", "none")
DEFAULT_PASSWORD_FILE: Final = Path("keys") / "smtp.password"
DEFAULT_WEBHOOK_SECRET: Final = Path("keys") / "webhook.secret"

#: A plain address (what an SMTP envelope carries); display names are not accepted.
EMAIL_RE: Final = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
)


def email_problem(value: Any) -> str | None:
    """What is wrong with an email address (phrased to follow "must"), or None."""
    if isinstance(value, str) and len(value) <= 254 and EMAIL_RE.fullmatch(value):
        return None
    return 'must be an email address like "pm@example.org"'


def _emails(v: Any) -> str | None:
    bad = [x for x in v if email_problem(x)]
    if bad or not v:
        first = f"; {bad[0]!r} is not one" if bad else ""
        return f'must be a list of email addresses like ["pm@example.org"]{first}'
    return None


def _alarm_kinds(v: Any) -> str | None:
    bad = [x for x in v if x not in ALARM_KINDS]
    if bad:
        return f"must list alarm kinds from {', '.join(ALARM_KINDS)}; {bad[0]!r} is not one"
    return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine (``localhost`` or a loopback address)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _webhook_url(v: Any) -> str | None:
    try:
        parts = urlsplit(v)
        port_ok = parts.port is None or 1 <= parts.port <= 65535
    except ValueError:
        return 'must be a URL like "https://hooks.example.org/doorkeep"'
    if not parts.hostname or not port_ok or parts.username or parts.password:
        return 'must be a URL like "https://hooks.example.org/doorkeep" (no user:password@)'
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname)):
        return None
    return "must be https:// (plain http:// only to a loopback address like 127.0.0.1)"


TABLES: Final[dict[str, dict[str, Key]]] = {
    "notify": {
        "email_to": Key(LIST, None, _emails),
        "alarms": Key(LIST, None, _alarm_kinds),
        "max_per_minute": Key(INT, 6, _between(1, 600)),
        "smtp": Key((dict,), None),
        "webhook": Key((dict,), None),
    },
    "notify.smtp": {
        "host": Key(STR, check=_nonempty),
        "port": Key(INT, None, _between(1, 65535)),
        "security": Key(STR, "starttls", _one_of(SECURITY)),
        "username": Key(STR, None, _nonempty),
        "password_file": Key(STR, None, _nonempty),
        "from": Key(STR, check=email_problem),
        "timeout_s": Key(INT, 10, _between(1, 120)),
        "verify_tls": Key(BOOL, default=True),
    },
    "notify.webhook": {
        "url": Key(STR, check=_webhook_url),
        "secret_file": Key(STR, None, _nonempty),
        "timeout_s": Key(INT, 10, _between(1, 120)),
    },
}


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """``[notify.smtp]``: the mail server, and where its password is (never the password)."""

    host: str
    port: int
    security: str
    sender: str
    username: str | None = None
    password_file: Path | None = None
    timeout_s: int = 10
    verify_tls: bool = True

    def __post_init__(self) -> None:
        if self.security not in SECURITY:
            raise ValueError(f"smtp security {self.security!r} is not one of {SECURITY}")

    def password(self) -> str | None:
        """The password, read from its file now (so a new one needs no restart)."""
        if self.username is None or self.password_file is None:
            return None
        return self.password_file.read_text(encoding="utf-8").strip()


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """``[notify.webhook]``: a URL that gets each notification as signed JSON."""

    url: str
    secret_file: Path
    timeout_s: int = 10


@dataclass(frozen=True, slots=True)
class NotifySection:
    """``[notify]``: recipients, the alarm kinds that notify, the rate, the channels."""

    email_to: tuple[str, ...] = ()
    alarms: frozenset[str] = frozenset(ALARM_KINDS)
    max_per_minute: int = 6
    smtp: SmtpSettings | None = None
    webhook: WebhookSettings | None = None


#: How ``check_notify`` reports: (where, key, message), as ``_Validator.add``.
Report = Callable[[str, str | None, str], None]
#: How it checks one table against its keys: ``_Validator.table`` with a key table.
CheckTable = Callable[[Mapping[str, Key], str, Any], dict[str, Any]]


def check_notify(raw: Any, data_dir: Path, table: CheckTable, add: Report) -> NotifySection | None:
    """Validate ``[notify]``, every problem reported through ``add``.

    The section is built from what passed; the caller uses it only when nothing was
    reported (a refused value is None here and must not crash the build).
    """
    top = table(TABLES["notify"], "[notify]", raw)
    smtp = webhook = None
    if isinstance(top["smtp"], Mapping):
        smtp = _smtp(table(TABLES["notify.smtp"], "[notify.smtp]", top["smtp"]), data_dir, add)
    if isinstance(top["webhook"], Mapping):
        values = table(TABLES["notify.webhook"], "[notify.webhook]", top["webhook"])
        webhook = _webhook(values, data_dir, add)
    if top["email_to"] and top["smtp"] is None:
        add("[notify]", "email_to", "needs a [notify.smtp] table to send through")
    return NotifySection(
        email_to=tuple(top["email_to"] or ()),
        alarms=frozenset(top["alarms"] if top["alarms"] is not None else ALARM_KINDS),
        max_per_minute=top["max_per_minute"] or 6,
        smtp=smtp,
        webhook=webhook,
    )


def _secret_path(value: str | None, default: Path, data_dir: Path) -> Path:
    path = Path(value) if value is not None else default
    return path if path.is_absolute() else data_dir / path


def _private(where: str, key: str, path: Path, add: Report) -> None:
    """A secret file, when it exists, is readable by its owner only."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as err:
        add(where, key, f"{path} cannot be read: {err}")
        return
    if mode & 0o077:
        add(where, key, f"{path} is readable by others (mode {mode & 0o777:o}): chmod 600 {path}")


def _smtp(v: dict[str, Any], data_dir: Path, add: Report) -> SmtpSettings | None:
    where = "[notify.smtp]"
    password_file = None
    if v["username"] is not None:
        password_file = _secret_path(v["password_file"], DEFAULT_PASSWORD_FILE, data_dir)
        if not password_file.exists():
            add(
                where,
                "password_file",
                f"{password_file} is missing: username is set, so write its password there "
                f"(install -m 600 /dev/stdin {password_file})",
            )
        _private(where, "password_file", password_file, add)
        if v["security"] == "none" and not is_loopback(v["host"] or ""):
            add(
                where,
                "security",
                '"none" would send the password in clear text: use "starttls" or "tls" '
                "(plain SMTP only to a loopback relay)",
            )
    elif v["password_file"] is not None:
        add(where, "password_file", "is set but username is not: add username = ...")
    if v["host"] is None or v["from"] is None or v["security"] is None:
        return None
    port = v["port"] or {"tls": 465, "starttls": 587, "none": 25}[v["security"]]
    return SmtpSettings(
        host=v["host"],
        port=port,
        security=v["security"],
        sender=v["from"],
        username=v["username"],
        password_file=password_file,
        timeout_s=v["timeout_s"] or 10,
        verify_tls=bool(v["verify_tls"]),
    )


def _webhook(v: dict[str, Any], data_dir: Path, add: Report) -> WebhookSettings | None:
    if v["url"] is None:
        return None
    secret = _secret_path(v["secret_file"], DEFAULT_WEBHOOK_SECRET, data_dir)
    _private("[notify.webhook]", "secret_file", secret, add)
    return WebhookSettings(url=v["url"], secret_file=secret, timeout_s=v["timeout_s"] or 10)
