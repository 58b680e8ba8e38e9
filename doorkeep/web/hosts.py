"""Which ``Host`` a server answers to: the guard against DNS rebinding.

A web page on ``rebind.attacker.example`` can make its name resolve to the gateway's
address; the browser then sends ``Host: rebind.attacker.example`` and a matching
``Origin``, so comparing Origin with Host proves nothing. The server's own names are a
short list (the listen address, loopback, the machine's host name and ``<name>.local``,
the TLS certificate's names, and what the installer adds), and anything else is refused.
An IP address literal is always accepted: a browser sends one only when the user typed
it, and an address cannot be rebound.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
HOST_NAME_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?$", re.IGNORECASE)
_ANY = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - names, not a bind


def check_host_name(value: object) -> str | None:
    """What is wrong with ``value`` as an ``allowed_hosts`` entry, or None."""
    if isinstance(value, str) and len(value) <= 253 and HOST_NAME_RE.match(value):
        return None
    return 'must be a host name like "doors.example.org" (no scheme, no port)'


def host_name(header: str) -> str:
    """The name part of a ``Host`` header: no port, no brackets, lower case, no final dot."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    name, sep, port = header.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        header = name
    return header.rstrip(".")


def is_address(name: str) -> bool:
    """True for an IPv4 or IPv6 address literal (with or without a zone)."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def own_names(listen_host: str, *extra: str) -> frozenset[str]:
    """The names this machine answers to: loopback, its host name (and ``.local``), the
    listen host and ``extra`` (certificate names, ``[web] allowed_hosts``)."""
    machine = socket.gethostname().lower()
    names = {"localhost", machine, machine.split(".")[0] + ".local", *extra}
    if listen_host not in _ANY:
        names.add(listen_host)
    return frozenset(host_name(n) for n in names if n)


class AllowedHosts:
    """Decides whether a ``Host`` header names this server."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(host_name(n) for n in names)

    def allows(self, header: str | None) -> bool:
        """True for one of the names, any address literal, or no Host at all (not a browser)."""
        if header is None:
            return True
        name = host_name(header)
        return name in self.names or is_address(name)

    def refusal(self, header: str) -> str:
        """The message of a refused ``Host``: what it was and what to do."""
        name = host_name(header)[:80]
        known = ", ".join(sorted(self.names))
        return (
            f"this gateway does not answer to the name {name!r} (a guard against DNS "
            f"rebinding); open it as one of {known} or by its IP address, or add "
            f"{name!r} to [web] allowed_hosts in site.toml"
        )
