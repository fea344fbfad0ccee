"""How long an MCP client waits: ``bisearch mcp`` start-up over stdio, and a search through MCP
next to the same search through plain HTTP.

    python docs/bench/tools/mcp_latency.py --index index                # stdio: spawns bisearch mcp
    BISEARCH_QUERY_CACHE=0 bisearch serve --index index &
    python docs/bench/tools/mcp_latency.py --url http://127.0.0.1:8000  # a running bisearch serve

Prints one JSON object of seconds (medians over ``--repeat`` calls, after one warm-up call). The
question is the same each time, so the server must run without its query cache (the spawned one
does) for the times to include the model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import anyio
import httpx
from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[3]
QUESTION = "水贝珠宝的生产周期比全球平均快多少？"


async def timed_calls(client: Client, repeat: int) -> dict[str, float]:
    found = await client.call_tool("search", {"query": QUESTION, "k": 10})  # warm-up
    hit = found.structured_content["results"][0]
    searches, reads = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        await client.call_tool("search", {"query": QUESTION, "k": 10})
        searches.append(time.perf_counter() - start)
        start = time.perf_counter()
        await client.call_tool("read", {"doc_id": hit["doc_id"], "start": hit["start"], "end": hit["end"]})
        reads.append(time.perf_counter() - start)
    return {"mcp_search_s": statistics.median(searches), "mcp_read_s": statistics.median(reads)}


def http_search(url: str, repeat: int) -> float:
    with httpx.Client(base_url=url, timeout=120) as http:
        http.get("/search", params={"q": QUESTION, "k": 10})
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            http.get("/search", params={"q": QUESTION, "k": 10}).raise_for_status()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


async def measure(args: argparse.Namespace) -> dict[str, float]:
    if args.url:
        async with Client(args.url.rstrip("/") + "/mcp") as client:
            result = await timed_calls(client, args.repeat)
        return {**result, "http_search_s": http_search(args.url, args.repeat)}
    env = {name: value for name, value in os.environ.items() if name.startswith(("BISEARCH_", "HF_"))}
    server = StdioServerParameters(command=sys.executable, args=["-m", "search.cli", "mcp", "--index", args.index],
                                   env={**env, "PYTHONPATH": str(ROOT), "BISEARCH_QUERY_CACHE": "0"}, cwd=str(ROOT))
    start = time.perf_counter()
    async with Client(server) as client:
        await client.list_tools()
        ready = time.perf_counter() - start
        return {"stdio_ready_s": ready, **await timed_calls(client, args.repeat)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--index", help="index folder: spawn `bisearch mcp` over stdio")
    where.add_argument("--url", help="base URL of a running `bisearch serve`")
    parser.add_argument("--repeat", type=int, default=10)
    result = anyio.run(measure, parser.parse_args())
    print(json.dumps({name: round(value, 4) for name, value in result.items()}))


if __name__ == "__main__":
    main()
