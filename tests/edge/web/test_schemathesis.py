"""Property-based run of schemathesis against the OpenAPI document the app serves.

Every operation gets a bounded number of generated requests (valid and invalid ones);
each answer must not be a 5xx and must match the documented status codes, content
types and schemas. The server is the real web app over a real site (SQLite, simulated
RS485 bus; tests/edge/web/sample.py), called with an admin token.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

import edge.auth as auth_mod
from edge.auth import AuthStore
from edge.web.app import make_app
from edge.web.openapi import build_openapi
from edge.web.routes import ENTITY_KINDS
from tests.edge.sites import SiteThread
from tests.edge.web import sample
from tests.reliability import SCALE_ENV, Reliability

# Each operation gets this many examples: 68 operations x 3 = about two hundred requests
# at the default scale (longer runs: DOORKEEP_RELIABILITY_SCALE, tests/reliability.py).
EXAMPLES = max(3, round(3 * float(os.environ.get(SCALE_ENV, "1"))))
# What the run saw, for the reliability row of the last test of this module.
SEEN = {"cases": 0, "server_errors": 0, "valid": 0, "refused": 0, "semantic": 0}
# A schema-valid write may still break a rule JSON Schema cannot state: a reference to a
# door, person or board that does not exist, a relay already in use. Those answer 422
# with every problem listed (`issues`); these operations document it. Any other refusal of
# a schema-valid request (a 400, or a 422 elsewhere) fails the test.
SEMANTIC = {
    "PUT /api/v1/policy": "policy_invalid",
    "PUT /api/v1/hardware": "config_invalid",
    "POST /api/v1/batch/apartments": "policy_invalid",  # apartments that do not exist
    "POST /api/v1/import/{kind}": "policy_invalid",  # a file's rows (every one reported)
    **{
        f"{method} /api/v1/{segment}{tail}": "policy_invalid"
        for segment in ENTITY_KINDS
        for method, tail in (("POST", ""), ("PUT", "/{id}"))
    },
}
SEMANTIC_SEEN: dict[str, int] = {}
_OPS: set[str] = set()

schema = schemathesis.openapi.from_dict(build_openapi(version="0.1.0"))


class Server:
    """The app over a real site, served on the site's own loop in a thread.

    A capture waits for a card up to the requested timeout, but only at a reader of
    site.toml: generated reader ids name none, so it answers 404 at once.
    """

    def __init__(self, directory: Path) -> None:
        auth_mod.SCRYPT_N = 2**8  # restored by the fixture
        self.sites = SiteThread(directory, sample.SITE_TOML, sample.POLICY)
        self.site = self.sites.site
        self.auth = AuthStore.open(":memory:")
        self.auth.create_user("admin", "correct horse battery", "admin")
        self.token = self.auth.create_token("admin", "schemathesis-admin")
        self.runner: web.AppRunner | None = None
        self.url = self.sites.run(self._start(), 10)

    async def _start(self) -> str:
        self.runner = web.AppRunner(make_app(self.site, self.auth, tls=False), shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    def close(self) -> None:
        assert self.runner is not None
        self.sites.run(self.runner.cleanup(), 10)
        self.sites.close()
        self.auth.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    saved = auth_mod.SCRYPT_N
    srv = Server(tmp_path_factory.mktemp("schemathesis") / "site")
    try:
        yield srv
    finally:
        srv.close()
        auth_mod.SCRYPT_N = saved


@pytest.mark.reliability  # its cases feed the row below, so the script runs it too
@pytest.mark.blocking_ok(
    "the site's loop runs in a thread of this process while hypothesis builds cases and "
    "checks answers in the main thread: the loop's wait for the GIL counts as a wait "
    "(CI saw 3 ms of CPU and 500 ms of GIL wait in one aiohttp connection_lost)"
)
@schema.exclude(operation_id="stream").parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_api_answers_match_the_openapi_document(case: Any, server: Server) -> None:
    SEEN["cases"] += 1
    label = case.operation.label
    _OPS.add(label)
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if positive and label.startswith("PUT ") and isinstance(case.body, dict) and "id" in case.body:
        # The operation's documented rule JSON Schema cannot state: a body's id equals the
        # URL's (a different one is a 400 id_mismatch, tests/edge/web/test_api.py).
        case.body["id"] = unquote(case.path_parameters["id"])
    response = case.call_and_validate(
        base_url=server.url,
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
        excluded_checks=[positive_data_acceptance],  # judged below, with the 422s above
    )
    SEEN["server_errors"] += response.status_code >= 500  # the checks above fail on one too
    if not positive:
        return
    SEEN["valid"] += 1
    if response.status_code not in (400, 422):
        return
    error = response.json()["error"]
    if response.status_code == 422 and SEMANTIC.get(label) == error["code"]:
        SEEN["semantic"] += 1
        SEMANTIC_SEEN[label] = SEMANTIC_SEEN.get(label, 0) + 1
        return
    SEEN["refused"] += 1
    pytest.fail(f"{label}: a schema-valid request was refused: {response.status_code} {error}")


def test_schemathesis_reliability_row(reliability: Reliability) -> None:
    """The row of the run above (this module's tests run in order; this one is last)."""
    assert SEEN["cases"] >= len(_OPS) > 0, "run the whole module: the row counts its cases"
    assert SEEN["server_errors"] == 0
    assert SEEN["refused"] == 0
    assert SEEN["valid"] > 0
    reliability.row(
        test="schemathesis over the REST API",
        load=f"{len(_OPS)} operations, {SEEN['cases']} generated requests",
        faults="-",
        bad_inputs="schema-valid and schema-invalid bodies, queries and paths",
        losses="0",
        cases=SEEN["cases"],
        server_errors=SEEN["server_errors"],
        schema_valid=SEEN["valid"],
        schema_valid_rejected=SEEN["refused"],
        # documented 422s for what JSON Schema cannot state (a reference to a door,
        # person or board that does not exist): SEMANTIC above
        semantic_422s=SEEN["semantic"],
    )
