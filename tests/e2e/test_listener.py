"""The daemon's accept loop (edge/listener.py) over TLS: clients that connect and say
nothing, or speak no TLS, take nobody else's turn; the daemon keeps answering."""

from __future__ import annotations

import socket

from tests.e2e.conftest import Daemon


def test_silent_and_non_tls_clients_do_not_stop_the_daemon_answering(daemon: Daemon) -> None:
    daemon.make_admin()
    silent = [socket.create_connection(("127.0.0.1", daemon.port)) for _ in range(50)]
    try:
        with socket.create_connection(("127.0.0.1", daemon.port)) as plain:
            plain.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            plain.settimeout(15)
            assert plain.recv(100) == b""  # not TLS: dropped without an answer
        for _ in range(3):  # new TLS connections are taken while the 50 still wait
            assert daemon.api("GET", "/health")["status"] in ("ok", "degraded")
        assert daemon.proc.poll() is None
    finally:
        for sock in silent:
            sock.close()
