"""Where a served request's CPU goes: 50 clients of distinct questions against ``bisearch serve``,
with the CPU time of the server, its model process and the load generator read from ``/proc``
over the load. A tool, not the product.

    python docs/bench/tools/served_cpu.py INDEX_DIR [SECONDS] [NAME=VALUE ...]   # settings for the server

Prints requests/s, and per process the cores used and the milliseconds of CPU per request.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx

from benchmark import ServerProcess, bench_queries
from loadtest import run_load

BENCH = Path(__file__).resolve().parents[3].parent / "shared" / "bench"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The direct child processes of ``pid`` (the model process of ``bisearch serve``)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def main(index: Path, seconds: float, environment: dict[str, str]) -> None:
    queries = bench_queries([BENCH / "maintguide", BENCH / "debref"])
    with ServerProcess(index, None, environment) as server:
        for question in queries[:5]:
            httpx.get(server.url + "/search", params={"q": question + " (warm-up)", "k": 10}, timeout=120)
        processes = {"server": server.process.pid, **{"model": child for child in children(server.process.pid)}}
        before, own = {name: cpu_seconds(pid) for name, pid in processes.items()}, os.times()
        load = asyncio.run(run_load(server.url, 50, seconds, queries=tuple(queries), distinct=True))
        after, own_after = {name: cpu_seconds(pid) for name, pid in processes.items()}, os.times()
    used = {name: (after[name] - before[name]) / load.seconds for name in processes}
    used["load generator"] = (own_after.user + own_after.system - own.user - own.system) / load.seconds
    print(json.dumps({"requests_per_s": load.requests_per_s, "p50_ms": load.p50_ms, "errors": load.errors,
                      "cores": {name: round(value, 3) for name, value in used.items()},
                      "cpu_ms_per_request": {name: round(1000 * value / load.requests_per_s, 2)
                                             for name, value in used.items()}}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 25.0,
         dict(pair.split("=", 1) for pair in sys.argv[3:]))
