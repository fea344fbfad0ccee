"""FAISS vector index keyed by int64 chunk ids, saved atomically as a generation snapshot."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import faiss
import numpy as np

SNAPSHOT_PREFIX = "vectors-"
SNAPSHOT_SUFFIX = ".faiss"


class VectorIndexError(RuntimeError):
    """A FAISS file could not be read."""


def snapshot_path(folder: Path, generation: int) -> Path:
    return folder / f"{SNAPSHOT_PREFIX}{generation}{SNAPSHOT_SUFFIX}"


class VectorIndex:
    """Exact inner-product search over normalised vectors (cosine similarity)."""

    def __init__(self, dimension: int, index: faiss.Index | None = None):
        self.dimension = dimension
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))

    def remove(self, ids: list[int]) -> None:
        if ids:
            self.index.remove_ids(np.array(ids, dtype=np.int64))

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top ``k`` ``(chunk id, cosine)`` pairs, optionally restricted to ``allowed`` ids."""
        if k <= 0 or len(self) == 0 or (allowed is not None and len(allowed) == 0):
            return []
        params = None
        if allowed is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed.astype(np.int64)))
        scores, ids = self.index.search(query.reshape(1, -1).astype(np.float32), min(k, len(self)), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]

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
            if old != target:
                old.unlink(missing_ok=True)
        return target

    @classmethod
    def load(cls, path: Path, dimension: int) -> "VectorIndex":
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as error:
            raise VectorIndexError(f"cannot read vector index {path}: {error}") from error
        if index.d != dimension:
            raise VectorIndexError(f"{path} holds {index.d}-d vectors, expected {dimension}")
        return cls(dimension, index)
