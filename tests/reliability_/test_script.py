"""benchmarks/reliability.py renders whatever rows the tests recorded."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from benchmarks import reliability as script

LOAD = {
    "test": "load: presentations over HTTP",
    "nodeid": "tests/e2e/test_load.py::test_load",
    "load": "200/s for 10 s",
    "faults": "-",
    "bad_inputs": "-",
    "losses": "0",
    "seconds": 12.3,
    "scale": 1.0,
    "figures": {"p50_ms": 3.1, "p99_ms": 9.8, "rss_mib": 61},
}
# A row from another helper's test: a pipe in a cell, no figures, an unknown extra key.
RELAY = {
    "test": "bus faults | wrong echo",
    "nodeid": "tests/rs485/test_faults.py::test_wrong_echo",
    "load": "500 writes",
    "faults": "wrong echo",
    "bad_inputs": "-",
    "losses": "0",
    "seconds": 2.0,
    "scale": 1.0,
    "figures": {},
    "extra": "ignored",
}


def test_two_json_lines_render_as_two_sorted_rows_with_their_figures() -> None:
    rows = script.read_rows([json.dumps(LOAD), "", json.dumps(RELAY)])
    table = script.render_table(rows).splitlines()
    assert table[0] == (
        "| test | load held | faults injected | bad inputs tried | losses | seconds | figures |"
    )
    assert table[1] == "|---|---|---|---|---|---|---|"
    assert table[2:] == [
        "| bus faults \\| wrong echo | 500 writes | wrong echo | - | 0 | 2 | - |",
        (
            "| load: presentations over HTTP | 200/s for 10 s | - | - | 0 | 12.3 "
            "| p50_ms 3.1, p99_ms 9.8, rss_mib 61 |"
        ),
    ]


def test_a_row_missing_columns_still_renders() -> None:
    table = script.render_table([{"test": "partial"}]).splitlines()
    assert table[2] == "| partial | - | - | - | - | - | - |"


def test_the_document_names_the_command_date_machine_and_what_it_leaves_out() -> None:
    doc = script.render_document(
        [LOAD, RELAY],
        command=".venv/bin/python -m benchmarks.reliability --long",
        when=datetime(2026, 12, 1, 10, 30, tzinfo=UTC),
        host=script.machine(),
        long=True,
    )
    assert "`.venv/bin/python -m benchmarks.reliability --long`" in doc
    assert "2026-12-01 10:30 UTC" in doc
    assert "cores (nproc)" in doc and "GiB memory" in doc
    assert "the long run" in doc and "2 rows" in doc
    assert "## What this leaves out" in doc
    assert doc.count("\n| ") == 3  # the heading row and two rows
