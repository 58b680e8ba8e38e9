"""Fuzzing every parser of hostile input with Hypothesis: 0 crashes.

A parser may refuse an input only with the error it declares (``PolicyError``,
``BundleRejected``, ``SiteConfigError``, ``ValueError``; an HTTP 4xx with the error
object; an MQTT message dropped with a warning). Anything else — a ``KeyError``, a
``RecursionError``, a 500, an MQTT handler failure — is a crash and fails the test with
the input that caused it (Hypothesis shrinks it). Each test mixes arbitrary input with
structured input built from a valid document, so the fuzzing gets past the first check.
The number of cases scales with ``reliability.scaled``; the row records how many ran.
What readers send (Wiegand, serial and OSDP frames, HTTP reader posts) is fuzzed in
tests/reliability_/test_fuzz_readers.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import string
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from cloud_sync import bundle as b
from doorkeep import cards, policydoc
from doorkeep.errors import BundleRejected, PolicyError
from edge.auth import AuthStore
from edge.config import SiteConfigError, parse_site_config
from edge.config.sections import MqttSection
from edge.hardware import Hardware
from edge.loginlimit import LoginLimiter
from edge.mqtt import MqttBridge
from edge.web.app import make_app
from tests.edge.sites import open_site
from tests.edge.web import sample
from tests.reliability import Reliability
from tests.reliability_.fuzzing import JSON, Cases, mostly, on_a_loop, run

# -- strategies ---------------------------------------------------------------------------

FIELDS = sorted(
    {key for kind in policydoc.ENTITY_KINDS for e in sample.POLICY.get(kind, []) for key in e}
    | {"id", "kind", "value", "code", "value_hmac", "doors", "valid_from", "valid_until", "uses"}
)
ENTITY = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), JSON, max_size=6)


@st.composite
def policy_documents(draw: st.DrawFn) -> Any:
    """Arbitrary JSON, or the sample policy with a few parts replaced by arbitrary ones."""
    if draw(st.integers(0, 3)) == 0:
        return draw(JSON)
    doc = copy.deepcopy(sample.POLICY)
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(["format", "settings", *policydoc.ENTITY_KINDS]))
        items = doc.get(key)
        i = draw(st.integers(0, 9))
        if isinstance(items, list) and i < len(items) and isinstance(items[i], dict):
            entity = dict(items[i])
            entity[draw(st.sampled_from(FIELDS))] = draw(JSON)
            items[i] = entity
        else:
            doc[key] = draw(st.lists(ENTITY, max_size=3) | JSON)
    return doc


# -- policy documents --------------------------------------------------------------------


def test_fuzz_policy_documents(reliability: Reliability) -> None:
    cases = Cases()

    @given(policy_documents())
    def validate(doc: Any) -> None:
        cases()
        issues = policydoc.validate_document(doc, doors={"gate", "lobby", "plant"})
        assert all(isinstance(i.message, str) and str(i) for i in issues)
        try:
            policydoc.check_document(doc)
        except PolicyError:
            return
        policydoc.hash_document(doc, b"s" * 32)  # a valid document hashes

    @given(st.binary(max_size=300) | JSON.map(lambda v: json.dumps(v).encode()))
    def loads(data: bytes) -> None:
        cases()
        with contextlib.suppress(PolicyError):
            policydoc.loads(data)

    run(validate, reliability, 200)
    run(loads, reliability, 200)
    reliability.row(
        test="fuzz: policy documents (policydoc.loads, validate_document)",
        load="-",
        bad_inputs=f"{cases.n} Hypothesis cases",
        losses="0 crashes",
    )


# -- bundles -----------------------------------------------------------------------------

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CLOUD = b.generate_signer()
KEYS = {CLOUD.key_id: CLOUD.private_key.public_key()}
CURRENT = policydoc.hash_document(sample.POLICY, b"s" * 32)


@st.composite
def bundles(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes; a real bundle cut or flipped; or content the trusted key signed
    with arbitrary fields (a broken or compromised cloud)."""
    choice = draw(st.integers(0, 2))
    real = b.build_snapshot(CLOUD, site_id="demo", version=2, document=CURRENT, now=NOW)
    if choice == 0:
        return draw(st.binary(max_size=400))
    if choice == 1:
        i = draw(st.integers(0, len(real) - 1))
        return real[:i] + draw(st.binary(max_size=3)) + real[i + draw(st.integers(0, 3)) :]
    signed: dict[str, Any] = {
        "site_id": "demo",
        "version": draw(st.integers(-2, 4) | JSON),
        "prev_version": draw(st.integers(0, 2) | JSON),
        "issued_at": b.format_time(NOW),
        "expires": draw(st.sampled_from([b.format_time(NOW + timedelta(days=1))]) | JSON),
        "key_id": CLOUD.key_id,
        "kind": draw(st.sampled_from(["snapshot", "delta"]) | JSON),
        "digest": draw(st.sampled_from([policydoc.policy_digest(CURRENT)]) | JSON),
        "prev_digest": draw(st.sampled_from([policydoc.policy_digest(CURRENT)]) | JSON),
        "document": draw(policy_documents()),
        "delta": draw(st.dictionaries(st.sampled_from(["upsert", "delete", "settings"]), JSON)),
    }
    for key in draw(st.lists(st.sampled_from(sorted(signed)), max_size=3)):
        signed.pop(key, None)
    return CLOUD.seal(signed)


def test_fuzz_bundles(reliability: Reliability) -> None:
    cases = Cases()

    @given(bundles())
    def verify(data: bytes) -> None:
        cases()
        try:
            got = b.verify_bundle(
                data,
                trusted_keys=KEYS,
                site_id="demo",
                current_version=1,
                current_digest=None,
                now=NOW,
            )
            got.apply_to(CURRENT)
        except (BundleRejected, PolicyError):
            pass

    run(verify, reliability, 400)
    reliability.row(
        test="fuzz: cloud bundles (verify_bundle, apply_to)",
        load="-",
        bad_inputs=f"{cases.n} Hypothesis cases",
        losses="0 crashes",
    )


# -- site.toml ---------------------------------------------------------------------------

TOML_CHARS = string.ascii_letters + string.digits + " =\"[]{},.-_#:\n\\'" + "\t"


@st.composite
def site_tomls(draw: st.DrawFn) -> str:
    """Arbitrary text, or the sample site.toml with lines replaced by arbitrary ones."""
    if draw(st.integers(0, 3)) == 0:
        return draw(st.text(max_size=300) | st.text(TOML_CHARS, max_size=300))
    lines = sample.SITE_TOML.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        key = (
            lines[i].split("=")[0].strip()
            if "=" in lines[i]
            else draw(st.text(TOML_CHARS, max_size=8))
        )
        value = draw(
            st.text(TOML_CHARS, max_size=30)
            | st.integers().map(str)
            | st.lists(st.integers(-5, 5), max_size=3).map(str)
            | st.sampled_from(['"sim"', "true", '"relays-a:9"', '"nope:1"', '"relays-a:in99"'])
        )
        lines[i] = f"{key} = {value}"
    return "\n".join(lines)


def test_fuzz_site_toml(reliability: Reliability, tmp_path: Path) -> None:
    cases = Cases()
    board_types = Hardware.board_types()

    @given(site_tomls())
    def parse(text: str) -> None:
        cases()
        problems: list[str] = []
        try:
            parse_site_config(text, tmp_path / "site.toml", board_types=board_types)
        except SiteConfigError as err:
            problems = err.problems or ["(an error listing no problem)"]
        assert all(isinstance(p, str) and p for p in problems)

    run(parse, reliability, 400)
    reliability.row(
        test="fuzz: site.toml (parse_site_config)",
        load="-",
        bad_inputs=f"{cases.n} Hypothesis cases",
        losses="0 crashes",
    )


# -- card values and other credentials -----------------------------------------------------


def test_fuzz_credential_values(reliability: Reliability) -> None:
    cases = Cases()
    value_text = (
        st.text(max_size=40)
        | st.text("0123456789abcdefABCDEFxXhdecw:, ", max_size=40)
        | st.builds(
            lambda p, bits: p + bits,
            st.sampled_from(["w26:", "w34:", "w35:", "w37:", "W26:", "h10302:", "c1000:"]),
            st.text("01", max_size=40) | st.text("0123456789,:", max_size=20),
        )
    )

    @given(st.sampled_from(policydoc.CREDENTIAL_KINDS) | st.text(max_size=8), value_text | JSON)
    def normalise(kind: str, value: Any) -> None:
        cases()
        try:
            out = cards.normalise(kind, value)
        except ValueError as err:
            message = str(err)
        else:
            assert isinstance(out, str) and out
            return
        if isinstance(value, str) and len(value.strip()) >= 4:
            assert value.strip() not in message  # the error never repeats the value

    run(normalise, reliability, 1500)
    reliability.row(
        test="fuzz: credential values (cards.normalise: cards, Wiegand, PINs, plates)",
        load="-",
        bad_inputs=f"{cases.n} Hypothesis cases",
        losses="0 crashes",
    )


# -- HTTP and MQTT inputs over a real site ---------------------------------------------------


@pytest.fixture
def loop_site(tmp_path: Path) -> Iterator[tuple[asyncio.Runner, Any]]:
    """A real site (SQLite, simulated bus) on an event loop that each example runs on."""
    with on_a_loop(open_site(tmp_path / "site", sample.SITE_TOML, sample.POLICY)) as pair:
        yield pair


READERS = [*sample.READERS, "nope"]


PRESENTATION = st.fixed_dictionaries(
    {
        "reader": mostly(st.sampled_from(READERS), JSON),
        "kind": mostly(st.sampled_from(["pin", "rf_card", *policydoc.CREDENTIAL_KINDS]), JSON),
        "value": mostly(
            st.sampled_from(["4711", "00209CBF", "1234", "", "0x209cbf", "9" * 30]), JSON
        ),
    },
    optional={
        "at": st.sampled_from(["2026-12-01T10:00:00+01:00", "2026-12-01T10:00:00"]) | JSON,
        "extra": JSON,
    },
)
BODIES = mostly(
    PRESENTATION.map(lambda d: json.dumps(d).encode()),
    JSON.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200),
)
CONTENT_TYPES = mostly(
    st.just("application/json"),
    st.sampled_from(
        ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"]
    ),
)


def test_fuzz_rest_presentations(
    reliability: Reliability, loop_site: tuple[asyncio.Runner, Any]
) -> None:
    runner, site = loop_site
    auth = AuthStore.open(":memory:")
    headers = {"Authorization": f"Bearer {auth.create_token('admin', 'fuzz')}"}

    async def start() -> TestClient[Any, Any]:
        app = make_app(site, auth, tls=False, limiter=LoginLimiter())
        client = TestClient(TestServer(app))
        await client.start_server()
        return client

    client = runner.run(start())
    cases = Cases()
    statuses: dict[int, int] = {}
    codes: dict[str, int] = {}

    async def post(body: bytes, content_type: str) -> tuple[int, Any]:
        h = {**headers, "Content-Type": content_type}
        async with client.post("/api/v1/presentations", data=body, headers=h) as r:
            return r.status, await r.json(content_type=None)

    @given(BODIES, CONTENT_TYPES)
    def present(body: bytes, content_type: str) -> None:
        cases()
        status, answer = runner.run(post(body, content_type))
        statuses[status] = statuses.get(status, 0) + 1
        if status == 400:
            codes[answer["error"]["code"]] = codes.get(answer["error"]["code"], 0) + 1
        assert status < 500, (status, answer)
        if status == 200:
            assert isinstance(answer["granted"], bool)
        else:
            assert set(answer["error"]) >= {"code", "message"}

    try:
        run(present, reliability, 300)
    finally:
        runner.run(client.close())
        auth.close()
    reliability.row(
        test="fuzz: REST presentation bodies (POST /presentations)",
        load="-",
        bad_inputs=f"{cases.n} Hypothesis cases",
        losses="0 server errors",
        answers=", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())),
        refusals=", ".join(f"{k}: {v}" for k, v in sorted(codes.items())),
    )


def test_fuzz_mqtt_inbound_messages(
    reliability: Reliability,
    loop_site: tuple[asyncio.Runner, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner, site = loop_site
    bridge = MqttBridge(site, MqttSection(url="mqtt://127.0.0.1:1", allow_commands=True))
    base = f"doorkeep/{site.site_id}"
    topics = st.sampled_from(
        [f"{base}/reader/{r}/presentation" for r in READERS]
        + [f"{base}/door/{d}/set" for d in ["gate", "lobby", "nope"]]
    ) | st.text(max_size=30)
    payloads = (
        PRESENTATION.map(lambda d: json.dumps(d).encode())
        | JSON.map(lambda v: json.dumps(v).encode())
        | st.sampled_from([b"UNLOCK", b"LOCK", b"unlock\n"])
        | st.binary(max_size=100)
    )
    cases = Cases()

    @given(topics, payloads, st.booleans())
    def dispatch(topic: str, payload: bytes, retained: bool) -> None:
        cases()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="edge.mqtt"):
            runner.run(bridge.dispatch(topic, payload, retained=retained))
        failed = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert not failed, failed

    run(dispatch, reliability, 300)
    reliability.row(
        test="fuzz: MQTT inbound messages (MqttBridge.dispatch)",
        load="-",
        bad_inputs=f"{cases.n} Hypothesis cases",
        losses="0 handler failures",
    )
