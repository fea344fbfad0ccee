"""Write cost of the local backend as the corpus grows: add / delete one 3-passage document.

Synthetic unit vectors and tokens (no model): the corpus is bulk-loaded, a base snapshot
is built once, then documents are added and deleted one at a time, each write timed until
it is committed and visible to the next query. ``write_ratio`` = median add time at the
largest size ÷ at the smallest (goal ≤ 2: writes cost O(batch), not O(corpus)).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from search.backends.base import PreparedDocument
from search.backends.local import LocalBackend
from search.backends.local.vectors import IndexSettings
from search.types import Document, Lang, ModelInfo, Passage

PASSAGES_PER_BULK_DOCUMENT = 1000


def synthetic_document(doc_id: str, passages: int, dimension: int, rng: np.random.Generator,
                       lang: Lang = Lang.EN) -> PreparedDocument:
    """A document of ``passages`` short passages in ``lang`` with random unit vectors and tokens."""
    words = [f"w{n}" for n in rng.integers(0, 50_000, size=passages * 4)]
    texts = [" ".join(words[i * 4:i * 4 + 4]) for i in range(passages)]
    text = "\n".join(texts)
    starts = np.cumsum([0] + [len(t) + 1 for t in texts[:-1]])
    items = tuple(Passage(doc_id, n, int(s), int(s) + len(t), t, lang) for n, (s, t) in enumerate(zip(starts, texts)))
    vectors = rng.standard_normal((passages, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return PreparedDocument(Document(doc_id, doc_id, "bench", text, lang), items,
                            tuple(tuple(t.split()) for t in texts), vectors)


def bulk_load(backend: LocalBackend, count: int, dimension: int, rng: np.random.Generator) -> None:
    """``count`` passages written in large batches, then one base snapshot."""
    for start in tqdm(range(0, count, PASSAGES_PER_BULK_DOCUMENT * 20), desc=f"load {count:,}", unit="batch"):
        size = min(count - start, PASSAGES_PER_BULK_DOCUMENT * 20)
        documents = [synthetic_document(f"bulk-{start + n}", min(PASSAGES_PER_BULK_DOCUMENT, size - n), dimension, rng)
                     for n in range(0, size, PASSAGES_PER_BULK_DOCUMENT)]
        with backend.store.transaction():
            for document in documents:
                backend.store.insert_document(document)
    backend.merge()


def measure_size(count: int, dimension: int, repeats: int, folder: Path) -> dict[str, object]:
    """Median seconds to add and to delete one 3-passage document over ``count`` passages."""
    rng = np.random.default_rng(count)
    backend = LocalBackend(folder, IndexSettings(kind="flat"))
    backend.record_model(ModelInfo("synthetic", dimension, "", ""))
    bulk_load(backend, count, dimension, rng)
    adds, deletes = [], []
    for number in range(repeats):
        document = synthetic_document(f"new-{number}", 3, dimension, rng)
        started = time.perf_counter()
        backend.write([document])  # committed, and the process's view caught up (visible to the next query)
        adds.append(time.perf_counter() - started)
    for number in range(repeats):
        started = time.perf_counter()
        backend.delete(f"new-{number}")
        deletes.append(time.perf_counter() - started)
    backend.close()
    return {"passages": count, "dimension": dimension, "repeats": repeats,
            "add_ms_p50": round(statistics.median(adds) * 1000, 2),
            "delete_ms_p50": round(statistics.median(deletes) * 1000, 2)}


def measure_writes(sizes: list[int], dimension: int = 128, repeats: int = 20) -> dict[str, object]:
    """The write table and ``write_ratio`` (largest ÷ smallest median add time)."""
    rows = []
    for count in sizes:
        with tempfile.TemporaryDirectory(prefix="bisearch-writes-") as folder:
            rows.append(measure_size(count, dimension, repeats, Path(folder)))
    return {"rows": rows, "write_ratio": round(rows[-1]["add_ms_p50"] / rows[0]["add_ms_p50"], 3),
            "delete_ratio": round(rows[-1]["delete_ms_p50"] / rows[0]["delete_ms_p50"], 3)}


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(measure_writes([int(size) for size in sys.argv[1:]] or [10_000, 100_000, 1_000_000]), indent=1))
