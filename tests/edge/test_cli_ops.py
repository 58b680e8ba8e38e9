"""The command line as an operator runs it day to day: secrets off the command line,
tokens that never collide (issue 10)."""

from __future__ import annotations

import io
import json
from pathlib import Path

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
    toml.write_text(text.replace('data_dir = "data"', 'data_dir = "/nonexistent/ro/x"'))
    code, _, err = run(capsys, "check", "-c", str(toml))
    assert code == 1 and "/nonexistent/ro/x" in err and "does not exist" in err
    assert not Path("/nonexistent").exists()


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
