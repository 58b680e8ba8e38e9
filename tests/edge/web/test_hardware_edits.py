"""Hardware edits from the UI (PUT /hardware) as an installer makes them: one after another,
on a site.toml with comments, while the daemon runs (changes take effect on restart)."""

from __future__ import annotations

import tomllib
from typing import Any

from tests.edge.web.conftest import Api


async def _hardware(api: Api, headers: dict[str, str]) -> Any:
    resp = await api.client.get("/api/v1/hardware", headers=headers)
    assert resp.status == 200
    return await resp.json()


async def test_a_second_edit_keeps_the_first_and_the_editor_shows_what_was_saved(
    api: Api,
) -> None:
    inst = api.token("installer")
    path = api.site.config.path
    path.write_text("# Tower A, wired by M. Keller\n" + path.read_text())
    hw = await _hardware(api, inst)
    doors = [{**hw["config"]["door"][0], "pulse_ms": 5000}, *hw["config"]["door"][1:]]
    first = await api.client.put("/api/v1/hardware", json={"door": doors}, headers=inst)
    assert first.status == 200, await first.text()

    shown = await _hardware(api, inst)  # the setup editor reloads after saving
    assert shown["config"]["door"] == doors
    readers = [
        {**r, "direction": "out"} if r["id"] == "lobby-in" else r for r in hw["config"]["reader"]
    ]
    second = await api.client.put("/api/v1/hardware", json={"reader": readers}, headers=inst)
    assert second.status == 200, await second.text()

    written = tomllib.loads(path.read_text())
    assert written["door"] == doors  # the first edit is still there
    assert written["reader"] == readers
    assert path.read_text().startswith("# Tower A, wired by M. Keller\n")
    backup = tomllib.loads(path.with_name(path.name + ".bak").read_text())
    assert backup["door"] == doors and backup["reader"] == hw["config"]["reader"]
