"""The site.toml snippets of docs/installer-guide.md are valid as shown.

An installer copies the guide's door and input into the site.toml `doorkeep init` wrote;
`doorkeep check` must then say valid, not "key 'methods': is missing".
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from edge.config import default_site_dict, parse_site_config, render_site_toml

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "installer-guide.md"


def test_the_installer_guides_door_and_input_pass_the_check(tmp_path: Path) -> None:
    snippets = [
        tomllib.loads(b) for b in re.findall(r"```toml\n(.*?)```", GUIDE.read_text(), re.DOTALL)
    ]
    assert {"door", "input"} <= {table for s in snippets for table in s}
    site = default_site_dict("tower-a", "Europe/Berlin", simulation=True)
    for snippet in snippets:
        for table, rows in snippet.items():  # the guide's door takes the place of init's
            site[table] = [
                *(r for r in site.get(table, []) if r["id"] not in {x["id"] for x in rows}),
                *rows,
            ]
    config = parse_site_config(render_site_toml(site), tmp_path / "site.toml")
    assert [d.id for d in config.doors] == ["gate"]
