"""One query's flat FAISS search on one OpenMP thread against two: wall and CPU time per search,
idle and while another process takes half a core. A tool, not the product (the product searches on
one thread: ``search/backends/local/vectors.py``, ``one_thread``).

    python docs/bench/tools/faiss_threads.py [VECTORS ...]    # default: 10000 100000 200000
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time

import faiss
import numpy as np

from openvino_streams import busy

DIMENSION = 768


def per_search_ms(index: faiss.Index, query: np.ndarray, repeats: int) -> tuple[float, float]:
    """Wall and CPU milliseconds per ``index.search`` of ``query`` (top 10)."""
    index.search(query, 10)
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        index.search(query, 10)
    return (1000 * (time.perf_counter() - started) / repeats, 1000 * (time.process_time() - cpu) / repeats)


def main(sizes: list[int]) -> None:
    generator = np.random.default_rng(0)
    for size in sizes:
        index = faiss.IndexIDMap(faiss.IndexFlatIP(DIMENSION))
        index.add_with_ids(generator.random((size, DIMENSION), dtype=np.float32), np.arange(size))
        query = generator.random((1, DIMENSION), dtype=np.float32)
        for share in (0.0, 0.5):
            stop = multiprocessing.Event()
            hog = multiprocessing.Process(target=busy, args=(stop, share))
            hog.start()
            for threads in (2, 1):
                faiss.omp_set_num_threads(threads)
                wall, cpu = per_search_ms(index, query, max(20, 1_000_000 // size))
                print(json.dumps({"vectors": size, "busy_share": share, "threads": threads,
                                  "wall_ms": round(wall, 3), "cpu_ms": round(cpu, 3)}), flush=True)
            stop.set()
            hog.join()


if __name__ == "__main__":
    main([int(size) for size in sys.argv[1:]] or [10_000, 100_000, 200_000])
