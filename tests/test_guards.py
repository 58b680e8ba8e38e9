"""The suite-wide guards of tests/conftest.py, run on a tiny test file in a fresh pytest."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SAMPLE = """
import asyncio
import threading
import time

import pytest


def spin(seconds):
    # CPU time, not wall time: on a loaded machine the block is still `seconds` long
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


async def test_cpu_block():
    spin(0.2)


async def test_sleep_block():
    time.sleep(0.6)


async def test_awaits():
    await asyncio.sleep(0.2)
    await asyncio.to_thread(time.sleep, 0.2)


async def test_short_callbacks():
    for _ in range(10):
        spin(0.03)
        await asyncio.sleep(0)


@pytest.mark.blocking_ok("stalls the loop on purpose")
async def test_allowed():
    spin(0.2)


@pytest.mark.blocking_ok()
def test_no_reason():
    pass


def test_leaks_thread():
    threading.Thread(target=time.sleep, args=(10,), name="leaky", daemon=True).start()


def test_thread_ends_soon():
    threading.Thread(target=time.sleep, args=(0.3,), name="brief").start()


# a loop that outlives the test, as a module-scoped fixture's does: its executor's worker
# is reused by later tests, so it is not a leak
OPEN_LOOP = asyncio.new_event_loop()


def test_worker_of_an_open_loop():
    OPEN_LOOP.run_until_complete(OPEN_LOOP.run_in_executor(None, time.sleep, 0))


def test_blocks_loop_in_a_thread():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    loop.call_soon_threadsafe(spin, 0.2)
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()
"""

INI = """[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
markers =
    blocking_ok(reason): as in pyproject.toml
"""


def run_sample(tmp_path: Path) -> str:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    (tmp_path / "pytest.ini").write_text(INI)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-rA"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return out.stdout + out.stderr


def outcome(report: str, test: str) -> str:
    """ERROR if the guard failed the test (at setup or teardown), else PASSED or FAILED."""
    found = {
        line.split()[0]
        for line in report.splitlines()
        if re.match(rf"(PASSED|FAILED|ERROR) test_sample\.py::{test}( |$)", line)
    }
    assert found, f"{test} not in the report:\n{report}"
    return "ERROR" if "ERROR" in found else found.pop()


def test_guards(tmp_path: Path) -> None:
    report = run_sample(tmp_path)
    assert outcome(report, "test_cpu_block") == "ERROR", report
    assert outcome(report, "test_sleep_block") == "ERROR", report
    assert outcome(report, "test_awaits") == "PASSED", report
    assert outcome(report, "test_short_callbacks") == "PASSED", report
    assert outcome(report, "test_allowed") == "PASSED", report
    assert outcome(report, "test_no_reason") == "ERROR", report
    assert outcome(report, "test_leaks_thread") == "ERROR", report
    assert outcome(report, "test_thread_ends_soon") == "PASSED", report
    assert outcome(report, "test_worker_of_an_open_loop") == "PASSED", report
    assert outcome(report, "test_blocks_loop_in_a_thread") == "ERROR", report
    # the failure names the callback and shows where the time went
    assert "task 'Task-" in report
    assert "'test_cpu_block'" in report
    assert "test_sample.py:" in report
    # the stack sampler needs a CPU while the loop is blocked: on a loaded machine one of
    # the three samples may come too late, not all of them
    assert "sampled while blocked:" in report
    assert "needs a reason" in report
    assert "thread 'leaky'" in report
