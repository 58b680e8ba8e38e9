"""Every curl command the docs and the README show works as written against a running
``doorkeep run``: the docs' request, unchanged but for where it goes.

A user pastes these. The host, port and scheme become the test daemon's (TLS on a free
loopback port, so ``-k`` is added where the doc's URL was plain http); ``$TOKEN`` and a
``…`` token become an admin token, ``$READER_TOKEN`` the reader token the docs' command
makes. The site is the browser tests' site plus what the docs assume: the http reader
``garage-lpr`` and ``[notify]`` email to a real SMTP server (aiosmtpd) on loopback. The
answer must be 2xx: a 400 for a missing ``Content-Type`` is a broken promise.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.config import write_site_toml
from tests.e2e.conftest import Daemon
from tests.edge.notify.conftest import Mailbox, Smtp, free_port

ROOT_DIR = Path(__file__).resolve().parents[2]
_URL = re.compile(r"https?://[^/\s\"']+")


def documented_curls() -> list[tuple[str, str]]:
    found = []
    for path in [ROOT_DIR / "README.md", *sorted((ROOT_DIR / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.DOTALL):
            for raw in block.replace("\\\n", " ").splitlines():
                line = " ".join(raw.strip().removeprefix("$").split())
                if line.startswith("curl "):
                    found.append((path.name, line))
    return found


CURLS = documented_curls()


def test_the_docs_show_curl_commands_at_all() -> None:
    assert {"demo.md", "web-ui.md", "hardware.md", "import-export.md"} <= {w for w, _ in CURLS}


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    server = Smtp(free_port(), Mailbox())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def documented_site(tmp_path: Path, site_template: Path, smtp: Smtp) -> Path:
    """The browser tests' site with the docs' http reader and [notify] email."""
    template = tmp_path / "template"
    shutil.copytree(site_template, template)
    cfg = tomllib.loads((template / "site.toml").read_text())
    cfg["reader"].append({"id": "garage-lpr", "door": "gate", "type": "http"})
    cfg["notify"] = {
        "email_to": ["pm@example.org"],
        "smtp": {
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "none",
            "from": "doorkeep@example.org",
        },
    }
    write_site_toml(template / "site.toml", cfg)
    return template


@pytest.mark.parametrize(
    ("where", "line"), CURLS, ids=[f"{w}:{i}" for i, (w, _) in enumerate(CURLS)]
)
def test_a_documented_curl_works_as_written(
    where: str, line: str, tmp_path: Path, documented_site: Path, smtp: Smtp
) -> None:
    daemon = Daemon(tmp_path / "site", documented_site)
    try:
        daemon.make_admin()
        assert daemon.token is not None
        made = daemon.cli("reader", "token", "garage-lpr", "-c", str(daemon.config))
        reader_token = re.findall(r"dkr_\S+", made)[0]
        # the import example uploads the template the docs tell one to download first
        work = tmp_path / "work"
        work.mkdir()
        template = subprocess.run(
            ["curl", "-sk", "-H", f"Authorization: Bearer {daemon.token}",
             f"{daemon.url}/api/v1/templates/residents?format=xlsx", "-o", "residents.xlsx"],
            cwd=work, check=True, timeout=30,
        )  # fmt: skip
        assert template.returncode == 0
        args = shlex.split(_URL.sub(daemon.url, line))
        args = [
            a.replace("$TOKEN", daemon.token)
            .replace("$READER_TOKEN", reader_token)
            .replace("Bearer …", f"Bearer {daemon.token}")
            for a in args
        ]
        if "-k" not in args and "-sk" not in args:
            args.insert(1, "-k")
        done = subprocess.run(
            [*args, "-w", "\n%{http_code}"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        body, _, status = done.stdout.rpartition("\n")
        assert done.returncode == 0, done.stderr
        assert status.startswith("2"), f"{where}: {line}\n-> {status} {body}"
    finally:
        daemon.close()
