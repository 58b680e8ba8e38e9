"""``doorkeep reader provision READER``: give an OSDP reader its Secure Channel key.

The key exchange happens on the running daemon's serial line, so the command asks the
daemon, as any client would: ``POST /api/v1/readers/{id}/provision`` over its own listen
address (TLS pinned to the site's certificate, as ``doorkeep status``), with an installer
token made for this one call (named ``provision-<reader>-<time>`` in the operation log)
and deleted afterwards. It then follows ``GET /readers`` until the window closes and
prints the outcome: exit 0 when the reader came back with its own key, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

from edge.cli._common import UserError, _load_config
from edge.cli.status import TIMEOUT_S, _pinned_context, health_url


def _call(config: Any, token: str, method: str, path: str, body: Any = None) -> Any:
    url = health_url(config).removesuffix("/health") + path
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - our own URL
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    context = _pinned_context(config) if config.web.tls else None
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context) as resp:  # noqa: S310
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        try:
            message = json.loads(err.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = err.reason
        raise UserError(f"the daemon refused: {message}") from err
    except (urllib.error.URLError, OSError) as err:
        raise UserError(
            f"the daemon does not answer at {url} ({err}); provisioning needs `doorkeep run` "
            "running, since it talks to the reader on the daemon's serial line"
        ) from err


def cmd_reader_provision(args: argparse.Namespace) -> int:
    from edge.auth import AuthStore  # noqa: PLC0415
    from edge.daemon import auth_path  # noqa: PLC0415

    config = _load_config(args)
    try:
        reader = config.reader(args.reader)
    except KeyError:
        known = ", ".join(r.id for r in config.readers if r.type == "osdp") or "none"
        raise UserError(
            f"reader {args.reader!r} is not in site.toml (OSDP readers: {known})"
        ) from None
    if reader.type != "osdp":
        raise UserError(f'reader {reader.id!r} is type = "{reader.type}"; only osdp readers')
    name = f"provision-{reader.id}-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(2)}"
    auth = AuthStore.open(auth_path(config))
    try:
        token = auth.create_token("installer", name)
        try:
            return _provision(config, token, reader.id, args.seconds)
        finally:
            auth.delete_token(name)
    finally:
        auth.close()


def _provision(config: Any, token: str, reader: str, seconds: int) -> int:
    window = _call(config, token, "POST", f"/readers/{reader}/provision", {"seconds": seconds})
    print(
        f"reader {reader}: provisioning window open until {window['until']}; put the reader "
        "in install mode now (see its manual) if it is not"
    )
    deadline = time.monotonic() + seconds + 10
    outcome = "open"
    while time.monotonic() < deadline:
        time.sleep(1)
        rows = _call(config, token, "GET", "/readers")["items"]
        row = next((r for r in rows if r["id"] == reader), None)
        outcome = str(((row or {}).get("detail") or {}).get("provisioning", "open"))
        if outcome != "open":
            break
    print(f"reader {reader}: {outcome}")
    return 0 if outcome.startswith("provisioned") else 1
