"""The ``HOST:PORT`` listen address of a web server."""

from __future__ import annotations

_MAX_PORT = 65535


def parse_listen(value: str, *, default_host: str | None = None) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` / ``"[::1]:8443"`` -> (host, port).

    An empty host is ``default_host`` when one is given, else an error. Raises ValueError
    naming the bad value and the expected form.
    """
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]") or (default_host or "")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= _MAX_PORT:
        raise ValueError(f'must be "host:port" like "127.0.0.1:8080", got {value!r}')
    return host, int(port)
