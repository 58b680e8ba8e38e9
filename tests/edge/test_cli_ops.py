"""The command line as an operator runs it day to day: secrets off the command line,
tokens that never collide (issue 10)."""

from __future__ import annotations

import io
import json

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
