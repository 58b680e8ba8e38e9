"""Every command line the docs, the README and the systemd units show parses as written.

A user copies these: a line the parser refuses ("unrecognized arguments: --db") is a
broken promise. Command lines come from fenced code blocks, from inline code that has
options (a bare `doorkeep policy apply` in a sentence names a command, it is not a line
to run; usage notation such as `a|b` or `[--name N]` is left out), and from the
units' ExecStart= with their Environment= values substituted as systemd does.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from edge.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
_SPLIT = re.compile(r"\s*(?:&&|\|\||;|\s\|\s)\s*")
_PLACEHOLDER = re.compile(r"\.\.\.|…|\[|\w\|\w|/--")  # usage notation, not a command line
#: `doorkeep ...` or the venv's `/opt/doorkeep/.venv/bin/doorkeep ...` (docs/install.md)
_INVOCATION = re.compile(r"^(?:\S*/bin/)?doorkeep\s")


def _doc_lines() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.DOTALL):
            for raw in block.replace("\\\n", " ").splitlines():
                line = raw.strip().removeprefix("$").removeprefix("#").strip()
                found += [(path.name, p) for p in _SPLIT.split(line) if _INVOCATION.match(p)]
        for span in re.findall(r"`(doorkeep [^`]+)`", text):
            line = " ".join(span.split())
            if " -" in line and not _PLACEHOLDER.search(line):
                found.append((path.name, line))
    return found


def _unit_lines() -> list[tuple[str, str]]:
    found = []
    for path in sorted((ROOT / "systemd").glob("*.service")):
        text = path.read_text(encoding="utf-8")
        env = dict(re.findall(r"^Environment=(\w+)=(\S*)$", text, re.MULTILINE))
        found += [
            (path.name, re.sub(r"\$\{(\w+)\}", lambda m, env=env: env[m.group(1)], line))
            for line in re.findall(r"^ExecStart=(.*)$", text, re.MULTILINE)
        ]
    return found


DOCUMENTED = _doc_lines() + _unit_lines()


def test_the_docs_and_units_show_commands_at_all() -> None:
    names = {where for where, _ in DOCUMENTED}
    assert {"README.md", "doorkeep.service", "doorkeep-cloud.service"} <= names
    assert {"doorkeep-reconcile.service", "install.md", "operations.md", "cloud.md"} <= names
    assert len(DOCUMENTED) >= 10


def test_a_command_run_by_its_venv_path_is_a_documented_line() -> None:
    lines = {line for where, line in DOCUMENTED if where == "install.md"}
    assert "/opt/doorkeep/.venv/bin/doorkeep check -c /etc/doorkeep/site.toml" in lines


@pytest.mark.parametrize(("where", "line"), DOCUMENTED, ids=[f"{w}: {c}" for w, c in DOCUMENTED])
def test_a_documented_command_line_parses(where: str, line: str) -> None:
    argv = shlex.split(line)
    while argv and not argv[0].endswith("doorkeep"):  # /usr/bin/env, sudo -u ...
        argv.pop(0)
    try:
        args = build_parser().parse_args(argv[1:])
    except SystemExit as exit_:  # --version and --help exit 0 by design
        if exit_.code != 0:
            pytest.fail(f"{where}: `{line}` is refused by the parser (exit {exit_.code})")
        return
    assert callable(args.fn)


@pytest.mark.parametrize(
    "argv",
    [
        ["-c", "x.toml", "check"],
        ["check", "-c", "x.toml"],
        ["-v", "check", "-c", "x.toml"],
        ["check", "-c", "x.toml", "-v"],
    ],
)
def test_site_options_go_before_or_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.config == "x.toml"


@pytest.mark.parametrize(
    "argv",
    [
        ["cloud", "--db", "sqlite:///x.db", "serve"],
        ["cloud", "serve", "--db", "sqlite:///x.db"],
        ["cloud", "site", "add", "s1", "--db", "sqlite:///x.db"],
        ["cloud", "site", "--db", "sqlite:///x.db", "add", "s1"],
        ["cloud", "reconcile", "--db", "sqlite:///x.db", "-v"],
    ],
)
def test_cloud_options_go_before_or_after_the_action(argv: list[str]) -> None:
    from edge.cli import _defaults

    args = _defaults(build_parser().parse_args(argv))
    assert args.db == "sqlite:///x.db"


def test_every_argument_has_help() -> None:
    def walk(parser: object, path: str) -> list[str]:
        missing = []
        for action in parser._actions:  # type: ignore[attr-defined]
            if action.choices and hasattr(action, "_name_parser_map"):
                for name, sub in action.choices.items():
                    missing += walk(sub, f"{path} {name}")
            elif not action.help and action.dest != "help":
                missing.append(f"{path}: {action.option_strings or action.dest}")
        return missing

    assert walk(build_parser(), "doorkeep") == []
