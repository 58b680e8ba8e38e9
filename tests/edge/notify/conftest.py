"""Real peers for the notification tests: an aiosmtpd SMTP server on loopback (in its own
thread, stopped by the fixture) and an aiohttp server as the webhook receiver.

The site is the pty-simulated one of tests/edge/conftest.py with a ``[notify]`` section
pointing at both.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

import edge.notify.notifier
import edge.notify.rate
from edge.service import Site
from tests.edge.conftest import POLICY, SITE_TOML
from tests.edge.sites import open_site, until

#: Every secret of the test site: none may appear in an alarm notification.
SECRETS = ("2580", "2581", "95551234", "00C0FFEE", "C0FFEE")
PM = "pm@example.org"
VISITOR = "visitor@example.com"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mailbox:
    """The SMTP server's handler: keeps what it accepts; ``reply`` set = refuse DATA."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refused = 0
        self.reply: str | None = None
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        if self.reply is not None:
            with self._lock:
                self.refused += 1
            return self.reply
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if address in str(m["To"])]


@dataclass
class Smtp:
    port: int
    mailbox: Mailbox
    controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    server = Smtp(free_port(), Mailbox())
    server.start()
    yield server
    server.stop()


@dataclass
class Webhook:
    url: str
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    status: int = 200


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    hook = Webhook("")

    async def receive(request: web.Request) -> web.Response:
        hook.received.append((dict(request.headers), await request.read()))
        return web.Response(status=hook.status)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    hook.url = f"http://127.0.0.1:{port}/hook"
    yield hook
    await runner.cleanup()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # Production retries start at 2 s and the rate window is a minute; tests shrink both.
    monkeypatch.setattr(edge.notify.notifier, "RETRY_BASE_S", 0.05)
    monkeypatch.setattr(edge.notify.notifier, "RETRY_CAP_S", 0.2)
    monkeypatch.setattr(edge.notify.rate, "WINDOW_S", 1.0)


def notify_toml(smtp_port: int, webhook_url: str | None, *, per_minute: int = 3) -> str:
    hook = f'\n[notify.webhook]\nurl = "{webhook_url}"\n' if webhook_url else ""
    return (
        f'\n[notify]\nemail_to = ["{PM}"]\nmax_per_minute = {per_minute}\n'
        f'\n[notify.smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nsecurity = "none"\n'
        f'from = "doorkeep@example.org"\ntimeout_s = 2\n{hook}'
    )


@pytest.fixture
async def site(tmp_path: Path, smtp: Smtp, webhook: Webhook) -> AsyncIterator[Site]:
    policy = {**POLICY, "settings": {**POLICY["settings"], "duress": True}}
    toml = SITE_TOML + notify_toml(smtp.port, webhook.url)
    async with open_site(tmp_path / "site", toml, policy) as running:
        await until(lambda: "doors" in running.hw._last_inputs)
        yield running


def text_of(message: EmailMessage) -> str:
    """Everything a reader of the email sees, headers and every text part."""
    parts = [str(message["Subject"])]
    parts.extend(p.get_content() for p in message.walk() if p.get_content_maintype() == "text")
    return "\n".join(parts)
