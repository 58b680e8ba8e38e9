"""Notifications through a real SMTP server (aiosmtpd on loopback) and a real webhook
receiver: the visitor's temp-key email, alarm messages, the rate limit, and a broken
mail server that raises one alarm and delivers what it held when it recovers.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest
import segno

from edge.notify import NotifyError
from edge.notify.messages import signature
from edge.notify.transport import SIGNATURE_HEADER, TIMESTAMP_HEADER
from edge.service import Site

from .conftest import PM, SECRETS, VISITOR, Smtp, Webhook, text_of, until

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FORCED = re.compile(r"[+-]\d\d:\d\d  Door forced open")


def _qr_of(payload: str) -> bytes:
    """The QR image of ``payload`` drawn independently (segno, same symbol settings)."""
    import io

    out = io.BytesIO()
    segno.make_qr(payload, error="m").save(out, kind="png", scale=8, border=4)
    return out.getvalue()


async def test_a_temp_key_emailed_to_the_visitor_carries_a_new_pin_and_its_qr(
    site: Site, smtp: Smtp
) -> None:
    sent = await site.notify.temp_keys.send("t-guest", VISITOR, actor="admin:alice")
    assert sent["sent_to"] == VISITOR
    assert "code" not in sent["temp_key"] and "code_hmac" in sent["temp_key"]
    await until(lambda: len(smtp.mailbox.to(VISITOR)) == 1)
    mail = smtp.mailbox.to(VISITOR)[0]
    text = text_of(mail)
    pin = next(w.strip(".:") for w in text.split() if len(w.strip(".:")) == 8 and w.startswith("9"))
    assert pin != "95551234"  # a new code: the old one was never stored in clear
    images = [p for p in mail.walk() if p.get_content_type() == "image/png"]
    assert images
    for image in images:
        png = image.get_content()
        assert png.startswith(PNG_MAGIC)
        assert png == _qr_of(pin)  # the QR holds exactly the visitor's PIN
    # the new PIN opens the door, the old one no longer does
    assert (await site.present("gate-in", "pin", pin))["granted"] is True
    assert (await site.present("lobby-in", "pin", "95551234"))["reason"] == "unknown_credential"
    # the clear PIN is nowhere but in that email
    events, _ = await site.events()
    audit, _ = await site.audit_log()
    stored = json.dumps([events, audit, site.policy_document()])
    assert pin not in stored
    assert any(a["action"] == "temp_keys.send" and a["detail"]["to"] == VISITOR for a in audit)


async def test_a_qr_temp_key_made_with_send_to_is_created_and_emailed(
    site: Site, smtp: Smtp
) -> None:
    body = {
        "id": "t-qr",
        "name": "Courier",
        "kind": "qr",
        "doors": ["gate"],
        "schedule": {"repeat": "daily", "start": "00:00", "end": "23:59:59"},
        "send_to": VISITOR,
    }
    await site.notify.temp_keys.send("t-qr", VISITOR, actor="admin:alice", create=body)
    await until(lambda: len(smtp.mailbox.to(VISITOR)) == 1)
    mail = smtp.mailbox.to(VISITOR)[0]
    text = text_of(mail)
    code = text.split("(code ")[1].split(")")[0]
    png = next(p for p in mail.walk() if p.get_content_type() == "image/png").get_content()
    assert png == _qr_of(code)
    assert (await site.present("gate-in", "qr", code))["granted"] is True
    assert "send_to" not in site.get_entity("temp_keys", "t-qr")


async def test_a_mail_server_that_refuses_the_visitor_email_changes_nothing(
    site: Site, smtp: Smtp
) -> None:
    smtp.mailbox.reply = "554 5.7.1 not today"
    before = site.get_entity("temp_keys", "t-guest")
    with pytest.raises(NotifyError, match=re.escape("554 5.7.1 not today")):
        await site.notify.temp_keys.send("t-guest", VISITOR, actor="admin:alice")
    assert site.get_entity("temp_keys", "t-guest") == before
    assert (await site.present("gate-in", "pin", "95551234"))["granted"] is True  # still works


async def test_alarms_reach_email_and_webhook_signed_and_without_any_pin(
    site: Site, smtp: Smtp, webhook: Webhook
) -> None:
    # duress (PIN 2580 plus one) and an emergency unlock: both alarms, both notified
    assert (await site.present("gate-in", "pin", "2581"))["granted"] is True
    await site.emergency("unlock", actor="admin:alice")
    await until(lambda: len(smtp.mailbox.to(PM)) >= 2)
    await until(lambda: len(webhook.received) >= 2)
    mails = smtp.mailbox.to(PM)
    subjects = [str(m["Subject"]) for m in mails]
    assert any("Duress code used" in s for s in subjects), subjects
    assert any("Emergency unlock" in s for s in subjects), subjects
    secret = (site.config.notify.webhook.secret_file).read_text().strip().encode()
    for headers, body in webhook.received:
        assert headers[SIGNATURE_HEADER] == signature(secret, headers[TIMESTAMP_HEADER], body)
        payload = json.loads(body)
        assert payload["site"] == "test" and payload["notices"]
    everything = "\n".join(text_of(m) for m in mails) + "\n".join(
        b.decode() for _, b in webhook.received
    )
    for value in SECRETS:
        assert value not in everything, value


async def test_an_alarm_flood_is_rate_limited_into_one_digest(site: Site, smtp: Smtp) -> None:
    for i in range(20):
        await site.log.raise_alarm("forced_open", source="gate", door="gate", detail={"n": i})
    # three single messages at once (max_per_minute = 3), the rest in one digest
    await until(lambda: len(smtp.mailbox.to(PM)) >= 4, timeout=10)
    await asyncio.sleep(0.3)  # nothing else may follow
    mails = smtp.mailbox.to(PM)
    singles = [m for m in mails if "digest" not in str(m["Subject"])]
    digests = [m for m in mails if "digest" in str(m["Subject"])]
    assert len(singles) == 3
    assert len(digests) == 1
    # every forced-open alarm is told once: in a single message or listed in the digest
    # (on a loaded machine the simulated board may time out too and add its own alarm)
    listed = len(FORCED.findall(text_of(digests[0])))
    told = sum("Door forced open" in str(m["Subject"]) for m in singles)
    assert listed + told == 20


async def test_a_board_going_offline_and_back_sends_one_message_each(
    site: Site, smtp: Smtp
) -> None:
    board = site.hw.sims["rs485-1"].board(3)
    board.offline = True
    await site.present("gate-in", "pin", "2580")  # the command finds the board silent
    await until(lambda: any("offline" in str(m["Subject"]) for m in smtp.mailbox.to(PM)))
    board.offline = False
    await until(lambda: any("back online" in str(m["Subject"]) for m in smtp.mailbox.to(PM)))
    subjects = [str(m["Subject"]) for m in smtp.mailbox.to(PM)]
    assert sum("Relay board offline" in s for s in subjects) == 1, subjects
    assert sum("Relay board back online" in s for s in subjects) == 1, subjects


@pytest.mark.parametrize("failure", ["554 reply", "closed port"])
async def test_a_broken_mail_server_raises_one_alarm_and_recovery_delivers_what_it_held(
    site: Site, smtp: Smtp, failure: str
) -> None:
    if failure == "554 reply":
        smtp.mailbox.reply = "554 5.3.0 mail system down"
    else:
        smtp.stop()  # nothing listens on the configured port any more
    for i in range(3):  # within the rate limit: three messages, each held by the outage
        await site.log.raise_alarm("tamper", source="fire-panel", detail={"n": i})
    await until(lambda: site.notify.channels["email"].health.failures >= 4, timeout=10)
    alarms = [a for a in await site.alarms() if a["kind"] == "notify_failed"]
    assert len(alarms) == 1, alarms  # one per outage, not one per message or retry
    assert alarms[0]["resolved"] is False and alarms[0]["source"] == "notify-email"
    health = {c["name"]: c for c in site.status.health()["components"]}
    assert health["notify email"]["ok"] is False
    assert "held" in health["notify email"]["reason"]
    assert "notify email" in site.status.health()["degraded"]
    assert not smtp.mailbox.to(PM)

    if failure == "554 reply":
        smtp.mailbox.reply = None
    else:
        smtp.start()
    await until(lambda: bool(smtp.mailbox.to(PM)), timeout=10)
    await until(lambda: site.status.health()["status"] == "ok", timeout=5)
    mails = smtp.mailbox.to(PM)
    assert len(mails) == 1  # what was held arrives as one digest
    assert "digest: 3 notifications" in str(mails[0]["Subject"])
    assert text_of(mails[0]).count("source: fire-panel") == 3  # each of the three listed
    for _ in range(100):  # the recovery is recorded just after the digest went out
        alarms = [a for a in await site.alarms() if a["kind"] == "notify_failed"]
        if alarms and alarms[0]["resolved"]:
            break
        await asyncio.sleep(0.05)
    assert len(alarms) == 1 and alarms[0]["resolved"] is True
    events, _ = await site.events(type="system")
    recovered = [e for e in events if e["action"] == "notify_recovered"]
    assert len(recovered) == 1 and recovered[0]["detail"]["delivered"] == 3


async def test_a_failing_webhook_does_not_hold_up_email_and_catches_up_in_one_call(
    site: Site, smtp: Smtp, webhook: Webhook
) -> None:
    webhook.status = 503
    for i in range(2):
        await site.log.raise_alarm("held_open", source="gate", door="gate", detail={"n": i})
    await until(lambda: len(smtp.mailbox.to(PM)) == 2)  # email goes on as usual
    await until(lambda: site.notify.channels["webhook"].health.failures >= 3, timeout=10)
    failed = [a for a in await site.alarms() if a["kind"] == "notify_failed"]
    assert [a["source"] for a in failed] == ["notify-webhook"]
    calls = len(webhook.received)
    webhook.status = 200
    await until(lambda: site.status.health()["status"] == "ok", timeout=5)
    last = json.loads(webhook.received[-1][1])
    assert len(webhook.received) == calls + 1  # one call carries both held notices
    assert last["digest"] is True and len(last["notices"]) == 2
    assert len(smtp.mailbox.to(PM)) == 2  # the webhook's outage sent no email about itself
