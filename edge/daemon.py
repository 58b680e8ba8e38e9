"""``doorkeep run``: the site daemon — the Site, its web server, and its background jobs.

Background jobs run as named tasks in one TaskGroup: the policy watcher (picks up a
policy another process — ``doorkeep policy apply`` — committed to the store), the
hold-open scheduler, retention, the cloud sync client when enrolled, and the systemd
watchdog. Stopping (SIGTERM/SIGINT) closes the web server first, then the site.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from doorkeep.errors import ConfigError
from edge import listener
from edge.auth import AuthStore
from edge.config import SiteConfig
from edge.hardware import stalled_buses
from edge.service import Site

log = logging.getLogger(__name__)

POLICY_WATCH_S = 2.0  # how often the daemon looks for a policy committed by another process
HOLD_OPEN_CHECK_S = 5.0
RETENTION_EVERY_S = 3600.0
LEASE_SWEEP_S = 300.0  # how often ended leases with auto-delete are looked for
WATCHDOG_S = 10.0
#: A bus transaction is bounded by its timeouts (at most a few seconds); one running this
#: long means its owner is stuck.
BUS_STALL_S = 20.0
# Reader types site.toml accepts whose hardware drivers are not written yet.


class ListenError(ConfigError):
    """The web UI's address cannot be listened on (in use, not this machine's, no right)."""

    def __init__(self, host: str, port: int, err: OSError) -> None:
        why = {
            errno.EADDRINUSE: "the port is in use by another program (another doorkeep?)",
            errno.EADDRNOTAVAIL: "the address is not one of this machine's",
            errno.EACCES: "ports below 1024 need privileges",
        }.get(err.errno or 0, err.strerror or str(err))
        super().__init__(
            f"cannot listen on {host}:{port}: {why}; stop it or change [web] listen "
            "(doorkeep demo: --listen HOST:PORT)"
        )


def sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) how we are; a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(message.encode())


def auth_path(config: SiteConfig) -> Path:
    return config.site.data_dir / "auth.db"


async def _policy_watcher(site: Site) -> None:
    """Reload the policy when another process (the CLI) committed a new version."""
    while True:
        await asyncio.sleep(POLICY_WATCH_S)
        state = await asyncio.to_thread(site.policy.header)
        if state != (site.snapshot.version, site.snapshot.digest):
            await site.policy.reload()


async def _hold_open(site: Site) -> None:
    """Drive the policy's ``hold_open`` schedules into the door machines."""
    while True:
        await site.door_control.hold_open_tick(datetime.now(UTC))
        await asyncio.sleep(HOLD_OPEN_CHECK_S)


async def _retention(site: Site) -> None:
    while True:
        days = site.policy.settings().get("door_event_days", 30)
        try:
            removed = await site.store.prune(
                now=datetime.now(UTC), door_event_days=days, only_acknowledged=site.sync is not None
            )
            if removed:
                log.info("retention: removed %d door events older than %d days", removed, days)
        except Exception:
            log.exception("retention run failed")
        await asyncio.sleep(RETENTION_EVERY_S)


async def _lease_sweep(site: Site) -> None:
    """Remove the residents of apartments whose lease ended with auto-delete (a
    standalone site; an enrolled one leaves it to the cloud's reconcile job)."""
    while True:
        try:
            await site.pm.sweep_leases()
        except Exception:
            log.exception("lease sweep failed")
        await asyncio.sleep(LEASE_SWEEP_S)


async def _watchdog(site: Site) -> None:
    """Ping systemd's watchdog while the site works (WatchdogSec= restarts it otherwise).

    The ping comes from the event loop, so a stuck loop sends none; and it is withheld
    while a bus owner is stuck (one transaction far past its timeouts, or its task
    ended), since doors on that bus no longer open, or a reader driver is (its task
    failed, or an OSDP panel gave no status for as long): a restart is the cure. Logged
    once when it starts withholding and once when everything recovers.
    """
    withheld: list[str] = []
    while True:
        stuck = stalled_buses(site.hw, BUS_STALL_S) + site.readers.stalled(BUS_STALL_S)
        if stuck and not withheld:
            log.error("watchdog: not pinging systemd: %s", "; ".join(stuck))
        elif withheld and not stuck:
            log.warning("watchdog: bus owners and readers work again; pinging systemd")
        withheld = stuck
        if not stuck:
            sd_notify("WATCHDOG=1")
        await asyncio.sleep(WATCHDOG_S)


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Leave the start-up heap (imports, the policy snapshot, the app; ~90,000 objects on
    the sample site) out of the cyclic GC while the daemon serves: a full collection
    scanned all of it, a 40-70 ms stop of the loop, and request garbage triggers one every
    few tens of seconds under load. Garbage made later is collected as before."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.asynccontextmanager
async def serve_site(
    site: Site, *, host: str, port: int, print_fn: Callable[[str], None] = print
) -> AsyncIterator[web.AppRunner]:
    """Serve the REST API and UI of ``site`` until the context ends."""
    from edge.web.app import make_app  # noqa: PLC0415 - the web layer is heavy to import

    config = site.config
    auth = AuthStore.open(auth_path(config))
    ssl_context = None
    fingerprint = None
    if config.web.tls:
        from edge.tls import (  # noqa: PLC0415 - only TLS sites need it
            ensure_certificate,
            server_context,
        )
        from edge.tls import fingerprint as fp  # noqa: PLC0415

        cert, key = ensure_certificate(
            config.site.data_dir, hostname=f"doorkeep-{site.site_id}.local"
        )
        ssl_context = server_context(cert, key)
        fingerprint = fp(cert)
    app = make_app(site, auth, tls=config.web.tls)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack = contextlib.AsyncExitStack()
    try:
        try:
            sockets = await asyncio.to_thread(listener.bind, host, port)  # may resolve a name
        except OSError as err:
            raise ListenError(host, port, err) from err
        # new connections taken at a bounded pace (edge/listener.py), not a burst at once
        assert runner.server is not None  # made by setup()
        await stack.enter_async_context(listener.serving(sockets, runner.server, ssl_context))
        scheme = "https" if ssl_context else "http"
        print_fn(f"doorkeep: site {site.site_id!r} serving {scheme}://{host}:{port}/")
        if auth.setup_required():
            code = auth.new_setup_code()
            print_fn(f"doorkeep: no admin yet; open the UI and use the one-time setup code: {code}")
        runner.app["doorkeep.fingerprint"] = fingerprint
        yield runner
    finally:
        await stack.aclose()  # no new connections, then the open ones end
        await runner.cleanup()
        auth.close()


async def run_daemon(
    config: SiteConfig,
    *,
    stop: asyncio.Event | None = None,
    print_fn: Callable[[str], None] = print,
) -> None:
    """Run the site until ``stop`` is set or SIGTERM/SIGINT arrives."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with (
        Site.open(config) as site,
        serve_site(site, host=config.web.host, port=config.web.port, print_fn=print_fn) as runner,
        contextlib.AsyncExitStack() as stack,
    ):
        await _start_optional(site, stack, runner, print_fn)
        async with asyncio.TaskGroup() as tg:
            tasks = [
                tg.create_task(_policy_watcher(site), name="policy-watcher"),
                tg.create_task(_hold_open(site), name="hold-open"),
                tg.create_task(_retention(site), name="retention"),
                tg.create_task(_lease_sweep(site), name="lease-sweep"),
                tg.create_task(_watchdog(site), name="watchdog"),
            ]
            with frozen_heap():
                sd_notify("READY=1")
                await stop.wait()
                sd_notify("STOPPING=1")
            for task in tasks:
                task.cancel()


async def _start_optional(
    site: Site,
    stack: contextlib.AsyncExitStack,
    runner: web.AppRunner,
    print_fn: Callable[[str], None],
) -> None:
    """mDNS advertising, the cloud sync client and the MQTT bridge, when they apply."""
    config = site.config
    if os.environ.get("DOORKEEP_MDNS", "1") != "0" and config.web.host not in (
        "127.0.0.1",
        "localhost",
    ):
        from edge.mdns import Advertiser  # noqa: PLC0415

        try:
            await stack.enter_async_context(
                Advertiser(
                    site_id=site.site_id,
                    name=config.site.name,
                    version=site.version,
                    port=config.web.port,
                    addresses=_addresses(config.web.host),
                    fingerprint=runner.app.get("doorkeep.fingerprint"),
                )
            )
        except OSError as err:
            log.warning("mDNS advertising is off: %s", err)
    if config.cloud is not None:
        from edge.sync import start_sync  # noqa: PLC0415

        await start_sync(site, stack)
        print_fn(f"doorkeep: syncing with {config.cloud.url}")
    if config.mqtt is not None:
        from edge.mqtt import MqttBridge  # noqa: PLC0415

        site.mqtt = await stack.enter_async_context(MqttBridge(site, config.mqtt))


def _addresses(host: str) -> list[str]:
    if host not in ("0.0.0.0", "::", ""):  # noqa: S104 - a listen address, not a bind here
        return [host]
    with contextlib.suppress(OSError):
        return [socket.gethostbyname(socket.gethostname())]
    return ["127.0.0.1"]


def describe_run(site: Site) -> dict[str, Any]:
    return {
        "site": site.site_id,
        "doors": len(site.config.doors),
        "policy_version": site.snapshot.version,
    }
