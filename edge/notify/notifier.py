"""The notifier: alarms and recoveries out to email and a webhook, off the event loop's
critical path, rate-limited, and honest about its own failures.

    EventLog.publish ──offer()──> queue (bounded) ──pump──> rate window ──> channels
      (sync tap, never blocks)                        │ over the limit: one digest later
                                                      v
                               Channel "email" / "webhook": backlog, LinkHealth, task

``offer`` runs inside ``EventLog.publish``: it only filters and puts a ``Notice`` on a
bounded queue (a full queue counts the notice as dropped; it is never waited for). The
pump turns notices into messages: one each while the window has room (``max_per_minute``
in any 60 s), and everything past that into one digest sent when there is room again.

Each channel delivers its backlog in order. When delivery fails it backs off with
``doorkeep.link.LinkHealth`` (one WARNING), raises ONE ``notify_failed`` alarm for the
outage, and folds what it holds into a single digest that each retry sends; the retry
that gets through delivers everything held in that one message, resolves the alarm and
records a ``notify_recovered`` event. The notifier never notifies about itself (its
failure is in ``/health`` and the alarm log).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import aiohttp

from doorkeep.link import LinkHealth
from edge.notify import messages
from edge.notify.messages import Message, Notice
from edge.notify.rate import RateWindow
from edge.notify.transport import (
    NotifyError,
    post_webhook,
    send_mail,
    utc_now,
    webhook_secret,
)

if TYPE_CHECKING:
    from edge.config import SiteConfig
    from edge.config.notify import NotifySection
    from edge.notify.delivery import TempKeyDelivery
    from edge.site.log import EventLog

log = logging.getLogger(__name__)

#: How long closing the site waits for the notifier's tasks after cancelling them.
STOP_TIMEOUT_S = 5.0

#: Notices waiting for the pump; past this they are counted as dropped.
QUEUE_SIZE: Final = 1000
#: Messages a channel holds; a digest keeps at most this many notices.
BACKLOG: Final = 100
DIGEST_KEEP: Final = 500
#: Retry backoff of a failing channel (doorkeep.link: jittered, doubling, capped).
RETRY_BASE_S: Final = 2.0
RETRY_CAP_S: Final = 300.0
FAILED_ALARM: Final = "notify_failed"
RECOVERED_EVENT: Final = "notify_recovered"

Deliver = Callable[[Message], Awaitable[None]]


class Channel:
    """One way out (email or webhook): its backlog, its link health, its task."""

    def __init__(
        self,
        name: str,
        deliver: Deliver,
        *,
        site_name: str,
        owner: Notifier,
        clock: Callable[[], float],
    ) -> None:
        self.name = name
        self.deliver = deliver
        self.site_name = site_name
        self.owner = owner
        self.backlog: deque[Message] = deque()
        self.dropped = 0
        self.delivered = 0
        self.error = ""
        self.alarm_id: int | None = None
        self.health = LinkHealth(
            f"notifications by {name}",
            base_s=RETRY_BASE_S,
            cap_s=RETRY_CAP_S,
            logger=log,
            clock=clock,
        )
        self._ready = asyncio.Event()

    def put(self, message: Message) -> None:
        if len(self.backlog) >= BACKLOG:
            self.dropped += len(self.backlog.popleft().notices)
        self.backlog.append(message)
        self._ready.set()

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": not self.health.failing,
            "error": self.error,
            "held": sum(len(m.notices) for m in self.backlog),
            "delivered": self.delivered,
        }

    def _fold(self) -> None:
        """During an outage, everything held becomes one digest (one message per retry)."""
        if len(self.backlog) <= 1 and not self.dropped:
            return
        notices = [n for m in self.backlog for n in m.notices]
        dropped = self.dropped + max(0, len(notices) - DIGEST_KEEP)
        self.backlog.clear()
        self.dropped = 0
        why = f"Held while notifications by {self.name} failed ({self.error})."
        self.backlog.append(
            messages.digest(self.site_name, notices[:DIGEST_KEEP], dropped=dropped, why=why)
        )

    async def run(self) -> None:
        while True:
            await self._ready.wait()
            if not self.backlog:
                self._ready.clear()
                continue
            if self.health.failing:
                self._fold()
            message = self.backlog.popleft()
            try:
                await self.deliver(message)
            except NotifyError as err:
                self.backlog.appendleft(message)
                first = not self.health.failing
                delay = self.health.failed(err)
                self.error = str(err)
                if first:
                    await self.owner.broken(self, err)
                await asyncio.sleep(delay)
                continue
            self.delivered += 1
            down_since = self.health.down_since
            if self.health.ok():
                self.error = ""
                down_s = 0.0 if down_since is None else self.health.clock() - down_since
                await self.owner.recovered(self, down_s, len(message.notices))


class Notifier:
    """The site's notifications (``site.notify``); ``running()`` is its lifetime."""

    def __init__(
        self,
        config: SiteConfig,
        log_: EventLog,
        *,
        temp_keys: TempKeyDelivery | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.section: NotifySection | None = config.notify
        self.site_id = config.site.id
        self.site_name = config.site.name
        self.tz = config.tz
        self.log = log_
        #: Temp keys emailed to visitors (``POST /temp-keys/{id}/send``).
        self.temp_keys = temp_keys
        self.clock = clock
        self.dropped = 0
        self.channels: dict[str, Channel] = {}
        self._queue: asyncio.Queue[Notice] = asyncio.Queue(QUEUE_SIZE)
        self._held: list[Notice] = []
        self._window = RateWindow(self.section.max_per_minute if self.section else 6)
        self._session: aiohttp.ClientSession | None = None
        self._secret = b""
        section = self.section
        if section is not None and section.smtp is not None and section.email_to:
            self.channels["email"] = Channel(
                "email", self._email, site_name=self.site_name, owner=self, clock=clock
            )
        if section is not None and section.webhook is not None:
            self.channels["webhook"] = Channel(
                "webhook", self._webhook, site_name=self.site_name, owner=self, clock=clock
            )
        log_.taps.append(self.offer)

    @property
    def configured(self) -> bool:
        """Whether any alarm goes anywhere (a channel is configured)."""
        return bool(self.channels)

    # --- lifetime --------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Notifier]:
        """Run the pump and the channels; what is still queued at the end is logged."""
        if not self.channels:
            yield self
            return
        if "webhook" in self.channels and self.section and self.section.webhook:
            self._secret = await asyncio.to_thread(webhook_secret, self.section.webhook)
        async with aiohttp.ClientSession() as session:
            self._session = session
            tasks = [asyncio.create_task(self._pump(), name="notify-pump")]
            tasks += [
                asyncio.create_task(ch.run(), name=f"notify-{ch.name}")
                for ch in self.channels.values()
            ]
            try:
                yield self
            finally:
                for task in tasks:
                    task.cancel()
                _, stuck = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
                for task in stuck:  # a send that ignores its cancel: never hang the site's close
                    log.warning(
                        "notify: %s did not stop within %s s", task.get_name(), STOP_TIMEOUT_S
                    )
                held = self._queue.qsize() + len(self._held)
                held += sum(len(m.notices) for c in self.channels.values() for m in c.backlog)
                if held:
                    log.warning("notify: %d notification(s) not sent at shutdown", held)
                self._session = None

    # --- in: the event log's tap ------------------------------------------------------

    def offer(self, topic: str, data: Mapping[str, Any]) -> None:
        """What the event log publishes; never blocks, never raises."""
        if not self.channels or self.section is None:
            return
        try:
            notice = self._notice(topic, data, self.section.alarms)
            if notice is not None:
                self._queue.put_nowait(notice)
        except asyncio.QueueFull:
            self.dropped += 1
        except Exception:  # a notification must never break the event path
            log.exception("notify: could not take a %s message", topic)

    def _notice(self, topic: str, data: Mapping[str, Any], kinds: frozenset[str]) -> Notice | None:
        if topic == "alarm" and not data.get("resolved"):
            kind = data.get("kind")
            if kind in kinds and kind != FAILED_ALARM:
                return messages.alarm_notice(data, self.tz)
        elif topic == "event":
            ends = messages.RECOVERIES.get(str(data.get("action")))
            if ends is not None and ends in kinds:
                return messages.recovery_notice(data, self.tz)
        return None

    # --- the pump: rate window and digest ---------------------------------------------

    async def _pump(self) -> None:
        while True:
            timeout = self._window.wait_s(self.clock()) if self._held else None
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancel
            # that lands as the queue hands over an item, and shutdown then waits forever
            notice: Notice | None = None
            try:
                async with asyncio.timeout(timeout):
                    notice = await self._queue.get()
            except TimeoutError:
                notice = None
            now = self.clock()
            if notice is not None:
                if not self._held and self._window.take(now):
                    self._fan_out(messages.single(self.site_name, notice))
                    continue
                if len(self._held) < DIGEST_KEEP:
                    self._held.append(notice)
                else:
                    self.dropped += 1
            if self._held and self._window.take(now):
                why = (
                    f"More than {self._window.limit} notifications in a minute: "
                    "the rest come together here."
                )
                held, self._held = self._held, []
                dropped, self.dropped = self.dropped, 0
                self._fan_out(messages.digest(self.site_name, held, dropped=dropped, why=why))

    def _fan_out(self, message: Message) -> None:
        for channel in self.channels.values():
            channel.put(message)

    # --- channels ---------------------------------------------------------------------

    async def _email(self, message: Message) -> None:
        smtp = self.section.smtp if self.section else None
        if smtp is None or self.section is None:
            raise NotifyError("[notify.smtp] is not configured")
        mail = messages.email_message(
            message, sender=smtp.sender, to=self.section.email_to, now=utc_now()
        )
        await send_mail(smtp, mail)

    async def _webhook(self, message: Message) -> None:
        webhook = self.section.webhook if self.section else None
        if webhook is None or self._session is None:
            raise NotifyError("the webhook is not configured or the notifier is not running")
        body = messages.webhook_body(message, site=self.site_id, now=utc_now())
        await post_webhook(webhook, self._secret, body, self._session)

    async def broken(self, channel: Channel, err: NotifyError) -> None:
        """A channel's outage began: its one ``notify_failed`` alarm."""
        try:
            alarm = await self.log.raise_alarm(
                FAILED_ALARM,
                source=f"notify-{channel.name}",
                detail={"channel_name": channel.name, "error": str(err)[:200]},
            )
            channel.alarm_id = int(alarm["id"])
        except Exception:
            log.exception("notify: recording the notify_failed alarm failed")

    async def recovered(self, channel: Channel, down_s: float, delivered: int) -> None:
        """A channel delivers again: its event, and its alarm resolved."""
        detail = {"channel_name": channel.name, "down_s": round(down_s, 1), "delivered": delivered}
        try:
            await self.log.record(
                self.log.event(
                    self.log.clock(), "system", RECOVERED_EVENT, "success", detail=detail
                )
            )
            if channel.alarm_id is not None:
                alarm_id, channel.alarm_id = channel.alarm_id, None
                await self.log.resolve_alarm(
                    alarm_id, actor="system:notify", note=f"{channel.name} delivers again"
                )
        except Exception:  # already resolved by an operator, or storage trouble
            log.warning("notify: recording the recovery of %s failed", channel.name, exc_info=True)

    # --- asked for ---------------------------------------------------------------------

    async def send_test(self, *, actor: str, store: Any) -> dict[str, Any]:
        """``POST /notify/test``: one test message on every channel, now; audited."""
        if not self.channels:
            from doorkeep.errors import Conflict  # noqa: PLC0415

            raise Conflict(
                "no notification channel is configured: add [notify] email_to with "
                "[notify.smtp], or [notify.webhook], to site.toml (docs/notifications.md)"
            )
        notice = Notice(
            "test",
            "Test notification",
            utc_now().astimezone(self.tz).isoformat(timespec="seconds"),
            (("requested_by", actor),),
        )
        message = Message(f"[{self.site_name}] test notification", (notice,))
        results: dict[str, Any] = {}
        for name, channel in self.channels.items():
            try:
                await channel.deliver(message)
                results[name] = {"sent": True}
            except NotifyError as err:
                results[name] = {"sent": False, "error": str(err)}
        await store.audit(actor, "notify.test", "notify", results)
        failed = [f"{n}: {r['error']}" for n, r in results.items() if not r["sent"]]
        if failed:
            raise NotifyError("test notification not delivered: " + "; ".join(failed))
        if self.section is not None:
            results["email_to"] = list(self.section.email_to)
        return results

    def status(self) -> list[dict[str, Any]]:
        """Each channel: ok, the last error, how many notices it holds."""
        return [c.status() for c in self.channels.values()]
