"""The pure parts: what a notice may show, the rate window, the webhook signature."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from edge.notify import messages
from edge.notify.rate import RateWindow

TZ = ZoneInfo("Europe/Berlin")


def test_a_notice_shows_only_safe_detail_keys_whatever_an_alarm_carries() -> None:
    alarm = {
        "id": 7,
        "kind": "duress",
        "source": "gate",
        "at": "2026-12-01T12:00:00+00:00",
        "detail": {
            "person": "p-ann",
            "value": "2580",
            "code": "95551234",
            "card": "00C0FFEE",
            "value_hmac": "ab" * 32,
            "nested": {"pin": "2580"},
        },
    }
    notice = messages.alarm_notice(alarm, TZ)
    text = (
        notice.text()
        + messages.webhook_body(
            messages.single("Site", notice), site="s", now=messages.datetime.now(TZ)
        ).decode()
    )
    for secret in ("2580", "95551234", "00C0FFEE", "ab" * 32):
        assert secret not in text
    assert "p-ann" in text and "Duress code used" in text
    assert notice.at == "2026-12-01T13:00:00+01:00"  # site time


def test_the_window_allows_n_per_minute_and_says_when_there_is_room() -> None:
    window = RateWindow(3, window_s=60)
    assert [window.take(t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert window.wait_s(3) == pytest.approx(57)
    assert window.take(60.5) is True  # the first one left the window
    with pytest.raises(ValueError, match="limit >= 1"):
        RateWindow(0)


def test_the_signature_covers_timestamp_and_body() -> None:
    one = messages.signature(b"k", "100", b"{}")
    assert one.startswith("sha256=") and len(one) == 7 + 64
    assert one != messages.signature(b"k", "101", b"{}")
    assert one != messages.signature(b"k", "100", b"{ }")
