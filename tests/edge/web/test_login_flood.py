"""A flood of logins (issue 9, finding 7): the attempt is counted before its password is
hashed, so 100 simultaneous logins for one user check at most `LOGIN_FREE_FAILURES`
passwords; the rest are 429 at once. Hashing runs on its own small pool, at the lowest
CPU priority, and an unknown name costs one scrypt run like a known one."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest

import edge.auth as auth_mod
from edge import loginlimit
from edge.auth import AuthStore
from tests.edge.web.conftest import PASSWORD, Api


def niceness() -> int:
    """The CPU niceness of the calling thread (Linux keeps one per thread)."""
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password check (our own `verify_password`), with the thread it ran on."""
    seen: list[str] = []
    real = auth_mod.verify_password

    def counting(password: str, stored: str) -> bool:
        seen.append(threading.current_thread().name)
        return real(password, stored)

    monkeypatch.setattr(auth_mod, "verify_password", counting)
    return seen


async def login(api: Api, password: str) -> Any:
    resp = await api.client.post(
        "/api/v1/auth/login", json={"username": "alice", "password": password}
    )
    return resp.status, await resp.json()


async def test_100_simultaneous_logins_check_at_most_the_limit_of_passwords(
    api: Api, checks: list[str]
) -> None:
    answers = await asyncio.gather(*(login(api, f"wrong password {i}") for i in range(100)))
    statuses = [status for status, _ in answers]
    assert len(checks) <= loginlimit.LOGIN_FREE_FAILURES
    assert statuses.count(401) == len(checks)
    assert statuses.count(429) == 100 - len(checks)
    limited = next(body for status, body in answers if status == 429)
    assert limited["error"]["code"] == "rate_limited"
    # even the right password waits now: the flood counted
    assert (await login(api, PASSWORD))[0] == 429
    # hashing ran on its own pool, not on the default executor of the loop
    assert checks and all(name == "doorkeep-scrypt" for name in checks)


async def test_a_right_password_after_a_few_wrong_ones_still_logs_in(
    api: Api, checks: list[str]
) -> None:
    for i in range(loginlimit.LOGIN_FREE_FAILURES - 1):
        assert (await login(api, f"wrong password {i}"))[0] == 401
    assert (await login(api, PASSWORD))[0] == 200
    # the success was not left counted as a failure: the address has room again
    assert (await login(api, "wrong again!!"))[0] == 401
    assert len(checks) == loginlimit.LOGIN_FREE_FAILURES + 1


async def test_token_requests_are_answered_while_logins_wait_for_the_hash_pool(
    api: Api, checks: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Hold the one hashing thread: logins queue behind it, a token request must not.
    release = threading.Event()
    real = auth_mod.verify_password

    def slow(password: str, stored: str) -> bool:
        release.wait(5)
        return real(password, stored)

    monkeypatch.setattr(auth_mod, "verify_password", slow)
    pending = asyncio.gather(*(login(api, f"wrong password {i}") for i in range(3)))
    await asyncio.sleep(0.05)
    resp = await api.client.get("/api/v1/doors", headers=api.token("viewer"))
    assert resp.status == 200
    answered = await api.client.post(
        "/api/v1/presentations",
        json={"reader": "gate-in", "kind": "pin", "value": "0000"},
        headers=api.token("installer"),
    )
    assert answered.status == 200, await answered.text()
    assert not pending.done()  # the logins were still waiting for the hash pool
    release.set()
    assert [s for s, _ in await pending] == [401, 401, 401]


async def test_passwords_are_checked_at_the_lowest_cpu_priority_and_the_loop_keeps_its_own(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A check takes ~50 ms anyway; the loop, whose presentations wait for milliseconds,
    # must win the CPU over it on a two-core gateway.
    seen: list[tuple[str, int]] = []
    real = auth_mod.verify_password

    def noting(password: str, stored: str) -> bool:
        seen.append((threading.current_thread().name, niceness()))
        return real(password, stored)

    monkeypatch.setattr(auth_mod, "verify_password", noting)
    loop_niceness = niceness()
    assert (await login(api, "wrong password 1"))[0] == 401
    assert (await login(api, PASSWORD))[0] == 200
    assert seen == [("doorkeep-scrypt", auth_mod.HASH_NICENESS)] * 2
    assert niceness() == loop_niceness


def test_an_unknown_user_name_costs_one_scrypt_run_like_a_known_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It used to cost two (a fresh stand-in hash, then its check): twice the work for a
    # flood of made-up names, and a timing difference that told names apart.
    runs: list[int] = []
    real = hashlib.scrypt

    def counting(*args: Any, **kwargs: Any) -> bytes:
        runs.append(1)
        return real(*args, **kwargs)

    with AuthStore.open(tmp_path / "auth.db") as store:
        store.create_user("alice", PASSWORD, "admin")
        monkeypatch.setattr(auth_mod.hashlib, "scrypt", counting)
        assert store.authenticate("nobody", "not the password") is None  # may make the stand-in
        costs = []
        for name in ("alice", "bob", "carol", "alice"):
            runs.clear()
            assert store.authenticate(name, "not the password") is None
            costs.append(len(runs))
        assert costs == [1, 1, 1, 1]
