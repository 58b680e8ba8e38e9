"""The web server's accept loop: new connections taken at a bounded pace, so a flood of
them cannot crowd a presentation already in flight off the event loop.

aiohttp's ``TCPSite`` hands the listening socket to asyncio, which accepts up to its
backlog in one turn and starts every TLS handshake at once: a 200-connection login burst
then queues ~200 connections' work (over TLS a handshake each, a few callbacks of
Python) ahead of each await of a presentation (docs/performance.md, *Login flood*).
Here one task per listening socket accepts one connection, then waits
``ACCEPT_INTERVAL_S`` before the next: at most 500 new connections a second, about what
the loop can serve over TLS anyway, and a burst is spread out instead of taken at once.
The rest wait in the kernel's listen queue (``LISTEN_QUEUE``), so nobody is refused for
it. No connection holds a slot: a client that connects and stalls costs its socket
until ``HANDSHAKE_TIMEOUT_S``, not the others' admission. A connection is then aiohttp's
as usual (``loop.connect_accepted_socket`` with the runner's server).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

log = logging.getLogger(__name__)

#: Seconds between two accepts on one listening socket (at most 500 a second).
ACCEPT_INTERVAL_S = 0.002
#: Connections the kernel holds for us while we admit the others.
LISTEN_QUEUE = 512
#: A client that has not finished its TLS handshake by then is dropped.
HANDSHAKE_TIMEOUT_S = 10.0


def bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for ``host:port`` (every address it resolves to); OSError as
    the system says it (the daemon turns it into one line)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(LISTEN_QUEUE)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


@contextlib.asynccontextmanager
async def serving(
    sockets: list[socket.socket],
    protocol_factory: Callable[[], Any],
    ssl_context: ssl.SSLContext | None,
) -> AsyncIterator[None]:
    """Accept on ``sockets`` until the context ends, then close them."""
    loop = asyncio.get_running_loop()
    admitting: set[asyncio.Task[None]] = set()

    async def admit(conn: socket.socket) -> None:
        try:
            await loop.connect_accepted_socket(
                protocol_factory,
                conn,
                ssl=ssl_context,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S if ssl_context else None,
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError):
            conn.close()  # a client that left or spoke no TLS: nothing to answer
        except asyncio.CancelledError:
            conn.close()  # the daemon stops
            raise

    async def accept(sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as err:  # out of file descriptors, ...: say it, slow down
                log.warning("web: accepting a connection failed: %s", err)
                await asyncio.sleep(0.1)
                continue
            task = asyncio.create_task(admit(conn))
            admitting.add(task)
            task.add_done_callback(admitting.discard)
            await asyncio.sleep(ACCEPT_INTERVAL_S)

    acceptors = [asyncio.create_task(accept(s), name="web-accept") for s in sockets]
    try:
        yield
    finally:
        for task in [*acceptors, *admitting]:
            task.cancel()
        for task in [*acceptors, *admitting]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sock in sockets:
            sock.close()
