"""Announce the gateway on the LAN (``_doorkeep._tcp.local.``) and find gateways.

The TXT record carries the site id, its name, the doorkeep version, the scheme and the
TLS certificate's SHA-256 fingerprint, so `doorkeep discover` can print an address and a
fingerprint to compare with what the browser shows.

`Advertiser` is an ``async with`` resource owned by the daemon; `discover` browses for
``timeout_s`` seconds and resolves every gateway it heard.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

if TYPE_CHECKING:
    from types import TracebackType

SERVICE_TYPE = "_doorkeep._tcp.local."
RESOLVE_TIMEOUT_MS = 1500


@dataclass(frozen=True, slots=True)
class Gateway:
    """One gateway found on the LAN."""

    site_id: str
    name: str
    version: str
    addresses: tuple[str, ...]
    port: int
    tls: bool
    fingerprint: str | None

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is not a TCP port")

    @property
    def url(self) -> str:
        """The UI address of the first resolved address."""
        scheme = "https" if self.tls else "http"
        host = self.addresses[0] if self.addresses else f"{self.site_id}.local"
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}/"


def txt_record(
    *, site_id: str, name: str, version: str, port: int, fingerprint: str | None
) -> dict[str, str]:
    """The TXT properties of the service (data, so tests can check them)."""
    txt = {"site": site_id, "name": name, "version": version, "port": str(port)}
    txt["tls"] = "1" if fingerprint else "0"
    if fingerprint:
        txt["fp"] = fingerprint
    return txt


class Advertiser:
    """Announce this gateway while open: ``async with Advertiser(...):``."""

    def __init__(
        self,
        *,
        site_id: str,
        name: str,
        version: str,
        port: int,
        addresses: list[str],
        fingerprint: str | None = None,
        interfaces: list[str] | None = None,
    ) -> None:
        self._info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"{site_id}.{SERVICE_TYPE}",
            port=port,
            properties=txt_record(
                site_id=site_id, name=name, version=version, port=port, fingerprint=fingerprint
            ),
            server=f"doorkeep-{site_id}.local.",
            addresses=[socket.inet_aton(a) for a in addresses],
        )
        self._interfaces = interfaces
        self._zc: AsyncZeroconf | None = None

    async def __aenter__(self) -> Self:
        self._zc = _zeroconf(self._interfaces)
        # Another gateway with the same site id gets a "(2)" name instead of a clash.
        await self._zc.async_register_service(self._info, allow_name_change=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._zc is not None:
            await self._zc.async_unregister_service(self._info)
            await self._zc.async_close()
            self._zc = None


def _zeroconf(interfaces: list[str] | None) -> AsyncZeroconf:
    if interfaces:
        return AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
    return AsyncZeroconf(ip_version=IPVersion.V4Only)


async def discover(timeout_s: float = 3.0, *, interfaces: list[str] | None = None) -> list[Gateway]:
    """Browse the LAN for ``timeout_s`` seconds; return every gateway that resolved."""
    names: set[str] = set()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        del zeroconf, service_type
        if state_change is not ServiceStateChange.Removed:
            names.add(name)

    async with _zeroconf(interfaces) as azc:
        browser = AsyncServiceBrowser(azc.zeroconf, SERVICE_TYPE, handlers=[on_change])
        try:
            await asyncio.sleep(timeout_s)
        finally:
            await browser.async_cancel()
        found = []
        for name in sorted(names):
            info = AsyncServiceInfo(SERVICE_TYPE, name)
            if await info.async_request(azc.zeroconf, RESOLVE_TIMEOUT_MS):
                gateway = _gateway(info)
                if gateway is not None:
                    found.append(gateway)
    return found


def _gateway(info: AsyncServiceInfo) -> Gateway | None:
    props = {k.decode(): (v.decode() if v is not None else "") for k, v in info.properties.items()}
    if "site" not in props or info.port is None:
        return None  # not one of ours, or half-resolved: skip rather than guess
    addresses = tuple(str(ipaddress.ip_address(a)) for a in info.addresses)
    return Gateway(
        site_id=props["site"],
        name=props.get("name", ""),
        version=props.get("version", ""),
        addresses=addresses,
        port=info.port,
        tls=props.get("tls") == "1",
        fingerprint=props.get("fp") or None,
    )
