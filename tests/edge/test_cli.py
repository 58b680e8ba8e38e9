"""The doorkeep command line, as an installer types it."""

from __future__ import annotations

import csv
import io
import json
import stat
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from edge.cli import main

from .conftest import ROOT

POLICY = {
    "format": "doorkeep.policy/1",
    "buildings": [{"id": "B1"}],
    "people": [{"id": "p-1", "kind": "staff", "groups": ["g-1"]}],
    "credentials": [{"id": "c-1", "person": "p-1", "kind": "pin", "value": "4242"}],
    "groups": [
        {
            "id": "g-1",
            "building_default": "B1",
            "doors": ["gate"],
            "schedule": {"repeat": "daily", "start": "00:00", "end": "23:59:59"},
        }
    ],
}


@pytest.fixture
def site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Path:
    assert (
        main(
            [
                "init",
                str(tmp_path / "s"),
                "--site-id",
                "s1",
                "--timezone",
                "Europe/Berlin",
                "--simulation",
            ]
        )
        == 0
    )
    capsys.readouterr()
    monkeypatch.setenv("DOORKEEP_CONFIG", str(tmp_path / "s" / "site.toml"))
    return tmp_path / "s"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_policy(tmp_path: Path, doc: dict) -> str:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_init_writes_a_valid_site_a_private_secret_and_prints_a_setup_code(tmp_path, capsys):
    code, out, _ = run(capsys, "init", str(tmp_path / "x"), "--site-id", "x1", "--simulation")
    assert code == 0
    assert (tmp_path / "x" / "site.toml").exists()
    secret = tmp_path / "x" / "data" / "keys" / "site.secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert "setup code" in out and out.strip().split()[-1]
    code, _, err = run(capsys, "init", str(tmp_path / "x"))
    assert code == 1 and "exists already" in err


def test_check_passes_on_a_fresh_site_and_lists_every_config_error(site, capsys):
    code, out, _ = run(capsys, "check")
    assert code == 0 and "valid" in out
    text = (site / "site.toml").read_text()
    text = text.replace('timezone = "Europe/Berlin"', 'timezone = "Mars/Olympus"')
    text = text.replace('relay = "relays-a:1"', 'relay = "nowhere:1"')
    (site / "site.toml").write_text(text)
    code, _, err = run(capsys, "check")
    assert code == 1
    assert "Mars/Olympus" in err and "nowhere" in err and "timezone" in err


def test_policy_validate_lists_every_problem_and_exits_1(site, tmp_path, capsys):
    bad = json.loads(json.dumps(POLICY))
    bad["credentials"][0]["value"] = "9"
    bad["people"][0]["groups"] = ["g-missing"]
    code, _, err = run(capsys, "policy", "validate", write_policy(tmp_path, bad))
    assert code == 1
    assert "credentials/c-1" in err and "people/p-1" in err
    assert run(capsys, "policy", "validate", write_policy(tmp_path, POLICY))[0] == 0


def test_policy_apply_then_export_has_no_plaintext_and_reapplies(site, tmp_path, capsys):
    code, out, _ = run(capsys, "policy", "apply", write_policy(tmp_path, POLICY))
    assert code == 0 and "version 1" in out
    code, out, _ = run(capsys, "policy", "export")
    exported = json.loads(out)
    assert "4242" not in out and exported["credentials"][0]["value_hmac"]
    code, out, _ = run(capsys, "policy", "apply", write_policy(tmp_path, exported))
    assert code == 0 and "version 2" in out


def test_decide_is_a_json_dry_run_that_changes_nothing(site, tmp_path, capsys):
    run(capsys, "policy", "apply", write_policy(tmp_path, POLICY))
    code, out, _ = run(capsys, "decide", "--reader", "gate-in", "--kind", "pin", "--value", "4242")
    assert code == 0 and json.loads(out)["granted"] is True and json.loads(out)["person"] == "p-1"
    code, out, _ = run(capsys, "decide", "--reader", "gate-in", "--kind", "pin", "--value", "1111")
    assert json.loads(out)["reason"] == "unknown_credential"
    code, out, _ = run(capsys, "events")
    assert json.loads(out) == []


def test_decide_with_a_malformed_presentation_exits_1_with_the_reason(site, capsys):
    code, _, err = run(
        capsys, "decide", "--reader", "gate-in", "--kind", "password", "--value", "x"
    )
    assert code == 1 and "kind 'password'" in err
    code, _, err = run(
        capsys, "decide", "--reader", "gate-in", "--kind", "pin", "--value", "1", "--at", "noon"
    )
    assert code == 1 and "ISO 8601" in err


async def _present(config: Path) -> None:
    from edge.service import Site

    async with Site.open(config, with_hardware=False) as running:
        await running.present("gate-in", "pin", "4242")
        await running.present("gate-in", "pin", "0000")


def test_events_export_as_json_csv_and_xlsx(site, tmp_path, capsys):
    import asyncio

    run(capsys, "policy", "apply", write_policy(tmp_path, POLICY))
    asyncio.run(_present(site / "site.toml"))
    code, out, _ = run(capsys, "events", "--type", "access")
    rows = json.loads(out)
    assert code == 0 and [r["reason"] for r in rows] == ["unknown_credential", None]
    code, out, _ = run(capsys, "events", "--format", "csv", "--result", "failed")
    table = list(csv.DictReader(io.StringIO(out)))
    # Times and chain hashes are digits too: look for the PINs in every other cell.
    cells = [v for row in table for k, v in row.items() if not k.startswith("Time")]
    assert len(table) == 1 and not any(pin in c for c in cells for pin in ("0000", "4242"))
    xlsx = tmp_path / "events.xlsx"
    assert run(capsys, "events", "--format", "xlsx", "-o", str(xlsx))[0] == 0
    sheet = openpyxl.load_workbook(xlsx).active
    assert sheet.max_row == 3  # header + 2 events


def test_token_create_prints_a_token_once(site, capsys):
    code, out, _ = run(capsys, "token", "create", "--role", "viewer")
    assert code == 0 and len(out.strip()) >= 20
    assert out.strip() not in (site / "data" / "auth.db").read_bytes().decode("latin-1")


def test_boards_lists_the_catalogue(capsys):
    code, out, _ = run(capsys, "boards")
    assert code == 0 and "waveshare-rtu-relay-8" in out and "eletechsup-r4d3b16" in out


def test_usage_errors_exit_2():
    result = subprocess.run(
        [sys.executable, "-m", "edge.cli", "policy"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2 and "usage" in result.stderr


def test_relay_test_pulses_a_simulated_relay(site, capsys):
    code, out, _ = run(capsys, "relay", "test", "relays-a:1", "--ms", "200")
    assert code == 0 and "pulsed" in out
    code, out, _ = run(capsys, "bus", "scan", "sim-1")
    assert code == 0 and "1 board(s) answer: 1" in out


def test_events_take_plain_dates_as_whole_days_in_the_site_zone(site, tmp_path, capsys):
    import asyncio

    run(capsys, "policy", "apply", write_policy(tmp_path, POLICY))
    asyncio.run(_present(site / "site.toml"))
    today = datetime.now(ZoneInfo("Europe/Berlin")).date()
    code, out, _ = run(capsys, "events", "--since", today.isoformat(), "--until", today.isoformat())
    assert code == 0 and len(json.loads(out)) == 2
    code, out, _ = run(capsys, "events", "--until", (today - timedelta(days=1)).isoformat())
    assert code == 0 and json.loads(out) == []
    code, _, err = run(capsys, "events", "--since", "yesterday")
    assert code == 1 and "neither a date" in err


def test_policy_apply_refuses_a_duress_pin_that_is_a_temp_key_code(site, tmp_path, capsys):
    doc = json.loads(json.dumps(POLICY))
    doc["settings"] = {"duress": True}
    doc["credentials"][0]["value"] = "89999999"  # duress form 90000000 (issue 9/9)
    doc["temp_keys"] = [
        {
            "id": "t-1",
            "kind": "pin",
            "code": "90000000",
            "doors": ["gate"],
            "schedule": {"repeat": "daily", "start": "00:00", "end": "23:59:59"},
        }
    ]
    for command in ("validate", "apply"):
        code, _, err = run(capsys, "policy", command, write_policy(tmp_path, doc))
        assert code == 1, command
        assert "temp_keys/t-1" in err and "credentials/c-1" in err
        assert "89999999" not in err and "90000000" not in err
