"""BOUNDED HOSTILE LOAD (issue 17): 40 report clients + 1 pathological document + 20 searchers.

Runs for LOAD_SECONDS (20 s) against a real server over a private copy of the seed index and
checks that ``/health`` stays under 100 ms at p99 and that no search fails. Reports take
search slots, so they queue instead of starving the server; the pathological document
(32,000 dots) is indexed as a background job. Marked ``hostile_load``: ``-m "not hostile_load"``
skips it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = pytest.mark.hostile_load
LOAD_SECONDS = 20
REPORT_CLIENTS, SEARCH_CLIENTS = 40, 20
QUESTIONS = ["水贝珠宝的生产周期比全球平均快多少？", "gold prices", "韩国珠宝出口", "Shuibei lead times",
             "jewellery exports", "珍珠价格", "diamond certification", "黄金需求", "Luohu District", "pearl farming"]


async def _load(url: str) -> dict[str, object]:
    """The hostile clients: reports, searches and the pathological document (own process)."""
    search_errors: list[str] = []
    counts = {"searches": 0, "reports": 0}
    deadline = time.monotonic() + LOAD_SECONDS
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        async def reporter(number: int) -> None:
            while time.monotonic() < deadline:
                await client.post("/report", json={"questions": QUESTIONS, "k": 3})
                counts["reports"] += 1

        async def searcher(number: int) -> None:
            while time.monotonic() < deadline:
                try:
                    reply = await client.get("/search", params={"q": QUESTIONS[number % 10], "k": 5})
                    if reply.status_code != 200:
                        search_errors.append(f"{reply.status_code} {reply.text[:200]}")
                except httpx.HTTPError as error:
                    search_errors.append(repr(error))
                counts["searches"] += 1

        pathological = await client.post("/documents", json={"id": "dots", "text": "." * 32_000 + "x"})
        assert pathological.status_code == 202, pathological.text
        reporters = [asyncio.create_task(reporter(n)) for n in range(REPORT_CLIENTS)]
        searchers = [asyncio.create_task(searcher(n)) for n in range(SEARCH_CLIENTS)]
        await asyncio.wait(searchers, timeout=LOAD_SECONDS + 120)  # searches finish; queued reports are abandoned
        for task in reporters + searchers:
            task.cancel()
    return {"search_errors": search_errors, **counts}


def _probe(url: str) -> list[float]:
    """``/health`` every 50 ms while the load runs, from a process of its own (milliseconds)."""
    health_ms = []
    deadline = time.monotonic() + LOAD_SECONDS
    with httpx.Client(base_url=url, timeout=10) as client:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            assert client.get("/health").status_code == 200
            health_ms.append((time.perf_counter() - started) * 1000)
            time.sleep(0.05)
    return health_ms


def _in_process(role: str, url: str) -> subprocess.Popen:
    """Run ``_load`` or ``_probe`` in its own Python process: client work never shares the server's GIL."""
    return subprocess.Popen([sys.executable, __file__, role, url], stdout=subprocess.PIPE, text=True)


def test_hostile_load_keeps_health_fast_and_searches_answering(writable_server):
    load = _in_process("load", writable_server.url)
    time.sleep(1)  # the load is under way before the first probe
    probe = _in_process("probe", writable_server.url)
    health_ms = sorted(json.loads(probe.communicate(timeout=LOAD_SECONDS + 60)[0]))
    result = json.loads(load.communicate(timeout=LOAD_SECONDS + 180)[0])
    p99 = health_ms[int(len(health_ms) * 0.99) - 1]
    print(f"\nhostile load: {len(health_ms)} health probes, p50 {health_ms[len(health_ms) // 2]:.1f} ms, "
          f"p99 {p99:.1f} ms, max {health_ms[-1]:.1f} ms; {result['searches']} searches, {result['reports']} reports")
    assert not result["search_errors"], result["search_errors"][:3]
    assert result["searches"] >= SEARCH_CLIENTS and len(health_ms) >= 100
    assert p99 < 100, f"/health p99 {p99:.1f} ms"


if __name__ == "__main__":
    role, address = sys.argv[1], sys.argv[2]
    print(json.dumps(asyncio.run(_load(address)) if role == "load" else _probe(address)))
