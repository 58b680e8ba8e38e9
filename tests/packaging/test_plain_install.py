"""A plain ``pip install .`` in a fresh venv gives a doorkeep whose every command starts.

The dev venv has more installed than a user's (playwright pulls in greenlet, which
SQLAlchemy's asyncio needs), so only a fresh venv shows a missing dependency.
"""

from __future__ import annotations

import shutil
import subprocess
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_plain_install_runs_the_edge_and_the_cloud_commands(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    pip = env_dir / "bin" / "pip"
    # a copy of the tree, so the build leaves nothing in the checkout
    src = tmp_path / "src"
    shutil.copytree(
        ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "*.egg-info", "build", "data")
    )
    subprocess.run([str(pip), "install", "-q", str(src)], check=True, timeout=600)
    doorkeep = env_dir / "bin" / "doorkeep"
    version = subprocess.run(
        [str(doorkeep), "--version"], check=True, capture_output=True, text=True
    )
    assert version.stdout.startswith("doorkeep ")
    cloud = subprocess.run(
        [str(doorkeep), "cloud", "--db", f"sqlite:///{tmp_path}/cloud.db", "site", "add", "s1"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=120,
    )
    assert cloud.returncode == 0, cloud.stderr
    assert "enrollment code" in cloud.stdout
    init = subprocess.run(
        [str(doorkeep), "init", str(tmp_path / "site"), "--site-id", "s1", "--simulation"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    check = subprocess.run(
        [str(doorkeep), "check", "-c", str(tmp_path / "site" / "site.toml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
