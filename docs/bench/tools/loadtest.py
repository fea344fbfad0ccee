"""A bounded HTTP load test: N concurrent clients query ``/search`` for T seconds.

``python docs/bench/tools/loadtest.py --url http://127.0.0.1:8000 --clients 50 --seconds 30``

The clients are aiohttp's: on the 2-core machine the load generator shares the CPU with the
server it measures, and httpx's asyncio client spent 2.4-3.8 ms of CPU per request (0.13-0.22 of
a core at 50-60 requests/s) against aiohttp's 0.3-0.4 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from dataclasses import asdict, dataclass

import aiohttp
import numpy as np

DEFAULT_QUERIES = ("韩国珠宝出口增长了多少？", "How much faster are Shuibei lead times?", "黄金", "gold",
                   "水贝珠宝的生产周期比全球平均快多少？", "cross-border e-commerce jewellery")


@dataclass
class LoadResult:
    clients: int
    seconds: float
    requests: int
    errors: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    error_samples: list[str]


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """p50 and p99 of latencies in milliseconds (0 when there are none)."""
    samples = samples_ms or [0.0]
    return {"p50_ms": round(float(np.percentile(samples, 50)), 2),
            "p99_ms": round(float(np.percentile(samples, 99)), 2)}


async def _client(http: aiohttp.ClientSession, url: str, deadline: float, queries, latencies: list[float],
                  errors: list[str]) -> None:
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            async with http.get(url, params={"q": next(queries), "k": "10"}) as reply:
                body = await reply.read()
                if reply.status != 200:
                    errors.append(f"HTTP {reply.status}: {body[:200].decode('utf-8', 'replace')}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            errors.append(f"{type(error).__name__}: {error}")
        latencies.append((time.perf_counter() - started) * 1000)


def distinct_queries(queries: tuple[str, ...]):
    """The queries, then the same with a round number appended: no text is ever sent twice,
    so a server-side query cache cannot flatter the figure."""
    for round_no in itertools.count():
        for text in queries:
            yield text if round_no == 0 else f"{text} ({round_no})"


async def run_load(url: str, clients: int = 50, seconds: float = 30.0,
                   queries: tuple[str, ...] = DEFAULT_QUERIES, distinct: bool = False) -> LoadResult:
    """Run the load and summarise it; the loop stops by itself after ``seconds``.

    ``distinct``: never repeat a query text (see :func:`distinct_queries`).
    """
    if not queries:
        raise ValueError("the load needs at least one query")
    latencies: list[float] = []
    errors: list[str] = []
    cycle = distinct_queries(queries) if distinct else itertools.cycle(queries)
    timeout = aiohttp.ClientTimeout(total=max(60.0, seconds * 2))
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients), timeout=timeout) as http:
        await asyncio.gather(*(_client(http, url.rstrip("/") + "/search", started + seconds, cycle, latencies, errors)
                               for _ in range(clients)))
    elapsed = time.monotonic() - started
    return LoadResult(clients, round(elapsed, 1), len(latencies), len(errors),
                      round(len(latencies) / elapsed, 2), **percentiles(latencies), error_samples=errors[:5])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--distinct", action="store_true", help="never send the same text twice")
    args = parser.parse_args()
    result = asyncio.run(run_load(args.url, args.clients, args.seconds, distinct=args.distinct))
    print(json.dumps(asdict(result), ensure_ascii=False))


if __name__ == "__main__":
    main()
