"""The visitor's temp-key email: the code, its validity and a QR image of the code.

This is the only message doorkeep sends that carries a credential: the visitor's own
code, to the address the operator typed for that visitor (docs/security.md). The code
exists in clear only here, on its way out; the policy stores its HMAC.

Pure: the caller passes the code, the key (as the policy holds it), door names and the
time zone; ``qr_png`` draws the QR image with segno.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, make_msgid
from typing import Any, Final

import segno

#: Temp-key PINs: 8 digits starting with 9 (POLICY.md); QR codes: 24 URL-safe characters.
PIN_LENGTH: Final = 8
QR_BYTES: Final = 18
QR_FILENAME: Final = "access-code.png"
DAYS: Final = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}


def new_code(kind: str) -> str:
    """A fresh random code for a temp key of ``kind`` (``pin`` or ``qr``)."""
    if kind == "pin":
        return "9" + "".join(str(secrets.randbelow(10)) for _ in range(PIN_LENGTH - 1))
    return secrets.token_urlsafe(QR_BYTES)


def qr_png(code: str, *, scale: int = 8) -> bytes:
    """A PNG of the QR code holding exactly ``code`` (error correction M, quiet zone 4)."""
    out = io.BytesIO()
    segno.make_qr(code, error="m").save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def validity(schedule: Mapping[str, Any]) -> str:
    """The key's schedule in words, site wall-clock times."""
    repeat = schedule.get("repeat")
    start, end = str(schedule.get("start", "")), str(schedule.get("end", ""))
    if repeat == "never":
        return f"from {start.replace('T', ' ')} until {end.replace('T', ' ')}"
    if repeat == "daily":
        return f"every day from {start} to {end}"
    days = ", ".join(DAYS.get(d, d) for d in schedule.get("days") or [])
    return f"every {days} from {start} to {end}"


def temp_key_message(
    key: Mapping[str, Any],
    code: str,
    *,
    site_name: str,
    door_names: Sequence[str],
    tz_name: str,
    sender: str,
    to: str,
    now: datetime,
) -> EmailMessage:
    """The visitor's email: text and HTML bodies, the QR image inline and attached."""
    uses = key.get("uses_per_door")
    kind = key.get("kind")
    how = (
        "Type this PIN on the keypad at the door"
        if kind == "pin"
        else "Hold the QR code below up to the door's reader"
    )
    lines = [
        f"Hello {key.get('name') or 'visitor'},",
        "",
        f"you have been given access to {site_name}.",
        "",
        f"{how}: {code}" if kind == "pin" else f"{how} (code {code}).",
        f"Valid {validity(key.get('schedule') or {})} ({tz_name} time).",
        f"Doors: {', '.join(door_names)}.",
    ]
    if uses is not None:
        lines.append(f"It opens {uses} time(s) per door, {uses * len(door_names)} times in all.")
    lines += ["", "Please do not forward this email: the code opens the doors for whoever has it."]
    text = "\n".join(lines) + "\n"

    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = f"Your access code for {site_name}"
    mail["Date"] = format_datetime(now)
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(text)
    png = qr_png(code)
    cid = make_msgid(domain="doorkeep.invalid")
    html = "".join(f"<p>{_escape(line)}</p>" for line in lines if line) + (
        f'<p><img src="cid:{cid[1:-1]}" alt="QR code of your access code" '
        'width="264" height="264"></p>'
    )
    mail.add_alternative(f"<html><body>{html}</body></html>", subtype="html")
    html_part = mail.get_body(("html",))
    if isinstance(html_part, MIMEPart):
        html_part.add_related(png, maintype="image", subtype="png", cid=cid)
    mail.add_attachment(png, maintype="image", subtype="png", filename=QR_FILENAME)
    return mail


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
