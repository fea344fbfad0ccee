"""Bare speed of the model runtimes in one run: passages/s and queries/s at batch 1 / 8 / 32.

    python docs/bench/tools/runtime_speed.py [ROUNDS] [RUNTIME:PRECISION ...] [threads=N]
    (default: 3 rounds of torch:fp32 onnx:fp32 onnx:int8, torch's default thread count)

Every runtime is loaded once (the product's Embedder, each on its own model thread), then the
rounds alternate between them, so a busy moment of a shared machine hits all of them; the
figures are medians over the rounds, and ``ratio_vs_first`` divides each by the first runtime's.
Passages: maintguide passages as ingest chunks them (256 tokens), through ``encode_passages``
(vectors and sentence vectors, what ingest calls) in batches of 16. Queries: distinct maintguide
questions through the engine's ``encode_queries`` on the model thread, in batches of 1, 8 and 32.
It also reports how far each runtime's vectors are from the first's, and the CPU's SIMD flags.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from search.chunking import Chunker
from search.model.embedder import Embedder

BENCH = Path(__file__).resolve().parents[3].parent / "shared" / "bench" / "maintguide"
QUERY_BATCHES = ((1, 8), (8, 32), (32, 64))  # (batch, queries per round)
PASSAGES_PER_ROUND = 24


def simd_flags() -> list[str]:
    """The vector instruction sets this CPU reports (what the kernels could use)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return [platform.machine()]
    return sorted(flag for flag in flags if flag.startswith(("avx", "amx", "fma", "sse4")))


def workload(tokenizer) -> tuple[list[str], list[str]]:
    """Distinct questions (EN and ZH) and ingest-sized passages of the maintguide documents."""
    queries = list(dict.fromkeys(json.loads(line)["text"] for line in
                                 (BENCH / "queries.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()))
    chunker = Chunker(tokenizer, 256)
    passages: list[str] = []
    for lang in ("en", "zh"):
        for path in sorted((BENCH / "docs" / lang).glob("*.txt"))[:6]:
            passages += [chunk.text for chunk in chunker.chunk(path.read_text(encoding="utf-8"))][:PASSAGES_PER_ROUND // 12]
    return queries, passages


def timed_rate(count: int, call) -> float:
    started = time.perf_counter()
    call()
    return count / (time.perf_counter() - started)


def one_round(embedder: Embedder, queries: list[str], passages: list[str], offset: int) -> dict[str, float]:
    """Passages/s and queries/s at each batch size; ``offset`` keeps every round's queries new."""
    rates = {"passages_per_s": timed_rate(len(passages), lambda: embedder.encode_passages(passages, batch_size=16))}
    for batch, count in QUERY_BATCHES:
        texts = [queries[(offset + n) % len(queries)] for n in range(count)]

        def encode_all() -> None:
            for start in range(0, count, batch):
                embedder.run(lambda: embedder.engine.encode_queries(texts[start:start + batch]))

        rates[f"queries_per_s_b{batch}"] = timed_rate(count, encode_all)
    return rates


def main(argv: list[str]) -> dict[str, object]:
    rounds = int(argv[0]) if argv and argv[0].isdigit() else 3
    variants = [arg for arg in argv if ":" in arg] or ["torch:fp32", "onnx:fp32", "onnx:int8"]
    threads = next((int(arg.split("=")[1]) for arg in argv if arg.startswith("threads=")), None)
    if threads:  # both runtimes follow torch's count (ONNX Runtime reads it when its session starts)
        import torch

        torch.set_num_threads(threads)
    embedders = {variant: Embedder(runtime=variant.split(":")[0], precision=variant.split(":")[1], query_cache=0)
                 for variant in variants}
    first = embedders[variants[0]]
    queries, passages = workload(first.tokenizer)
    for embedder in embedders.values():  # warm-up: first calls allocate
        embedder.encode_passages(passages[:4]), embedder.run(lambda: embedder.engine.encode_queries(queries[:8]))
    measured: dict[str, list[dict[str, float]]] = {variant: [] for variant in variants}
    for number in range(rounds):
        for variant, embedder in embedders.items():
            measured[variant].append(one_round(embedder, queries, passages, offset=number * 104))
            print(json.dumps({"round": number, "variant": variant, **measured[variant][-1]}), file=sys.stderr, flush=True)
    probe = queries[:32]
    reference = first.run(lambda: first.engine.encode_queries(probe))
    results = {}
    for variant, embedder in embedders.items():
        medians = {name: round(statistics.median(r[name] for r in measured[variant]), 2) for name in measured[variant][0]}
        vectors = embedder.run(lambda: embedder.engine.encode_queries(probe))
        results[variant] = {"runtime": embedder.runtime, **medians,
                            "max_abs_diff_vs_first": float(np.abs(vectors - reference).max()),
                            "min_cosine_vs_first": float(np.einsum("ij,ij->i", vectors, reference).min())}
    for variant in variants:
        results[variant]["ratio_vs_first"] = {name: round(results[variant][name] / results[variants[0]][name], 2)
                                              for name in measured[variant][0]}
    import torch

    return {"rounds": rounds, "threads": torch.get_num_threads(), "passages": len(passages), "simd": simd_flags(),
            "results": results}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=1))
