"""Filtered dense search as the corpus grows: p50 of ``dense_search`` with ``lang=``, with ``doc=``
and without a filter, on the local backend.

    python docs/bench/tools/bench_filters.py [PASSAGES ...]   (default: 100000; 768-d, flat)

Synthetic unit vectors (no model): documents of 1,000 passages, alternately English and
Chinese, bulk-loaded, one base snapshot; then one more small document is written (so the
delta is searched too, as in a live index) and queries with random unit vectors are timed,
each filter in turn, round after round. Besides the wall-clock p50, the p50 of the CPU time
the process spent (every thread) per query: on a shared machine it moves less than the wall clock.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench_writes import PASSAGES_PER_BULK_DOCUMENT, synthetic_document
from search.backends.local import LocalBackend
from search.backends.local.vectors import IndexSettings
from search.types import Filter, Lang, ModelInfo

DIMENSION = 768
FILTERS = {"none": Filter(), "lang": Filter(lang=Lang.EN), "doc": Filter(doc_ids=("bulk-1",))}


def load(backend: LocalBackend, count: int, rng: np.random.Generator) -> None:
    """``count`` passages in documents of 1,000, alternately EN and ZH, then one base snapshot."""
    numbers = range(0, count, PASSAGES_PER_BULK_DOCUMENT)
    for number in tqdm(numbers, desc=f"load {count:,}", unit="doc"):
        lang = Lang.EN if (number // PASSAGES_PER_BULK_DOCUMENT) % 2 == 0 else Lang.ZH
        document = synthetic_document(f"bulk-{number // PASSAGES_PER_BULK_DOCUMENT}",
                                      min(PASSAGES_PER_BULK_DOCUMENT, count - number), DIMENSION, rng, lang)
        with backend.store.transaction():
            backend.store.insert_document(document)
    backend.merge()
    backend.write([synthetic_document("fresh", 3, DIMENSION, rng)])


def measure(count: int, rounds: int = 60) -> dict[str, object]:
    rng = np.random.default_rng(count)
    with tempfile.TemporaryDirectory(prefix="bisearch-filters-") as folder:
        backend = LocalBackend(Path(folder), IndexSettings(kind="flat"))
        backend.record_model(ModelInfo("synthetic", DIMENSION, "", ""))
        load(backend, count, rng)
        queries = rng.standard_normal((rounds, DIMENSION)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        wall: dict[str, list[float]] = {name: [] for name in FILTERS}
        cpu: dict[str, list[float]] = {name: [] for name in FILTERS}
        for query in queries:
            for name, where in FILTERS.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                assert backend.dense_search(query, 10, where)
                wall[name].append(time.perf_counter() - started)
                cpu[name].append(time.process_time() - started_cpu)
        backend.close()
    return {"passages": count, "dimension": DIMENSION, "rounds": rounds,
            **{f"{name}_ms_p50": round(statistics.median(values) * 1000, 2) for name, values in wall.items()},
            **{f"{name}_cpu_ms_p50": round(statistics.median(values) * 1000, 2) for name, values in cpu.items()}}


if __name__ == "__main__":
    print(json.dumps([measure(int(size)) for size in sys.argv[1:] or [100_000]], indent=1))
