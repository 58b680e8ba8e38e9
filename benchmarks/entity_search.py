"""Entity search benchmark: ``GET /api/v1/people?q=&limit=50`` at 20,000 people.

Run: .venv/bin/python benchmarks/entity_search.py [--people 20000] [--rounds 30]

The real web app (edge/web/app.py) over a real site (tests/edge/sites.py: SQLite store,
simulated bus) holding the web tests' policy plus ``--people`` residents in 2,000
apartments, served on loopback by aiohttp; the client is aiohttp with a viewer token. Each
round asks one search (a unique name, an apartment, a name prefix matching 10 people) and
the first pages of the unfiltered list; p50/p95 of the round trip are printed. The
browser figure (typing to rendered rows) comes from tests/e2e/test_community_ui.py.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.auth import AuthStore  # noqa: E402 - after the path
from edge.web.app import make_app  # noqa: E402
from tests.e2e.test_community_ui import big_policy  # noqa: E402
from tests.edge.sites import open_site  # noqa: E402
from tests.edge.web import sample  # noqa: E402

QUERIES = ("xaver%20quint", "A1234", "Resident%201999", "", "")


async def main(people: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with open_site(Path(tmp) / "site", sample.SITE_TOML, big_policy(people)) as site:
            auth = AuthStore.open(":memory:")
            token = auth.create_token("viewer", "bench")
            runner = web.AppRunner(make_app(site, auth, tls=False))
            await runner.setup()
            tcp = web.TCPSite(runner, "127.0.0.1", 0)
            await tcp.start()
            port = runner.addresses[0][1]
            headers = {"Authorization": f"Bearer {token}"}
            times: dict[str, list[float]] = {q: [] for q in QUERIES}
            async with aiohttp.ClientSession(headers=headers) as http:
                for r in range(rounds):
                    for q in QUERIES:
                        offset = 50 * (r % 5) if not q else 0
                        url = (
                            f"http://127.0.0.1:{port}/api/v1/people?limit=50&offset={offset}&q={q}"
                        )
                        started = time.perf_counter()
                        async with http.get(url) as resp:
                            body = await resp.json()
                        times[q].append(time.perf_counter() - started)
                        if resp.status != 200 or body["total"] == 0:
                            raise SystemExit(f"unexpected answer to {url}: {body}")
            await runner.cleanup()
            auth.close()
    print(f"GET /people at {people:,} people, {rounds} rounds")
    for q in dict.fromkeys(QUERIES):
        ms = sorted(t * 1000 for t in times[q])
        p95 = ms[int(len(ms) * 0.95) - 1]
        print(f"  q={q or '(none)':<16} p50 {statistics.median(ms):6.1f} ms  p95 {p95:6.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.people, args.rounds))
