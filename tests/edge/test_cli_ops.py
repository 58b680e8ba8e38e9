"""The command line as an operator runs it day to day: secrets off the command line,
tokens that never collide (issue 10)."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys

import pytest

from .test_cli import POLICY, run, site, write_policy

__all__ = ["site"]  # the fixture, shared with test_cli.py


def test_decide_reads_the_value_from_stdin_so_a_pin_stays_out_of_ps(
    site, tmp_path, capsys, monkeypatch: pytest.MonkeyPatch
):
    run(capsys, "policy", "apply", write_policy(tmp_path, POLICY))
    monkeypatch.setattr("sys.stdin", io.StringIO("4242\n"))
    code, out, _ = run(capsys, "decide", "--reader", "gate-in", "--kind", "pin", "--value", "-")
    assert code == 0 and json.loads(out)["granted"] is True
    monkeypatch.setattr("sys.stdin", io.StringIO("4243\n"))
    code, out, _ = run(capsys, "decide", "--reader", "gate-in", "--kind", "pin", "--value", "-")
    assert json.loads(out)["reason"] == "unknown_credential"


def test_decide_help_says_how_to_keep_the_value_off_the_command_line(capsys):
    with pytest.raises(SystemExit):
        run(capsys, "decide", "--help")
    assert "- reads it from stdin" in " ".join(capsys.readouterr().out.split())


def test_two_tokens_in_the_same_second_get_different_default_names(site, capsys):
    first = run(capsys, "token", "create", "--role", "viewer")
    second = run(capsys, "token", "create", "--role", "viewer")
    assert first[0] == 0 and second[0] == 0, second[2]
    assert first[1] != second[1]


def test_check_never_writes_and_names_a_missing_data_dir(tmp_path, capsys):
    toml = tmp_path / "site.toml"
    run(capsys, "init", str(tmp_path / "s"), "--site-id", "s1", "--simulation")
    text = (tmp_path / "s" / "site.toml").read_text()
    missing = tmp_path / "nonexistent" / "ro" / "x"
    toml.write_text(text.replace('data_dir = "data"', f'data_dir = "{missing}"'))
    code, _, err = run(capsys, "check", "-c", str(toml))
    assert code == 1 and str(missing) in err and "does not exist" in err
    assert not (tmp_path / "nonexistent").exists()


def test_check_of_a_site_leaves_its_data_dir_as_it_was(site, tmp_path, capsys):
    run(capsys, "policy", "apply", write_policy(tmp_path, POLICY))
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (site / "data").iterdir())
    code, out, _ = run(capsys, "check")
    assert code == 0 and "policy version 1" in out
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (site / "data").iterdir()) == before


def test_init_of_a_real_site_makes_the_tls_certificate_and_prints_its_fingerprint(tmp_path, capsys):
    from edge.tls import fingerprint

    code, out, _ = run(capsys, "init", str(tmp_path / "real"), "--site-id", "tower-a")
    assert code == 0
    assert "tls = true" in (tmp_path / "real" / "site.toml").read_text()
    cert = tmp_path / "real" / "data" / "tls-cert.pem"
    assert f"(SHA-256): {fingerprint(cert)}" in out


def _doorkeep(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_run_on_a_busy_port_says_so_in_one_line(tmp_path, capsys):
    run(capsys, "init", str(tmp_path / "s"), "--site-id", "s1", "--simulation")
    toml = tmp_path / "s" / "site.toml"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        text = toml.read_text()
        toml.write_text(re.sub(r'listen = "[^"]*"', f'listen = "127.0.0.1:{port}"', text))
        result = _doorkeep("run", "-c", str(toml))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        (
            f"error: cannot listen on 127.0.0.1:{port}: the port is in use by another "
            "program (another doorkeep?); stop it or change [web] listen "
            "(doorkeep demo: --listen HOST:PORT)"
        )
    ]
    assert "Traceback" not in result.stderr


def test_demo_with_a_bare_port_says_what_to_type_once_and_leaves_nothing(tmp_path):
    result = _doorkeep("demo", "--listen", "8081", env={"TMPDIR": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'error: --listen: must be "host:port" like "127.0.0.1:8080", got \'8081\''
    )
    assert list(tmp_path.iterdir()) == []


def test_a_config_error_quotes_the_bad_value_once(tmp_path, capsys):
    run(capsys, "init", str(tmp_path / "s"), "--site-id", "s1", "--simulation")
    toml = tmp_path / "s" / "site.toml"
    toml.write_text(re.sub(r'listen = "[^"]*"', 'listen = "8081"', toml.read_text()))
    code, _, err = run(capsys, "check", "-c", str(toml))
    assert code == 1 and err.count("'8081'") == 1


def test_demo_on_a_busy_port_says_so_in_one_line_and_leaves_nothing(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = _doorkeep("demo", "--listen", f"127.0.0.1:{port}", env={"TMPDIR": str(tmp_path)})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    busy = (
        f"error: cannot listen on 127.0.0.1:{port}: the port is in use by another program "
        "(another doorkeep?); stop it or change [web] listen (doorkeep demo: --listen HOST:PORT)"
    )
    assert result.stderr.strip().splitlines() == [busy]
    assert list(tmp_path.iterdir()) == []  # the demo's temporary site is gone
