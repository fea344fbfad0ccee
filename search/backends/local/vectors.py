"""FAISS vector index keyed by int64 passage ids, chosen by size, saved atomically per generation.

Below ``exact_limit`` vectors the index is exact (flat inner product on normalised
vectors = cosine). Above it, ``auto`` switches to IVF-PQ: a few dozen bytes per vector in
RAM, candidates re-scored exactly with the float vectors kept in SQLite, so results carry
true cosines while memory stays compact. HNSW is available on request (fast, but it keeps
every float vector in RAM). A snapshot is never changed in place: the local backend keeps
new vectors in a small delta and deleted ids as tombstones until the next merge.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import faiss
import numpy as np

from search.backends.base import BackendError

if TYPE_CHECKING:
    from search.settings import Settings

SNAPSHOT_PREFIX = "vectors-"
SNAPSHOT_SUFFIX = ".faiss"
FILE_MODE = 0o644  # snapshots are readable like the SQLite database beside them
INDEX_KINDS = ("auto", "flat", "hnsw", "ivfpq")
TRAIN_SAMPLE = 160_000  # >= 39 points per list at 1M vectors (4,000 lists)
EXACT_FILTER_LIMIT = 10_000  # approximate kinds score a filter of at most this many ids exactly

ExactVectors = Callable[[list[int]], dict[int, np.ndarray]]


class VectorIndexError(BackendError):
    """A FAISS file could not be read, or the index settings are invalid."""


class AllowedIds:
    """The passage ids a filtered search may return, with FAISS's selector over them built once:
    the local backend keeps one per filter and generation and searches base and delta with it."""

    def __init__(self, ids: np.ndarray):
        self.ids = np.ascontiguousarray(ids, dtype=np.int64)
        self.ids.flags.writeable = False
        self.selector = faiss.IDSelectorBatch(self.ids)  # read-only once built: shared by concurrent searches

    def __len__(self) -> int:
        return len(self.ids)


def snapshot_path(folder: Path, generation: int) -> Path:
    return folder / f"{SNAPSHOT_PREFIX}{generation}{SNAPSHOT_SUFFIX}"


def snapshot_generation(path: Path) -> int:
    """The generation a snapshot file was written for (-1 for a stray name)."""
    number = path.name[len(SNAPSHOT_PREFIX):].split(".")[0]
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
    def from_settings(cls, settings: "Settings") -> "IndexSettings":
        return cls(kind=settings.index_kind, exact_limit=settings.index_exact_limit, nprobe=settings.index_nprobe,
                   ef_search=settings.index_ef_search)

    def kind_for(self, count: int) -> str:
        """The index kind for ``count`` vectors: exact when small, else the configured kind."""
        if count < self.min_approximate:
            return "flat"
        if self.kind == "auto":
            return "flat" if count < self.exact_limit else "ivfpq"
        return self.kind


@contextmanager
def one_thread() -> Iterator[None]:
    """FAISS on the calling thread alone while the block runs (OpenMP's thread count is a setting of
    each thread: a merge on another thread keeps every core). For one query, OpenMP's team costs
    more than it shares out: measured on 2 cores, a flat search over 100,000 vectors took 16.5 ms on
    one thread and 21.6 ms (43 ms of CPU, the team spinning between searches) on two, 16.1 and
    32.5 ms while another process took half a core (docs/bench/faiss-threads.jsonl); concurrent
    searches run on threads of their own anyway."""
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


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
    """Inner-product (cosine) search over normalised vectors, keyed by passage id."""

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

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(_float32(vectors), np.asarray(ids, dtype=np.int64))

    def _search_parameters(self, allowed: AllowedIds | None) -> faiss.SearchParameters | None:
        selector = allowed.selector if allowed is not None else None
        if self.kind == "ivfpq":
            lists = faiss.extract_index_ivf(self.index).nlist
            return faiss.SearchParametersIVF(sel=selector, nprobe=self.settings.nprobe or max(64, lists // 8))
        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(sel=selector, efSearch=max(self.settings.ef_search, 1))
        return faiss.SearchParameters(sel=selector) if selector is not None else None

    def search(self, query: np.ndarray, k: int, allowed: AllowedIds | None = None,
               exact: ExactVectors | None = None) -> list[tuple[int, float]]:
        """Top ``k`` ``(passage id, cosine)`` pairs, optionally restricted to ``allowed`` ids.

        For IVF-PQ, ``exact`` (ids -> float vectors) re-scores ``k · rerank`` candidates so
        the scores returned are true cosines; without it the scores are PQ estimates.
        """
        if k <= 0 or len(self) == 0 or (allowed is not None and len(allowed) == 0):
            return []
        query = _float32(query.reshape(1, -1))
        if exact and self.kind != "flat" and allowed is not None and len(allowed) <= EXACT_FILTER_LIMIT:
            return rescore(query[0], ((int(i), 0.0) for i in allowed.ids), exact)[:k]  # small filter: exact
        fetch = k * self.settings.rerank if self.kind == "ivfpq" and exact else k
        params = self._search_parameters(allowed)  # FAISS keeps a reference to the selector
        with one_thread():
            scores, ids = self.index.search(query, min(fetch, len(self)), params=params)
        found = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]
        if fetch > k:
            found = rescore(query[0], found, exact)
        return found[:k]

    def save(self, folder: Path, info: "SnapshotInfo") -> Path:
        """Write the snapshot with its description in one file, atomically; drop older snapshots."""
        target = snapshot_path(folder, info.generation)
        header = json.dumps(asdict(info)).encode()
        body = faiss.serialize_index(self.index)
        write_atomically(target, [len(header).to_bytes(4, "little"), header, memoryview(body)])
        for old in folder.glob(f"{SNAPSHOT_PREFIX}*"):
            if snapshot_generation(old) < info.generation:
                old.unlink(missing_ok=True)
        return target

    @classmethod
    def load(cls, path: Path, dimension: int,
             settings: IndexSettings | None = None) -> tuple["VectorIndex", "SnapshotInfo"]:
        """A snapshot and the description of the committed state it was built from."""
        try:
            data = np.fromfile(path, dtype=np.uint8)
            size = int.from_bytes(data[:4].tobytes(), "little")
            info = SnapshotInfo(**json.loads(data[4:4 + size].tobytes()))
            index = faiss.deserialize_index(data[4 + size:])
        except (RuntimeError, OSError, ValueError, TypeError) as error:
            raise VectorIndexError(f"cannot read vector index {path}: {error}") from error
        if index.d != dimension or index.ntotal != info.count:
            raise VectorIndexError(f"{path} holds {index.ntotal} {index.d}-d vectors, expected "
                                   f"{info.count} of {dimension}")
        return cls(dimension, index, settings), info


@dataclass(frozen=True)
class SnapshotInfo:
    """The exact committed state a snapshot holds: its generation, highest id, and id count and sum."""

    generation: int
    max_id: int
    count: int
    id_sum: int


def latest_snapshot(folder: Path) -> Path | None:
    """The newest snapshot file in ``folder``, if any."""
    snapshots = sorted(folder.glob(f"{SNAPSHOT_PREFIX}*{SNAPSHOT_SUFFIX}"), key=snapshot_generation)
    return snapshots[-1] if snapshots and snapshot_generation(snapshots[-1]) >= 0 else None


def write_atomically(target: Path, parts: list) -> None:
    """Write ``parts`` to a temp file in the same folder, fsync, and rename it over ``target``."""
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=".vectors-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            for part in parts:
                file.write(part)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, FILE_MODE)
        os.replace(temp, target)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def rescore(query: np.ndarray, candidates: Iterable[tuple[int, float]], exact: ExactVectors) -> list[tuple[int, float]]:
    """Candidates re-scored by exact cosine with their float vectors, best first."""
    ids = [passage_id for passage_id, _ in candidates]
    stored = exact(ids)
    scored = [(passage_id, float(np.dot(stored[passage_id], query))) for passage_id in ids if passage_id in stored]
    return sorted(scored, key=lambda pair: -pair[1])
