"""The declared dependency bounds are the versions the suite runs against.

pyproject.toml's lower bound of each runtime and dev dependency is the exact version
installed here (the one the suite tested), and constraints.txt pins each runtime
package, transitive ones included, at the version installed here. A lower bound below
what ran (``aiohttp>=3.14`` when 3.14.5 ran) lets a plain install pick a release no test
has seen. The optional ``gpio`` extra needs a GPIO chip and is not installed here.
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
_REQUIREMENT = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*(.*)$")


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lower_bounds(requirements: list[str]) -> dict[str, str]:
    bounds = {}
    for requirement in requirements:
        found = _REQUIREMENT.match(requirement)
        assert found, requirement
        lower = re.search(r">=\s*([^,;\s]+)", found.group(2))
        assert lower, f"{requirement}: no lower bound"
        bounds[_key(found.group(1))] = lower.group(1)
    return bounds


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            pins[_key(name)] = pinned.strip()
    return pins


def _installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def test_each_lower_bound_is_the_version_that_ran() -> None:
    declared = _lower_bounds(PROJECT["dependencies"] + PROJECT["optional-dependencies"]["dev"])
    wrong = {n: (low, _installed(n)) for n, low in declared.items() if _installed(n) != low}
    assert wrong == {}, "lower bound, installed: " + repr(wrong)


def test_constraints_pin_every_runtime_package_at_the_version_that_ran() -> None:
    pins = _pins()
    missing = set(_lower_bounds(PROJECT["dependencies"])) - set(pins)
    assert missing == set(), f"not in constraints.txt: {missing}"
    wrong = {n: (pin, _installed(n)) for n, pin in pins.items() if _installed(n) != pin}
    assert wrong == {}, "pinned, installed: " + repr(wrong)


def test_the_runtime_bounds_agree_with_the_pins() -> None:
    pins = _pins()
    declared = _lower_bounds(PROJECT["dependencies"])
    assert {n: pins.get(n) for n in declared} == declared
