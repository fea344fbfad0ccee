"""``make bench``: speed as ratios against the bare model and FAISS in the same run, and index scale.

* ingest: passages/s of the product's ingest ÷ passages/s of the bare model (the engine's
  ``encode_documents``, on the runtime the product runs) on the same chunk texts, measured in alternating rounds so machine noise hits both
  → ``ingest_ratio``.
* query: p50/p99 of ``GET /search`` over HTTP on 127.0.0.1 (a ``bisearch serve`` process),
  one request at a time, ÷ the bare model's ``encode_queries`` + FAISS exact search, query by
  query, alternating → ``query_p50_ratio``.
* throughput: requests/s of 50 clients × 30 s against a ``bisearch serve`` process ÷ bare
  ``encode_queries`` queries/s in batches of 32, on the same distinct query texts (never
  repeated, so the server's query cache cannot flatter it; the bare rates on a sample of the
  texts the load sent) → ``throughput_ratio``; also
  p50/p99 under that load and bare queries/s at batch 1, 8 and 32.
* write: add / delete one 3-passage document at growing corpus sizes (``bench_writes``) →
  ``write_ratio`` (largest ÷ smallest corpus).
* runtimes: torch fp32, ONNX Runtime fp32, torch bf16, OpenVINO fp32 and OpenVINO bf16 (the default
  on a CPU with bf16 matrix instructions) in one run, alternating (issue 24): bare
  queries/s at batch 1 / 8 / 32 and passages/s (``runtime_speed.one_round``), the product's ingest
  passages/s of the bench documents, and served requests/s of ``--clients`` clients with distinct
  queries against a server on each (``BISEARCH_RUNTIME``, ``BISEARCH_PRECISION``) → each one's
  ratios to torch fp32 (``vs_torch_fp32``).
* scale: flat, HNSW and IVF-PQ (re-scored) on synthetic clustered unit vectors: build time,
  size, query latency and recall@10 against exact search.

Bare model calls run on the embedder's model thread (``Embedder.run``), the one thread that
holds torch's OpenMP team: a call from another thread would start a second team and run
~20% slower (see search/model/batching.py), which would flatter every ratio.

The JSON (``docs/bench/bench.json``, committed) keeps the latest run of each section and
the four ratios at the top level (null until measured). Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import shutil
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import faiss
import httpx
import numpy as np
from tqdm import tqdm

from search.chunking import Chunker
from search.model.embedder import Embedder
from search.service import load_embedder
from search.eval.sections import load_queries
from search.backends.local import LocalBackend
from search.backends.local.vectors import IndexSettings, VectorIndex
from bench_writes import measure_writes
from bench_phrases import measure_phrase_sizes
from search.ingest.pipeline import Ingester
from search.loading import discover_files, read_document
from search.settings import Settings
from search.types import Document
from loadtest import distinct_queries, percentiles, run_load

ROOT = Path(__file__).resolve().parents[3]  # the repository (this file: docs/bench/tools/)
DEFAULT_BENCH = ROOT.parent / "shared" / "bench" / "maintguide"
DEFAULT_OUT = ROOT / "docs" / "bench" / "bench.json"
SCALE_KINDS = ("flat", "hnsw", "ivfpq")
#: The section whose result holds each top-level ratio, and the key inside it.
RATIOS = {"ingest_ratio": ("ingest", "ratio"), "query_p50_ratio": ("query", "p50_ratio"),
          "throughput_ratio": ("throughput", "ratio"), "write_ratio": ("write", "ratio")}


# -- helpers ------------------------------------------------------------------------------
def timed(function: Callable[[], object]) -> float:
    """Seconds one call of ``function`` takes."""
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- ingest ---------------------------------------------------------------------------------
def bench_corpus(sources: list[Path], chunker: Chunker, passages: int) -> list[Document]:
    """Copies of the source documents under new ids, just enough to hold ``passages`` chunks."""
    originals = [read_document(path, doc_id) for path, doc_id in discover_files(sources)]
    sizes = [len(chunker.chunk(document.text)) for document in originals]
    corpus, total, copy = [], 0, 0
    while total < passages:
        for document, size in zip(originals, sizes):
            if total >= passages:
                break
            corpus.append(dataclasses.replace(document, id=f"copy{copy}/{document.id}"))
            total += size
        copy += 1
    return corpus


def rounds_of(documents: list[Document], size: int) -> list[list[Document]]:
    return [documents[start:start + size] for start in range(0, len(documents), size)]


def measure_ingest(embedder: Embedder, documents: list[Document], index_dir: Path,
                   round_documents: int = 16) -> dict[str, object]:
    """Product ingest vs the bare model's ``encode_documents`` on the same chunks, in alternating rounds."""
    ingester = Ingester(LocalBackend(index_dir), embedder, Chunker(embedder.tokenizer, Settings().chunk_tokens))
    bare_s = product_s = 0.0
    passages = 0
    for batch in tqdm(rounds_of(documents, round_documents), desc="ingest rounds", unit="round"):
        texts = [chunk.text for document in batch for chunk in ingester.chunker.chunk(document.text)]
        passages += len(texts)
        bare_s += timed(lambda: embedder.run(lambda: embedder.engine.encode_documents(texts, 16)))
        product_s += timed(lambda: ingester.add(batch))
    ingester.backend.close()
    bare_rate, product_rate = passages / bare_s, passages / product_s
    return {"passages": passages, "documents": len(documents),
            "bare_passages_per_s": round(bare_rate, 3), "ingest_passages_per_s": round(product_rate, 3),
            "ratio": round(product_rate / bare_rate, 3)}


# -- query ----------------------------------------------------------------------------------
class ServerProcess:
    """``bisearch serve`` on 127.0.0.1 in its own process, for as long as the block runs."""

    def __init__(self, index_dir: Path, search_threads: int | None = None, environment: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = server_command(index_dir, self.port)
        self.environment = {**os.environ, **({"BISEARCH_SEARCH_THREADS": str(search_threads)} if search_threads else {}),
                            **(environment or {})}

    def __enter__(self) -> "ServerProcess":
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        env=self.environment)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.5)
        raise RuntimeError("server did not start within 300 s")

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def server_command(index_dir: Path, port: int) -> list[str]:
    """``bisearch serve`` as a command line (its settings, e.g. ``BISEARCH_SEARCH_THREADS``, from the environment)."""
    return [sys.executable, "-m", "search.cli", "serve", "--index", str(index_dir), "--port", str(port)]


# -- the index API (the only places the benchmark touches it: adapt here) --------------------------
def build_index(embedder: Embedder, index_dir: Path, sources: list[Path]) -> dict[str, float]:
    """An index of ``sources`` at ``index_dir`` by the product's ingest: its passages and passages/s."""
    from search.service import open_ingester

    ingester = open_ingester(Settings().with_overrides(index=index_dir), embedder=embedder)
    started = time.perf_counter()
    summary = ingester.ingest_paths(sources)
    seconds = time.perf_counter() - started
    ingester.backend.close()
    return {"passages": summary.chunks_added, "seconds": round(seconds, 1),
            "passages_per_s": round(summary.chunks_added / seconds, 2)}


def exact_faiss(index_dir: Path) -> faiss.Index:
    """A bare FAISS exact index of the same vectors the service searches."""
    backend = LocalBackend(index_dir)
    flat = None
    with backend.store.committed_state() as state:
        for ids, vectors in state.batches():
            flat = flat or faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
            flat.add_with_ids(vectors, ids)
    backend.close()
    return flat


def measure_query(embedder: Embedder, index_dir: Path, queries: list[str], k: int = 10,
                  warmup: list[str] | None = None, search_threads: int | None = None) -> dict[str, object]:
    """Latency of ``GET /search`` over HTTP vs bare encode + FAISS, query by query.

    ``warmup`` texts are other than ``queries``, so the server's query cache never answers a timed one.
    """
    flat = exact_faiss(index_dir)
    bare_ms, http_ms = [], []

    def bare(text: str) -> None:
        flat.search(embedder.run(lambda: embedder.engine.encode_queries([text])).astype(np.float32), k)

    with ServerProcess(index_dir, search_threads) as server, httpx.Client(base_url=server.url, timeout=120) as http:
        def over_http(text: str) -> None:
            http.get("/search", params={"q": text, "k": k}).raise_for_status()

        for text in warmup or []:
            bare(text), over_http(text)
        for text in tqdm(queries, desc="queries", unit="q"):
            bare_ms.append(1000 * timed(lambda: bare(text)))
            http_ms.append(1000 * timed(lambda: over_http(text)))
    bare_p, http_p = percentiles(bare_ms), percentiles(http_ms)
    return {"queries": len(queries), "passages": int(flat.ntotal), "bare": bare_p, "http": http_p,
            "p50_ratio": round(http_p["p50_ms"] / bare_p["p50_ms"], 3),
            "p99_ratio": round(http_p["p99_ms"] / bare_p["p99_ms"], 3)}


# -- throughput -----------------------------------------------------------------------------
def bare_queries_per_s(embedder: Embedder, queries: list[str], batch: int, count: int) -> float:
    """Queries/s of the bare model's ``encode_queries`` in batches of ``batch`` over ``count`` distinct queries."""
    texts = queries[:count]
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        embedder.run(lambda: embedder.engine.encode_queries(texts[start:start + batch]))
    return len(texts) / (time.perf_counter() - started)


def measure_throughput(embedder: Embedder, index_dir: Path, queries: list[str], clients: int = 50,
                       seconds: float = 30.0, search_threads: int | None = None) -> dict[str, object]:
    """Requests/s of ``clients`` × ``seconds`` against a server ÷ bare batch-32 ``encode_query`` q/s.

    The load sends distinct queries, each at most once (``loadtest.distinct_queries``: after one pass
    over the bench questions, each again with a round number, about three tokens longer). The bare
    rates are then measured on the texts the load sent (an even sample, see :func:`sent_sample`),
    with the server stopped (medians of 3 rounds): the ratio compares like with like.
    """
    with ServerProcess(index_dir, search_threads) as server:
        httpx.get(server.url + "/search", params={"q": "warm-up", "k": 10}, timeout=120)
        load = asyncio.run(run_load(server.url, clients, seconds, queries=tuple(queries), distinct=True))
    texts = sent_sample(queries, load.requests, 256)
    embedder.run(lambda: embedder.engine.encode_queries(texts[-8:]))  # warm-up on texts the timed runs reach last, if ever
    rounds = [{batch: bare_queries_per_s(embedder, texts, batch, count) for batch, count in ((1, 32), (8, 64), (32, 256))}
              for _ in range(3)]  # the median of 3 rounds: one busy moment of a shared machine moves no ratio
    bare = {f"batch_{batch}_queries_per_s": round(statistics.median(row[batch] for row in rounds), 2) for batch in rounds[0]}
    ratio = load.requests_per_s / bare["batch_32_queries_per_s"]
    return {"clients": clients, "seconds": load.seconds, "requests": load.requests, "errors": load.errors,
            "requests_per_s": load.requests_per_s, "p50_ms": load.p50_ms, "p99_ms": load.p99_ms,
            "error_samples": load.error_samples, "search_threads": search_threads, "bare": bare,
            "bare_texts": "an even sample of the texts the load sent", "ratio": round(ratio, 3)}


def sent_sample(queries: list[str], sent: int, count: int) -> list[str]:
    """``count`` texts spread evenly over the first ``sent`` texts the load generates from ``queries``
    in the order sent: the same mix of first-pass and numbered texts, batched by neighbours as the load's are."""
    texts = list(itertools.islice(distinct_queries(tuple(queries)), max(sent, count)))
    return [texts[round(i * (len(texts) - 1) / max(count - 1, 1))] for i in range(count)]


# -- runtimes ---------------------------------------------------------------------------------
#: The variants compared: (name, runtime, precision); the first is the reference of the ratios.
VARIANTS = (("torch fp32", "torch", "fp32"), ("onnx fp32", "onnx", "fp32"), ("torch bf16", "torch", "bf16"),
            ("openvino fp32", "openvino", "fp32"), ("openvino bf16", "openvino", "bf16"))


def served_rate(index_dir: Path, runtime: str, precision: str, queries: list[str], clients: int, seconds: float,
                search_threads: int | None) -> dict[str, object]:
    """Requests/s of ``clients`` clients × ``seconds`` against a server on ``runtime`` and ``precision``
    (distinct queries)."""
    with ServerProcess(index_dir, search_threads, {"BISEARCH_RUNTIME": runtime, "BISEARCH_PRECISION": precision}
                       ) as server:
        httpx.get(server.url + "/search", params={"q": "warm-up", "k": 10}, timeout=120)
        load = asyncio.run(run_load(server.url, clients, seconds, queries=tuple(queries), distinct=True))
    return {"requests_per_s": load.requests_per_s, "p50_ms": load.p50_ms, "p99_ms": load.p99_ms,
            "requests": load.requests, "errors": load.errors}


def medians(rows: list[dict[str, float]]) -> dict[str, float]:
    return {name: round(statistics.median(row[name] for row in rows), 2) for name in rows[0]}


def measure_runtimes(bench_dir: Path, queries: list[str], scratch: Path, clients: int, seconds: float,
                     search_threads: int | None, rounds: int = 3) -> dict[str, object]:
    """The variants side by side (:data:`VARIANTS`), every measurement alternating between them.

    Bare rates: medians of ``rounds`` rounds, each round all variants in turn. Ingest and served
    load: once per variant, the served load in the reverse order, so a drift of the machine hits
    them alike.
    """
    from runtime_speed import one_round, simd_flags, workload

    embedders = {name: Embedder(runtime=runtime, precision=precision, query_cache=0)
                 for name, runtime, precision in VARIANTS}
    for name, runtime, precision in VARIANTS:
        if (embedders[name].runtime, embedders[name].precision) != (runtime, precision):
            raise RuntimeError(f"{name} not in use: {embedders[name].runtime_reason}")
    texts, passages = workload(embedders[VARIANTS[0][0]].tokenizer)
    for embedder in embedders.values():  # first calls allocate
        embedder.encode_passages(passages[:4]), embedder.run(lambda: embedder.engine.encode_queries(texts[:8]))
    bare: dict[str, list[dict[str, float]]] = {name: [] for name in embedders}
    for number in tqdm(range(rounds), desc="bare rounds"):
        for name, embedder in embedders.items():
            bare[name].append(one_round(embedder, texts, passages, offset=number * 104))
    ingest = {name: build_index(embedder, scratch / f"ingest-{number}", [bench_dir / "docs"])
              for number, (name, embedder) in enumerate(embedders.items())}
    for embedder in embedders.values():
        embedder.close()  # the servers below load their own
    served = {name: served_rate(scratch / "ingest-0", runtime, precision, queries, clients, seconds, search_threads)
              for name, runtime, precision in reversed(VARIANTS)}
    results = {name: {"bare": medians(bare[name]), "ingest": ingest[name], "served": served[name]} for name in embedders}
    reference = results[VARIANTS[0][0]]

    def ratios(row: dict[str, dict]) -> dict[str, float]:
        return {**{name: round(row["bare"][name] / reference["bare"][name], 2) for name in row["bare"]},
                "ingest_passages_per_s": round(row["ingest"]["passages_per_s"] / reference["ingest"]["passages_per_s"], 2),
                "served_requests_per_s": round(row["served"]["requests_per_s"] / reference["served"]["requests_per_s"], 2),
                "throughput_ratio": round(row["served"]["requests_per_s"] / row["bare"]["queries_per_s_b32"], 3)}

    return {"rounds": rounds, "clients": clients, "seconds": seconds, "simd": simd_flags(), "results": results,
            "vs_torch_fp32": {name: ratios(row) for name, row in results.items()}}


def bench_queries(bench_dirs: list[Path]) -> list[str]:
    """Distinct query texts of the benchmark folders, in file order."""
    seen: dict[str, None] = {}
    for folder in bench_dirs:
        if (folder / "queries.jsonl").is_file():
            seen.update((query.text, None) for query in load_queries(folder))
    return list(seen)


# -- scale ----------------------------------------------------------------------------------
def clustered_unit_vectors(count: int, dimension: int, seed: int = 0, topics: int = 10_000) -> np.ndarray:
    """Unit vectors around random topic centres: neighbourhoods like real embeddings have."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((topics, dimension), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = np.empty((count, dimension), dtype=np.float32)
    for start in range(0, count, 100_000):
        stop = min(count, start + 100_000)
        noise = rng.standard_normal((stop - start, dimension), dtype=np.float32) * (0.8 / np.sqrt(dimension))
        block = centres[rng.integers(0, topics, stop - start)] + noise
        vectors[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return vectors


def random_rows(vectors: np.ndarray, count: int) -> np.ndarray:
    rows = np.random.default_rng(1).choice(len(vectors), min(count, len(vectors)), replace=False)
    return vectors[np.sort(rows)]


def index_bytes(index: faiss.Index) -> int:
    """Size of the index as FAISS writes it (what it holds in RAM, give or take)."""
    with tempfile.NamedTemporaryFile(suffix=".faiss") as file:
        faiss.write_index(index, file.name)
        return os.path.getsize(file.name)


def measure_kind(kind: str, vectors: np.ndarray, queries: np.ndarray, truth: list[set[int]],
                 k: int = 10) -> dict[str, object]:
    """Build one index kind over ``vectors`` and score it against exact ``truth``."""
    ids = np.arange(len(vectors), dtype=np.int64)
    settings = IndexSettings(kind=kind)
    started = time.perf_counter()
    index = VectorIndex.build(vectors.shape[1], lambda: iter([(ids, vectors)]), len(vectors), settings,
                              sample=lambda n: random_rows(vectors, n))
    build_s = time.perf_counter() - started
    exact = (lambda wanted: {i: vectors[i] for i in wanted}) if kind == "ivfpq" else None
    latencies, hits = [], 0
    for query, expected in zip(queries, truth):
        started = time.perf_counter()
        found = index.search(query, k, exact=exact)
        latencies.append(1000 * (time.perf_counter() - started))
        hits += len(expected & {i for i, _ in found})
    size = index_bytes(index.index)
    return {"kind": kind, "build_s": round(build_s, 1), "index_mb": round(size / 2**20, 1),
            "bytes_per_vector": round(size / len(vectors), 1), **percentiles(latencies),
            "recall_at_10": round(hits / (k * len(queries)), 4),
            "rerank_source": "float vectors outside the index (SQLite in the service)" if exact else None}


def measure_scale(count: int, dimension: int, queries: int = 200, k: int = 10) -> list[dict[str, object]]:
    """All index kinds at one size and dimension."""
    vectors = clustered_unit_vectors(count, dimension)
    rng = np.random.default_rng(2)
    probes = vectors[rng.choice(count, queries, replace=False)] + rng.standard_normal(
        (queries, dimension), dtype=np.float32) * (0.3 / np.sqrt(dimension))
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    exact = faiss.IndexFlatIP(dimension)
    exact.add(vectors)
    truth = [set(row.tolist()) for row in exact.search(probes, k)[1]]
    del exact
    rows = []
    for kind in SCALE_KINDS:
        row = measure_kind(kind, vectors, probes, truth, k)
        rows.append({"vectors": count, "dimension": dimension, **row})
        print(json.dumps(rows[-1]), flush=True)
    return rows


# -- report ---------------------------------------------------------------------------------
def summary_table(results: dict[str, object]) -> str:
    """The printed summary of everything measured in this run."""
    lines = []
    if ingest := results.get("ingest"):
        lines.append(f"ingest  {ingest['passages']} passages: service {ingest['ingest_passages_per_s']}/s, "
                     f"bare encode_document {ingest['bare_passages_per_s']}/s -> ratio {ingest['ratio']} (goal >= 0.9)")
    if int8 := results.get("int8"):
        lines.append(f"int8    bare encode {int8['int8_passages_per_s']}/s vs float {int8['float_passages_per_s']}/s "
                     f"-> speed-up {int8['speedup']} ({int8['passages']} passages)")
    if query := results.get("query"):
        lines.append(f"query   {query['queries']} queries over {query['passages']} passages: HTTP p50 "
                     f"{query['http']['p50_ms']} ms / p99 {query['http']['p99_ms']} ms; bare p50 "
                     f"{query['bare']['p50_ms']} ms / p99 {query['bare']['p99_ms']} ms -> ratio p50 "
                     f"{query['p50_ratio']} (goal <= 1.15), p99 {query['p99_ratio']}")
    if put := results.get("throughput"):
        bare = put["bare"]
        lines.append(f"load    {put['clients']} clients x {put['seconds']} s: {put['requests_per_s']} requests/s, "
                     f"p50 {put['p50_ms']} ms, p99 {put['p99_ms']} ms (goal <= 2500), {put['errors']} errors; "
                     f"bare encode_query q/s batch 1 / 8 / 32: {bare['batch_1_queries_per_s']} / "
                     f"{bare['batch_8_queries_per_s']} / {bare['batch_32_queries_per_s']} -> ratio "
                     f"{put['ratio']} (goal >= 0.8)")
    if (runtimes := results.get("runtimes")) and "vs_torch_fp32" in runtimes:
        for name, row in runtimes["results"].items():
            lines.append(f"{name:10} bare q/s b1/8/32 {row['bare']['queries_per_s_b1']} / {row['bare']['queries_per_s_b8']} / "
                         f"{row['bare']['queries_per_s_b32']}, passages/s {row['bare']['passages_per_s']}; ingest "
                         f"{row['ingest']['passages_per_s']} passages/s; served {row['served']['requests_per_s']} requests/s")
            lines.append(f"{'':10} vs torch fp32: " + "  ".join(f"{key} {value}" for key, value
                                                               in runtimes["vs_torch_fp32"][name].items()))
    for row in (results.get("phrases") or {}).get("rows", []):
        lines.append(f"phrases {row['passages']:,} passages, {row['queries']} queries: p50 plain {row['plain_ms_p50']} ms, "
                     f"\"phrase\" {row['phrase_ms_p50']} ms, with -word {row['phrase_excluding_ms_p50']} ms; "
                     f"phrase recall@10 {row['phrase_recall_at_10']} (EN {row['phrase_recall_at_10_en']}, ZH {row['phrase_recall_at_10_zh']})")
    lines.append("ratios  " + "  ".join(f"{key} {results.get(key)}" for key in RATIOS))
    if scale := results.get("scale"):
        lines.append(f"{'vectors':>9} {'dim':>4} {'kind':6} {'build s':>8} {'MB':>8} {'B/vec':>7} "
                     f"{'p50 ms':>7} {'p99 ms':>7} {'R@10':>6}")
        for row in scale:
            lines.append(f"{row['vectors']:>9} {row['dimension']:>4} {row['kind']:6} {row['build_s']:>8} "
                         f"{row['index_mb']:>8} {row['bytes_per_vector']:>7} {row['p50_ms']:>7} "
                         f"{row['p99_ms']:>7} {row['recall_at_10']:>6}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python docs/bench/tools/benchmark.py", description=__doc__.split("\n")[0])
    parser.add_argument("--sections", default="ingest,query,throughput,runtimes,write,phrases,scale",
                        help="comma list of ingest, query, throughput, write, phrases, scale, runtimes")
    parser.add_argument("--bench-dir", type=Path, default=DEFAULT_BENCH)
    parser.add_argument("--index", type=Path, default=None,
                        help="query/throughput: copy this index instead of building one of seeds/")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--search-threads", type=int, default=64,
                        help="searches the server runs at once (0: the API's own default)")
    parser.add_argument("--passages", type=int, default=2000, help="ingest corpus size (default: %(default)s)")
    parser.add_argument("--sizes", default="100000,1000000", help="scale: vector counts")
    parser.add_argument("--write-sizes", default="10000,100000,1000000", help="write: corpus sizes (passages)")
    parser.add_argument("--phrase-sizes", default="10000,100000", help="phrases: corpus sizes (passages)")
    parser.add_argument("--dims", default="768,256", help="scale: dimensions (Matryoshka)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON, updated section by section")
    return parser.parse_args(argv)


def load_previous(path: Path) -> dict[str, object]:
    """The JSON of earlier runs (sections not run now keep their latest figures)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def with_ratios(results: dict[str, object]) -> dict[str, object]:
    """``results`` with the four ratios on top (null when their section was never measured)."""
    ratios = {}
    for key, (section, field) in RATIOS.items():
        value = results.get(section)
        ratios[key] = value.get(field) if isinstance(value, dict) else None
    return {**ratios, **{key: value for key, value in results.items() if key not in RATIOS}}


def save(results: dict[str, object], path: Path) -> None:
    """Write the results so far (each section lands even if a later one is stopped)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(with_ratios(results), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def preload_for_readers() -> None:
    """The file readers' fork server also imports this script's own libraries once. Before Python
    3.13.8 each reader child runs the main script again (CPython gh-126631): for this script 0.23 s
    a file against 0.01 s for ``bisearch`` (whose CLI module the product preloads), which would
    charge every ingest measured here a cost the product does not pay."""
    from search.loading import isolated

    isolated.PRELOADED.extend(name for name in ("faiss", "httpx", "aiohttp", "search.service", "search.ingest.pipeline")
                              if name not in isolated.PRELOADED)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    preload_for_readers()
    sections = list(dict.fromkeys(args.sections.split(",")))
    unknown = set(sections) - {"ingest", "query", "throughput", "write", "phrases", "scale", "runtimes"}
    if unknown:
        raise SystemExit(f"unknown sections: {', '.join(sorted(unknown))}")
    results = load_previous(args.out)
    run = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "faiss": faiss.__version__},
           "started": time.strftime("%FT%T%z"), "sections": sections, "command": " ".join(sys.argv)}
    threads = args.search_threads or None
    with tempfile.TemporaryDirectory(prefix="bisearch-bench-") as scratch:
        ingest_dir, index_dir = Path(scratch) / "ingest", Path(scratch) / "index"
        embedder = load_embedder(Settings()) if set(sections) & {"ingest", "query", "throughput"} else None
        if "ingest" in sections:
            chunker = Chunker(embedder.tokenizer, Settings().chunk_tokens)
            documents = bench_corpus([args.bench_dir / "docs", ROOT / "seeds"], chunker, args.passages)
            results["ingest"] = {**measure_ingest(embedder, documents, ingest_dir), "run": run}
            save(results, args.out)
        if set(sections) & {"query", "throughput"}:
            if args.index:
                shutil.copytree(args.index, index_dir)
            else:
                build_index(embedder, index_dir, [ROOT / "seeds"])
        queries = bench_queries([args.bench_dir, args.bench_dir.parent / "debref"])
        if "query" in sections:
            timed_queries = [query.text for query in load_queries(args.bench_dir)]
            warmup = [text for text in queries if text not in set(timed_queries)][:5]
            results["query"] = {**measure_query(embedder, index_dir, timed_queries, warmup=warmup,
                                                search_threads=threads), "run": run}
            save(results, args.out)
        if "throughput" in sections:
            results["throughput"] = {**measure_throughput(embedder, index_dir, queries, args.clients, args.seconds,
                                                          search_threads=threads), "run": run}
            save(results, args.out)
        if "runtimes" in sections:
            results["runtimes"] = {**measure_runtimes(args.bench_dir, queries, Path(scratch), args.clients, args.seconds,
                                                      threads), "run": run}
            save(results, args.out)

    if "write" in sections:
        writes = measure_writes([int(size) for size in args.write_sizes.split(",")])
        results["write"] = {**writes, "ratio": writes["write_ratio"], "run": run}
        save(results, args.out)
    if "phrases" in sections:
        results["phrases"] = {**measure_phrase_sizes([int(size) for size in args.phrase_sizes.split(",")],
                                                     [args.bench_dir, args.bench_dir.parent / "debref"]), "run": run}
        save(results, args.out)
    if "scale" in sections:
        rows = []
        for count in map(int, args.sizes.split(",")):
            for dimension in map(int, args.dims.split(",")):
                rows += measure_scale(count, dimension)
                results["scale"] = rows
                save(results, args.out)
    save(results, args.out)
    print(summary_table(with_ratios(results)))
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
