"""``doorkeep status``: ask the running daemon's ``/health`` and print every component.

It talks to the daemon over its own listen address, as any client would: under TLS it
trusts exactly the site's certificate in ``data_dir`` (pinned; nothing else verifies),
so it works on a gateway whose certificate no CA signed. Exit 0 when every component is
ok, 1 when one is not or the daemon does not answer.
"""

from __future__ import annotations

import argparse
import json
import ssl
import urllib.error
import urllib.request
from typing import Any

from edge.cli._common import UserError, _load_config, _print_json

#: How long to wait for the daemon's answer.
TIMEOUT_S = 5.0

# A wildcard listen address is reached on the loopback of the same family.
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}  # noqa: S104 - not a bind


def health_url(config: Any) -> str:
    """The daemon's ``/health`` as seen from this machine."""
    host = _LOOPBACK.get(config.web.host, config.web.host)
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if config.web.tls else "http"
    return f"{scheme}://{host}:{config.web.port}/api/v1/health"


def _pinned_context(config: Any) -> ssl.SSLContext:
    from edge.tls import CERT_FILE  # noqa: PLC0415

    cert = config.site.data_dir / CERT_FILE
    if not cert.exists():
        raise UserError(f"{cert} is missing: the daemon has not made its certificate yet")
    context = ssl.create_default_context(cafile=str(cert))
    # Only this one certificate is trusted, so the name it is reached by adds nothing
    # (a gateway is reached by an IP address as often as by a name).
    context.check_hostname = False
    return context


def fetch_health(config: Any) -> dict[str, Any]:
    """The daemon's /health answer; UserError in one line when it does not answer."""
    url = health_url(config)
    context = _pinned_context(config) if config.web.tls else None
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S, context=context) as resp:  # noqa: S310 - our own URL
            body: dict[str, Any] = json.loads(resp.read())
    except urllib.error.URLError as err:
        why = err.reason if isinstance(err.reason, str) else getattr(err.reason, "strerror", None)
        raise UserError(
            f"the daemon does not answer at {url} ({why or err.reason}); is `doorkeep run` running?"
        ) from err
    except (OSError, ValueError) as err:
        raise UserError(f"the daemon does not answer at {url} ({err})") from err
    return body


def format_health(health: dict[str, Any]) -> list[str]:
    """One line for the site, one per component (with the reason when not ok)."""
    site, state = health.get("site"), health.get("status")
    version, policy = health.get("version"), health.get("policy_version")
    lines = [f"site {site}: {state} (doorkeep {version}, policy version {policy})"]
    for c in health.get("components", []):
        mark = "ok  " if c["ok"] else "FAIL"
        lines.append(f"  {mark} {c['name']}" + ("" if c["ok"] else f": {c['reason']}"))
    return lines


def cmd_status(args: argparse.Namespace) -> int:
    health = fetch_health(_load_config(args))
    if args.json:
        _print_json(health)
    else:
        print("\n".join(format_health(health)))
    return 0 if health.get("status") == "ok" else 1
