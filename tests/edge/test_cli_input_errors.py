"""Hostile files given to the command line, run as the docs show it (issue 9, finding 10).

Each one must end in exit 1 and one clear ``error:`` line that says what to change: no
traceback, nothing applied.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

DOORKEEP = [sys.executable, "-m", "edge.cli"]


def doorkeep(*args: str, config: Path, stdin: bytes | None = None) -> tuple[int, str, str]:
    env = {**os.environ, "DOORKEEP_CONFIG": str(config), "DOORKEEP_MDNS": "0"}
    out = subprocess.run(
        [*DOORKEEP, *args], capture_output=True, input=stdin, env=env, cwd=ROOT, check=False
    )
    return out.returncode, out.stdout.decode(), out.stderr.decode()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "s"
    code, _, err = doorkeep(
        "init", str(root), "--site-id", "s1", "--simulation", config=root / "site.toml"
    )
    assert code == 0, err
    return root / "site.toml"


def assert_one_clear_error(code: int, out: str, err: str, *words: str, lines: int = 1) -> None:
    """Exit 1 and one problem; ``lines`` is 2 for site.toml, whose errors open with a
    heading line (``site.toml: 1 problem in the site configuration:``)."""
    assert code == 1, (code, out, err[-2000:])
    assert "Traceback" not in err and "Traceback" not in out, err[-2000:]
    printed = err.strip().splitlines()
    assert len(printed) == lines and printed[0].startswith("error: "), err[-2000:]
    problem = printed[-1]
    assert len(problem) < 300, problem
    for word in words:
        assert word in problem, problem


DEEP = ("[" * 100_000 + "]" * 100_000).encode()
NOT_UTF8 = b'{"format": "doorkeep.policy/1", "people": [{"id": "p-1", "name": "J\xfcrgen"}]}'
# A lone surrogate is valid JSON text (an escape) but no Unicode character.
SURROGATE = b'{"format": "doorkeep.policy/1", "buildings": [{"id": "B1", "name": "Tower \\ud800"}]}'

# name: (file bytes, words the problem line must hold, lines printed). A policy problem
# prints as a heading and the problem (the same form as `validate` listing many).
HOSTILE = {
    "deeply nested": (DEEP, ["nested", "levels"], 1),
    "not UTF-8": (NOT_UTF8, ["UTF-8", f"byte {NOT_UTF8.index(0xFC)} is 0xfc"], 1),
    "lone surrogate": (SURROGATE, ["buildings/B1: name:", "lone surrogate"], 2),
}


@pytest.mark.parametrize("action", ["validate", "apply"])
@pytest.mark.parametrize("name", list(HOSTILE))
def test_policy_commands_refuse_hostile_files_with_one_clear_line(
    site: Path, tmp_path: Path, action: str, name: str
) -> None:
    data, words, lines = HOSTILE[name]
    path = tmp_path / "policy.json"
    path.write_bytes(data)
    code, out, err = doorkeep("policy", action, str(path), config=site)
    assert_one_clear_error(code, out, err, *words, lines=lines)
    assert str(path) in err or action == "apply"
    # From stdin too, as `doorkeep policy apply -` reads it.
    code, out, err = doorkeep("policy", action, "-", config=site, stdin=data)
    assert_one_clear_error(code, out, err, *words, lines=lines)
    # Nothing was applied: the stored policy is still the empty one `init` made.
    code, out, err = doorkeep("policy", "export", config=site)
    assert code == 0, err
    assert json.loads(out)["buildings"] == []


def test_check_refuses_a_deeply_nested_toml_array_with_one_clear_line(
    site: Path, tmp_path: Path
) -> None:
    deep = tmp_path / "site.toml"
    deep.write_text(site.read_text() + "\n[extra]\nx = " + "[" * 2000 + "]" * 2000 + "\n")
    # data_dir is relative to the file: point at the same data as the real site.
    deep.write_text(
        deep.read_text().replace('data_dir = "data"', f'data_dir = "{site.parent}/data"')
    )
    code, out, err = doorkeep("check", "-c", str(deep), config=site)
    assert_one_clear_error(code, out, err, str(deep), "nested", "levels", lines=2)
