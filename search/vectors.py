"""FAISS vector index keyed by int64 chunk ids, chosen by size, saved atomically per generation.

Below ``exact_limit`` vectors the index is exact (flat inner product on normalised
vectors = cosine). Above it, ``auto`` switches to IVF-PQ: a few dozen bytes per vector in
RAM, candidates re-scored exactly with the float vectors kept in SQLite, so results carry
true cosines while memory stays compact. HNSW is available on request (fast, but it keeps
every float vector in RAM and cannot delete in place: a delete rebuilds it).
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import faiss
import numpy as np

SNAPSHOT_PREFIX = "vectors-"
SNAPSHOT_SUFFIX = ".faiss"
INDEX_KINDS = ("auto", "flat", "hnsw", "ivfpq")
TRAIN_SAMPLE = 160_000  # >= 39 points per list at 1M vectors (4,000 lists)
EXACT_FILTER_LIMIT = 10_000  # approximate kinds score a filter of at most this many ids exactly

ExactVectors = Callable[[list[int]], dict[int, np.ndarray]]


class VectorIndexError(RuntimeError):
    """A FAISS file could not be read, or the index settings are invalid."""


def snapshot_path(folder: Path, generation: int) -> Path:
    return folder / f"{SNAPSHOT_PREFIX}{generation}{SNAPSHOT_SUFFIX}"


def snapshot_generation(path: Path) -> int:
    """The generation a snapshot file was written for (-1 for a stray name)."""
    number = path.name[len(SNAPSHOT_PREFIX):-len(SNAPSHOT_SUFFIX)]
    return int(number) if number.isdigit() else -1


@dataclass(frozen=True)
class IndexSettings:
    """Which FAISS index to use and how to search it (env: ``BISEARCH_INDEX_*``)."""

    kind: str = "auto"
    exact_limit: int = 200_000
    min_approximate: int = 10_000  # fewer vectors than this are always searched exactly
    hnsw_m: int = 32
    ef_search: int = 128
    nprobe: int | None = None  # IVF lists searched; None: an eighth of them (at least 64)
    pq_bytes_per_dim: float = 1 / 4  # 768-d -> PQ192: 192 bytes per vector instead of 3,072
    rerank: int = 10  # approximate kinds fetch k * rerank candidates and re-score them exactly

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise VectorIndexError(f"unknown index kind {self.kind!r}; choose one of {', '.join(INDEX_KINDS)}")

    @classmethod
    def from_env(cls) -> "IndexSettings":
        env = os.environ
        return cls(kind=env.get("BISEARCH_INDEX_KIND", cls.kind),
                   exact_limit=int(env.get("BISEARCH_INDEX_EXACT_LIMIT", cls.exact_limit)),
                   nprobe=int(env["BISEARCH_INDEX_NPROBE"]) if env.get("BISEARCH_INDEX_NPROBE") else None,
                   ef_search=int(env.get("BISEARCH_INDEX_EF_SEARCH", cls.ef_search)))

    def kind_for(self, count: int) -> str:
        """The index kind for ``count`` vectors: exact when small, else the configured kind."""
        if count < self.min_approximate:
            return "flat"
        if self.kind == "auto":
            return "flat" if count < self.exact_limit else "ivfpq"
        return self.kind


def ivf_lists(count: int) -> int:
    """IVF list count: about 4·√n, with ≥ 39 training points per list."""
    return max(1, min(int(4 * math.sqrt(count)), count // 39))


def pq_subquantizers(dimension: int, bytes_per_dim: float) -> int:
    """The largest divisor of ``dimension`` not above ``dimension · bytes_per_dim`` (8-bit codes)."""
    target = max(1, int(dimension * bytes_per_dim))
    return next(m for m in range(target, 0, -1) if dimension % m == 0)


def new_faiss_index(kind: str, dimension: int, settings: IndexSettings, count: int = 0) -> faiss.Index:
    """An empty FAISS index of ``kind`` (IVF-PQ still needs training on a sample)."""
    if kind == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
    if kind == "hnsw":
        graph = faiss.IndexHNSWFlat(dimension, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = 40
        return faiss.IndexIDMap2(graph)
    if kind == "ivfpq":
        quantizer = faiss.IndexFlatIP(dimension)
        subquantizers = pq_subquantizers(dimension, settings.pq_bytes_per_dim)
        return faiss.IndexIVFPQ(quantizer, dimension, ivf_lists(count), subquantizers, 8, faiss.METRIC_INNER_PRODUCT)
    raise VectorIndexError(f"cannot build an index of kind {kind!r}")


def kind_of(index: faiss.Index) -> str:
    """The kind (``flat``, ``hnsw``, ``ivfpq``) of a loaded FAISS index."""
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexHNSW):
        return "hnsw"
    if isinstance(inner, faiss.IndexIVF):
        return "ivfpq"
    return "flat"


def _float32(vectors: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(vectors, dtype=np.float32)


class VectorIndex:
    """Inner-product (cosine) search over normalised vectors, keyed by chunk id."""

    def __init__(self, dimension: int, index: faiss.Index | None = None,
                 settings: IndexSettings | None = None):
        self.dimension = dimension
        self.settings = settings or IndexSettings()
        self.index = index if index is not None else new_faiss_index("flat", dimension, self.settings)
        self.kind = kind_of(self.index)

    @classmethod
    def build(cls, dimension: int, batches: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]], count: int,
              settings: IndexSettings, sample: Callable[[int], np.ndarray] | None = None) -> "VectorIndex":
        """Build the index that suits ``count`` vectors from (re-iterable) ``(ids, vectors)`` batches."""
        kind = settings.kind_for(count)
        index = new_faiss_index(kind, dimension, settings, count)
        if not index.is_trained:
            training = sample(TRAIN_SAMPLE) if sample else np.concatenate([v for _, v in batches()])[:TRAIN_SAMPLE]
            index.train(_float32(training))
        vectors = cls(dimension, index, settings)
        for ids, batch in batches():
            vectors.add(ids, batch)
        return vectors

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def can_remove(self) -> bool:
        """HNSW graphs cannot drop vectors in place (the owner rebuilds instead)."""
        return self.kind != "hnsw"

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(_float32(vectors), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: list[int]) -> None:
        if ids:
            if not self.can_remove:
                raise VectorIndexError("an HNSW index cannot remove vectors; rebuild it")
            self.index.remove_ids(np.array(ids, dtype=np.int64))

    def _search_parameters(self, allowed: np.ndarray | None) -> faiss.SearchParameters | None:
        selector = faiss.IDSelectorBatch(allowed.astype(np.int64)) if allowed is not None else None
        if self.kind == "ivfpq":
            lists = faiss.extract_index_ivf(self.index).nlist
            return faiss.SearchParametersIVF(sel=selector, nprobe=self.settings.nprobe or max(64, lists // 8))
        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(sel=selector, efSearch=max(self.settings.ef_search, 1))
        return faiss.SearchParameters(sel=selector) if selector is not None else None

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None,
               exact: ExactVectors | None = None) -> list[tuple[int, float]]:
        """Top ``k`` ``(chunk id, cosine)`` pairs, optionally restricted to ``allowed`` ids.

        For IVF-PQ, ``exact`` (ids -> float vectors) re-scores ``k · rerank`` candidates so
        the scores returned are true cosines; without it the scores are PQ estimates.
        """
        if k <= 0 or len(self) == 0 or (allowed is not None and len(allowed) == 0):
            return []
        query = _float32(query.reshape(1, -1))
        if exact and self.kind != "flat" and allowed is not None and len(allowed) <= EXACT_FILTER_LIMIT:
            return rescore(query[0], ((int(i), 0.0) for i in allowed), exact)[:k]  # small filter: exact
        fetch = k * self.settings.rerank if self.kind == "ivfpq" and exact else k
        params = self._search_parameters(allowed)  # FAISS keeps a reference to the selector
        scores, ids = self.index.search(query, min(fetch, len(self)), params=params)
        found = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]
        if fetch > k:
            found = rescore(query[0], found, exact)
        return found[:k]

    def save(self, folder: Path, generation: int) -> Path:
        """Write the snapshot for ``generation`` atomically and drop older snapshots."""
        target = snapshot_path(folder, generation)
        handle, temp = tempfile.mkstemp(dir=folder, prefix=".vectors-", suffix=".tmp")
        os.close(handle)
        try:
            faiss.write_index(self.index, temp)
            with open(temp, "rb") as written:
                os.fsync(written.fileno())
            os.replace(temp, target)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
        for old in folder.glob(f"{SNAPSHOT_PREFIX}*{SNAPSHOT_SUFFIX}"):
            if snapshot_generation(old) < generation:
                old.unlink(missing_ok=True)
        return target

    @classmethod
    def load(cls, path: Path, dimension: int, settings: IndexSettings | None = None) -> "VectorIndex":
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as error:
            raise VectorIndexError(f"cannot read vector index {path}: {error}") from error
        if index.d != dimension:
            raise VectorIndexError(f"{path} holds {index.d}-d vectors, expected {dimension}")
        return cls(dimension, index, settings)


def rescore(query: np.ndarray, candidates: Iterable[tuple[int, float]], exact: ExactVectors) -> list[tuple[int, float]]:
    """Candidates re-scored by exact cosine with their float vectors, best first."""
    ids = [chunk_id for chunk_id, _ in candidates]
    stored = exact(ids)
    scored = [(chunk_id, float(np.dot(stored[chunk_id], query))) for chunk_id in ids if chunk_id in stored]
    return sorted(scored, key=lambda pair: -pair[1])
