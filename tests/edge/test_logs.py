"""The daemon's log: text by default, one JSON object per line when asked (log shippers)."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from edge import logs


def test_a_json_line_carries_time_level_logger_message_and_extras() -> None:
    record = logging.LogRecord("doorkeep.bus", logging.WARNING, "x.py", 1, "board %s", ("a",), None)
    record.board = "relays-a"
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["level"] == "WARNING" and line["logger"] == "doorkeep.bus"
    assert line["message"] == "board a" and line["board"] == "relays-a"
    assert line["time"].endswith("+00:00")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_doorkeep_run_with_log_format_json_writes_only_json_lines(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "edge.cli"]
    env = {**os.environ, "DOORKEEP_MDNS": "0", "PYTHONUNBUFFERED": "1"}
    subprocess.run([*cli, "init", str(tmp_path / "s"), "--simulation"], check=True, env=env)
    toml = tmp_path / "s" / "site.toml"
    toml.write_text(
        re.sub(r'listen = "[^"]*"', f'listen = "127.0.0.1:{_free_port()}"', toml.read_text())
    )
    err = (tmp_path / "stderr").open("w+")
    proc = subprocess.Popen(
        [*cli, "run", "-v", "--log-format", "json", "-c", str(toml)],
        stdout=subprocess.PIPE,
        stderr=err,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while "serving" not in proc.stdout.readline():
            assert time.monotonic() < deadline and proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(15)
        err.close()
    lines = (tmp_path / "stderr").read_text().splitlines()
    assert lines, "the daemon logged nothing"
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
