"""The site certificate (edge/tls.py) and LAN discovery (edge/mdns.py)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import ssl
import stat
from pathlib import Path

from aiohttp import web

from edge.mdns import SERVICE_TYPE, Advertiser, discover, txt_record
from edge.tls import ensure_certificate, fingerprint, server_context


def test_certificate_is_made_once_with_a_private_key_only_the_owner_reads(tmp_path: Path) -> None:
    cert, key = ensure_certificate(tmp_path / "data", hostname="doorkeep-demo.local")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    fp = fingerprint(cert)
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", fp)
    again = ensure_certificate(tmp_path / "data", hostname="doorkeep-demo.local")
    assert again == (cert, key)
    assert fingerprint(cert) == fp  # not re-made


async def test_server_presents_the_certificate_with_the_printed_fingerprint(
    tmp_path: Path,
) -> None:
    cert, key = ensure_certificate(tmp_path, hostname="doorkeep-demo.local")

    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(cert, key))
    await site.start()
    port = runner.addresses[0][1]
    try:
        client = ssl.create_default_context()
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE  # pinned by fingerprint below, as an installer does
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        seen = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
        assert seen == fingerprint(cert)
        assert writer.get_extra_info("ssl_object").version() in {"TLSv1.2", "TLSv1.3"}
        writer.close()
        await writer.wait_closed()
        del reader
    finally:
        await runner.cleanup()


def test_txt_record_carries_site_version_port_and_fingerprint() -> None:
    txt = txt_record(
        site_id="demo", name="Community 1", version="0.1.0", port=8443, fingerprint="AA:BB"
    )
    assert txt == {
        "site": "demo", "name": "Community 1", "version": "0.1.0", "port": "8443",
        "tls": "1", "fp": "AA:BB",
    }  # fmt: skip
    assert txt_record(site_id="d", name="n", version="v", port=80, fingerprint=None)["tls"] == "0"


async def test_advertised_gateway_is_discovered_on_loopback() -> None:
    async with Advertiser(
        site_id="mdns-test",
        name="Test site",
        version="0.1.0",
        port=8443,
        addresses=["127.0.0.1"],
        fingerprint="AB:CD:EF",
        interfaces=["127.0.0.1"],
    ):
        found = await discover(0.8, interfaces=["127.0.0.1"])
    mine = [g for g in found if g.site_id == "mdns-test"]
    assert len(mine) == 1
    gw = mine[0]
    assert (gw.name, gw.version, gw.port, gw.tls, gw.fingerprint) == (
        "Test site", "0.1.0", 8443, True, "AB:CD:EF",
    )  # fmt: skip
    assert "127.0.0.1" in gw.addresses
    assert gw.url == "https://127.0.0.1:8443/"
    assert SERVICE_TYPE == "_doorkeep._tcp.local."
