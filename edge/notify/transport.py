"""The two ways out: SMTP (aiosmtplib) and a signed webhook POST (aiohttp).

Each raises ``NotifyError`` (a ``DeviceError``: a 503 at the REST boundary) with a
message that names the server and what it said, never the password or the message body.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import ssl
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import aiosmtplib

from doorkeep.errors import DeviceError
from edge.config.notify import SmtpSettings, WebhookSettings
from edge.notify.messages import signature

SIGNATURE_HEADER = "X-Doorkeep-Signature"
TIMESTAMP_HEADER = "X-Doorkeep-Timestamp"


class NotifyError(DeviceError):
    """A notification could not be delivered (server refused, unreachable, timed out)."""


async def send_mail(smtp: SmtpSettings, mail: EmailMessage) -> None:
    """Send one email through ``[notify.smtp]``; NotifyError when it is not accepted."""
    where = f"SMTP server {smtp.host}:{smtp.port}"
    context = ssl.create_default_context()
    if not smtp.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        password = await asyncio.to_thread(smtp.password)
    except OSError as err:
        raise NotifyError(f"the SMTP password file cannot be read: {err.strerror}") from err
    try:
        _errors, _reply = await aiosmtplib.send(
            mail,
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.username,
            password=password,
            use_tls=smtp.security == "tls",
            start_tls=True if smtp.security == "starttls" else False,  # noqa: SIM210 - None means "if offered"
            tls_context=context,
            timeout=smtp.timeout_s,
        )
    except aiosmtplib.SMTPResponseException as err:
        raise NotifyError(f"{where} refused the message: {err.code} {err.message}") from err
    except aiosmtplib.SMTPRecipientsRefused as err:
        codes = ", ".join(f"{e.code} {e.message}" for e in err.recipients)
        raise NotifyError(f"{where} refused the recipients: {codes}") from err
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as err:
        raise NotifyError(f"{where} unreachable: {err or type(err).__name__}") from err


def webhook_secret(settings: WebhookSettings) -> bytes:
    """The webhook's HMAC key, made (32 random bytes, hex, mode 0600) when missing."""
    path: Path = settings.secret_file
    if path.exists():
        return path.read_text(encoding="utf-8").strip().encode()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value.encode()


async def post_webhook(
    settings: WebhookSettings, secret: bytes, body: bytes, session: aiohttp.ClientSession
) -> None:
    """POST one JSON body, signed; NotifyError unless the receiver answers 2xx."""
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        "User-Agent": "doorkeep-notify",
    }
    host = urlsplit(settings.url).hostname
    try:
        async with session.post(
            settings.url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=settings.timeout_s),
            allow_redirects=False,
        ) as resp:
            if not 200 <= resp.status < 300:
                raise NotifyError(f"webhook {host} answered {resp.status} {resp.reason}")
    except (aiohttp.ClientError, TimeoutError) as err:
        raise NotifyError(f"webhook {host} unreachable: {err or type(err).__name__}") from err


def utc_now() -> datetime:
    return datetime.now(UTC)
