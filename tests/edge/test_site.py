"""The site facade: policy changes, entity rules, restarts, bad input."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import datetime
from pathlib import Path

import pytest

from doorkeep import policydoc
from doorkeep.errors import Conflict, NotFound, PolicyError
from edge.service import Site

from .conftest import POLICY, ROOT


async def test_a_policy_with_every_kind_of_error_changes_nothing(site: Site):
    before = (site.snapshot.version, site.snapshot.digest, site.policy_document())
    bad = json.loads(json.dumps(POLICY))
    bad["people"][0]["kind"] = "alien"
    bad["credentials"].append({"id": "c-x", "person": "nobody", "kind": "pin", "value": "9999"})
    bad["groups"][0]["doors"].append("roof")
    bad["settings"]["colour"] = "red"
    with pytest.raises(PolicyError) as err:
        await site.apply_policy(bad, actor="test")
    entities = {i.entity for i in err.value.issues}
    assert {"people/p-ann", "credentials/c-x", "groups/g-all", "settings"} <= entities
    assert (site.snapshot.version, site.snapshot.digest, site.policy_document()) == before
    assert site.store.load_policy().version == before[0]
    assert (await site.present("gate-in", "pin", "2580"))["granted"]


async def test_policy_document_never_carries_a_plaintext_credential(site: Site):
    text = json.dumps(site.policy_document())
    assert "2580" not in text and "00C0FFEE" not in text and "95551234" not in text
    audit, _ = await site.audit_log()
    assert "2580" not in json.dumps(audit)


async def test_put_entity_adds_a_person_whose_pin_then_opens(site: Site):
    await site.put_entity("people", "p-bo", {"kind": "staff", "groups": ["g-all"]}, actor="admin:a")
    cred = await site.put_entity(
        "credentials", "c-bo", {"person": "p-bo", "kind": "pin", "value": "4711"}, actor="admin:a"
    )
    assert "value" not in cred and len(cred["value_hmac"]) == 64
    assert (await site.present("lobby-in", "pin", "4711"))["person"] == "p-bo"
    audit, _ = await site.audit_log(actor="admin:a")
    assert {"people.create", "credentials.create"} <= {a["action"] for a in audit}


async def test_put_entity_with_a_duplicate_pin_is_refused_and_changes_nothing(site: Site):
    version = site.snapshot.version
    with pytest.raises(PolicyError) as err:
        await site.put_entity(
            "credentials",
            "c-dup",
            {"person": "p-sam", "kind": "pin", "value": "2580"},
            actor="admin:a",
        )
    assert err.value.issues[0].entity == "credentials/c-dup"
    assert site.snapshot.version == version
    with pytest.raises(NotFound):
        site.get_entity("credentials", "c-dup")


async def test_deleting_a_buildings_default_group_is_refused(site: Site):
    with pytest.raises(Conflict, match="default group"):
        await site.delete_entity("groups", "g-all", actor="admin:a")
    assert site.get_entity("groups", "g-all")


async def test_deleting_a_person_deletes_their_credentials(site: Site):
    await site.delete_entity("people", "p-sam", actor="admin:a")
    assert [c["id"] for c in site.list_entities("credentials")] == ["c-ann"]
    assert (await site.present("gate-in", "rf_card", "00C0FFEE"))["reason"] == "unknown_credential"


async def test_resetting_an_apartment_keeps_the_master_and_the_audit_log(site: Site):
    await site.put_entity(
        "people",
        "p-kid",
        {"kind": "resident", "apartment": "A1", "role": "member", "groups": ["g-all"]},
        actor="admin:a",
    )
    await site.put_entity(
        "people",
        "p-ann",
        {"kind": "resident", "apartment": "A1", "role": "master", "groups": ["g-all"]},
        actor="admin:a",
    )
    await site.present("gate-in", "pin", "2580")
    summary = await site.reset_apartment("A1", actor="admin:a")
    assert summary["people"] == ["p-kid"] and summary["credentials"] == ["c-ann"]
    assert summary["events_redacted"] >= 1
    assert site.get_entity("people", "p-ann")["role"] == "master"
    events, _ = await site.events(apartment="A1")
    assert all(e.get("person") is None for e in events)
    assert (await site.store.verify_chain()).ok
    audit, _ = await site.audit_log()
    assert "apartments.reset" in {a["action"] for a in audit}


async def test_a_cloud_owned_policy_refuses_local_edits_with_a_clear_message(site: Site):
    site.policy.owner = "cloud"
    with pytest.raises(Conflict, match="managed by the cloud"):
        await site.put_entity("people", "p-x", {"kind": "staff"}, actor="admin:a")


async def test_at_is_accepted_only_on_simulation_sites_and_needs_an_offset(site: Site):
    with pytest.raises(ValueError, match="UTC offset"):
        await site.present("gate-in", "pin", "2580", at=datetime(2026, 11, 17, 12))
    result = await site.present(
        "gate-in", "pin", "2580", at=datetime.fromisoformat("2026-11-17T12:00:00+01:00")
    )
    assert result["granted"]


async def test_unknown_reader_is_not_found(site: Site):
    with pytest.raises(NotFound):
        await site.present("roof-in", "pin", "2580")


async def test_duress_pin_opens_and_raises_a_silent_alarm(site: Site):
    await site.policy.put_settings({"duress": True}, actor="admin:a")
    result = await site.present("gate-in", "pin", "2581")
    assert result["granted"] and result["person"] == "p-ann"
    assert [a["kind"] for a in await site.alarms()] == ["duress"]


async def test_another_process_applying_a_policy_is_picked_up(site: Site, site_dir: Path):
    policy = json.loads(json.dumps(POLICY))
    policy["credentials"][0]["value"] = "3690"
    path = site_dir / "policy.json"
    path.write_text(json.dumps(policy))
    env = {**os.environ, "DOORKEEP_CONFIG": str(site_dir / "site.toml")}
    out = await asyncio.to_thread(  # the other process is waited for off the loop
        subprocess.run,
        [sys.executable, "-m", "edge.cli", "policy", "apply", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert site.policy.header()[0] == site.snapshot.version + 1
    await site.policy.reload()
    assert (await site.present("gate-in", "pin", "3690"))["granted"]


RESTART_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, os, signal, sys
    from edge.service import Site
    async def main(config, phase):
        async with Site.open(config, with_hardware=False) as site:
            if phase == "first":
                await site.apply_policy(json.loads(sys.stdin.read()), actor="test")
                # the guest PIN opens 1 x 2 doors = 2 times; use one
                print(json.dumps(await site.present("gate-in", "pin", "95551234")), flush=True)
                for guess in ("1111", "2222", "3333"):  # 3 failures lock the reader
                    await site.present("gate-in", "pin", guess)
                os.kill(os.getpid(), signal.SIGKILL)  # no clean shutdown at all
            else:
                d = site.dry_run("gate-in", "pin", "2580")
                print(json.dumps({"uses": site.memory.temp_key_uses, "gate_pin": str(d.reason),
                                  "locked": sorted(site.memory.locked_until)}))
    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def test_temp_key_uses_and_lockout_survive_killing_the_process(site_dir: Path):
    config = str(site_dir / "site.toml")
    first = subprocess.run(
        [sys.executable, "-c", RESTART_SCRIPT, config, "first"],
        input=json.dumps(POLICY),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert first.returncode == -signal.SIGKILL, first.stderr
    assert json.loads(first.stdout.splitlines()[0])["granted"] is False  # no hardware: offline
    second = subprocess.run(
        [sys.executable, "-c", RESTART_SCRIPT, config, "second"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert second.returncode == 0, second.stderr
    state = json.loads(second.stdout)
    assert state["uses"] == {"t-guest": 1}
    assert state["locked"] == ["gate-in"] and state["gate_pin"] == "locked_out"


async def test_concurrent_entity_edits_apply_one_after_the_other(site: Site):
    version = site.snapshot.version
    people = [f"p-c{i}" for i in range(5)]
    await asyncio.gather(
        *(
            site.put_entity("people", p, {"kind": "staff", "groups": ["g-all"]}, actor="admin:a")
            for p in people
        )
    )
    # each edit saw the one before it: none lost, one version each
    assert set(people) <= {e["id"] for e in site.list_entities("people")}
    assert site.snapshot.version == version + len(people)
    assert site.store.load_policy().version == version + len(people)


async def test_policy_validation_runs_off_the_event_loop(site: Site, monkeypatch):
    threads: list[str] = []
    check = policydoc.check_document

    def spying_check(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return check(*args, **kwargs)

    monkeypatch.setattr(policydoc, "check_document", spying_check)
    await site.put_entity("people", "p-t", {"kind": "staff", "groups": ["g-all"]}, actor="a")
    await site.apply_policy(json.loads(json.dumps(POLICY)), actor="test")
    assert len(threads) == 2 and threading.main_thread().name not in threads
