"""Rows of docs/reliability.md, recorded by the tests that prove them.

A test that belongs in the reliability table takes the ``reliability`` fixture and calls
``reliability.row(load=..., faults=..., bad_inputs=..., losses=...)`` once it has shown
its result (so a failing test records nothing). Such a test is marked ``reliability``
automatically. When ``DOORKEEP_RELIABILITY_OUT`` names a file, each row is appended to it
as one JSON line; ``benchmarks/reliability.py`` runs ``pytest -m reliability`` with that
set and renders the table. ``DOORKEEP_RELIABILITY_SCALE`` (default 1: the short version
that the README's test command runs) multiplies the size of the long runs: a test scales
its counts and durations by ``reliability.scale``. ``DOORKEEP_RELIABILITY_LONG=1`` (the
script's ``--long``) asks for the issue's long figures: ``reliability.scaled(10,
long=600)`` is then at least 600, whatever the scale.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

OUT_ENV = "DOORKEEP_RELIABILITY_OUT"
SCALE_ENV = "DOORKEEP_RELIABILITY_SCALE"
LONG_ENV = "DOORKEEP_RELIABILITY_LONG"


@dataclass
class Reliability:
    """What one reliability test reports: its load, the faults and bad inputs, the losses."""

    nodeid: str
    scale: float = field(default_factory=lambda: float(os.environ.get(SCALE_ENV, "1")))
    long: bool = field(default_factory=lambda: os.environ.get(LONG_ENV, "") == "1")
    started: float = field(default_factory=time.monotonic)

    def scaled(self, n: float, *, at_least: int = 1, long: float | None = None) -> int:
        """``n`` times the scale, as a whole count of at least ``at_least`` (and of at
        least ``long``, the issue's figure, in a long run)."""
        if self.long and long is not None:
            at_least = max(at_least, round(long))
        return max(at_least, round(n * self.scale))

    def row(
        self,
        *,
        test: str,
        load: str,
        faults: str = "-",
        bad_inputs: str = "-",
        losses: str = "0",
        **figures: Any,
    ) -> None:
        """Record this test's row of the table (call it after the assertions passed)."""
        out = os.environ.get(OUT_ENV)
        if not out:
            return
        record = {
            "test": test,
            "nodeid": self.nodeid,
            "load": load,
            "faults": faults,
            "bad_inputs": bad_inputs,
            "losses": losses,
            "seconds": round(time.monotonic() - self.started, 1),
            "scale": self.scale,
            "long": self.long,
            "figures": figures,
        }
        with Path(out).open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> Reliability:
    return Reliability(request.node.nodeid)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reliability: a row of docs/reliability.md (benchmarks/reliability.py)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "reliability" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.reliability)
