"""The embedded backend: SQLite (the truth, FTS5 BM25) + FAISS as an immutable base and a small delta.

Writes cost O(batch): one SQLite transaction, nothing written to FAISS. Each process keeps
an in-memory view: the base snapshot (``vectors-<generation>.faiss``, self-described), a flat
*delta* of passages newer than the base, and the *tombstones* of base passages deleted
since. Before a search the view catches up with whatever any process committed (rows above
its highest id, tombstones above its generation), so two writers never lose each other's
vectors. A snapshot is trusted only for the exact state it describes (generation, highest
id, count and sum of ids). Merging the delta into a new base runs in a background thread
(or at the end of an ingest run) and swaps a pointer when done; the tombstones the new base
already leaves out are then pruned, and a view older than them is rebuilt from the newest
snapshot instead of caught up.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from search.backends.base import BackendError, Fields, PreparedDocument, Row
from search.backends.codec import check_model, check_write
from search.backends.local.store import Store, damaged
from search.backends.local.vectors import (AllowedIds, IndexSettings, SnapshotInfo, VectorIndex, VectorIndexError,
                                           latest_snapshot, new_faiss_index)
from search.types import Document, DocumentSummary, Filter, KeywordQuery, ModelInfo, Scored

log = logging.getLogger(__name__)
DB_NAME = "index.sqlite"
MERGE_MIN = 2_000  # the delta is merged once it holds this many passages or tombstones ...
MERGE_SHARE = 0.05  # ... and this share of the base
ALLOWED_CACHE_SIZE = 64  # filters whose passage ids are kept (per generation; least recently used dropped)


@dataclass
class _View:
    """What one process searches: base snapshot + delta − tombstones, as of ``generation``."""

    base: VectorIndex
    info: SnapshotInfo
    delta: VectorIndex
    tombstones: set[int] = field(default_factory=set)
    generation: int = -1
    max_id: int = 0

    @property
    def pending(self) -> int:
        return len(self.delta) + len(self.tombstones)


class LocalBackend:
    """Documents and passages in one folder: ``index.sqlite`` and FAISS snapshots."""

    def __init__(self, folder: Path, settings: IndexSettings | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.settings = settings or IndexSettings()
        self.store = Store(self.folder / DB_NAME)
        self._view: _View | None = None
        self._lock = threading.RLock()  # guards the view; held for a catch-up or a pointer swap only
        self._merge_thread: threading.Thread | None = None
        self._stats_cache: tuple[int, dict[str, object]] | None = None
        self._allowed_cache: OrderedDict[tuple[int, Filter], AllowedIds] = OrderedDict()

    @property
    def location(self) -> str:
        return str(self.folder)

    # -- model ----------------------------------------------------------------
    def model(self) -> ModelInfo | None:
        recorded = self.store.get_meta("model")
        return ModelInfo(**recorded) if recorded else None

    def record_model(self, info: ModelInfo) -> None:
        recorded = self.model()
        check_model(recorded, info, f"index {self.folder}")
        if recorded is None:
            with self.store.transaction():
                self.store.set_meta("model", info.as_dict())
            with self._lock:
                self._view = None  # a view opened before the model was known has no dimension

    def _dimension(self) -> int:
        info = self.model()
        return info.dimension if info else 0

    # -- writes ------------------------------------------------------------------
    def write(self, documents: Sequence[PreparedDocument]) -> None:
        """Replace or add documents in one transaction (all or nothing)."""
        check_write(documents, self.model(), f"index {self.folder}")
        with self._writing():
            with self.store.transaction() as generation:
                for prepared in documents:
                    self.store.delete_document(prepared.document.id, generation)
                    self.store.insert_document(prepared)
        self._after_write()

    def delete(self, doc_id: str) -> bool:
        with self._writing():
            with self.store.transaction() as generation:
                if self.store.document_hash(doc_id) is None:
                    return False
                self.store.delete_document(doc_id, generation)
        self._after_write()
        return True

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A failed write (disk full, database locked too long) is reported naming the index; nothing changed."""
        try:
            yield
        except sqlite3.Error as error:
            if isinstance(error, sqlite3.DatabaseError) and type(error) is sqlite3.DatabaseError:
                raise damaged(self.store.path, error) from error
            raise BackendError(f"index {self.folder}: the write failed and was rolled back ({error})") from error

    def _after_write(self) -> None:
        view = self._current_view()
        if view.pending >= max(MERGE_MIN, MERGE_SHARE * len(view.base)):
            self.merge(background=True)

    # -- the vector view -----------------------------------------------------------
    def _current_view(self) -> _View:
        """The view, caught up with every committed write (of this or another process)."""
        with self._lock:
            if self._view is None:
                self._view = self._open_view()
            view = self._view
            generation = self.store.generation()
            if generation != view.generation and view.generation < self.store.tombstones_pruned_through():
                self._view = view = self._open_view()  # the tombstones it would need are gone
            if generation != view.generation:
                ids, vectors = self.store.vectors_after(view.max_id)
                if len(ids):
                    view.delta.add(ids, vectors)
                    view.max_id = int(ids[-1])
                view.tombstones.update(self.store.tombstones_since(view.generation, view.max_id))
                view.generation = generation
            return view

    def _open_view(self) -> _View:
        """The newest valid snapshot as base (a merge builds one when none is valid)."""
        path = latest_snapshot(self.folder)
        if path is not None:
            try:
                base, info = VectorIndex.load(path, self._dimension(), self.settings)
                if base.kind == self.settings.kind_for(info.count) and self._describes_committed_state(info):
                    return self._empty_view(base, info)
                log.warning("%s does not match the database or the index settings; rebuilding it", path)
            except VectorIndexError as error:
                log.warning("%s; rebuilding it from %s", error, self.store.path)
        base, info = self._build_base()
        return self._empty_view(base, info)

    def _empty_view(self, base: VectorIndex, info: SnapshotInfo) -> _View:
        delta = VectorIndex(self._dimension(), new_faiss_index("flat", self._dimension(), self.settings))
        return _View(base, info, delta, set(), info.generation, info.max_id)

    def _describes_committed_state(self, info: SnapshotInfo) -> bool:
        """True when a snapshot holds exactly the passages live at its generation."""
        count, id_sum = self.store.id_count_and_sum(info.max_id)
        deleted = self.store.tombstones_since(info.generation, info.max_id)
        return (count + len(deleted), id_sum + sum(deleted)) == (info.count, info.id_sum)

    def _build_base(self) -> tuple[VectorIndex, SnapshotInfo]:
        """A new base from one committed state, saved atomically."""
        with self.store.committed_state() as state:
            count, id_sum = 0, 0

            def counted():
                nonlocal count, id_sum
                for ids, vectors in state.batches():
                    count, id_sum = count + len(ids), id_sum + int(ids.sum())
                    yield ids, vectors

            base = VectorIndex.build(self._dimension(), counted, state.count, self.settings,
                                     sample=self.store.sample_vectors)
            info = SnapshotInfo(state.generation, state.max_id, count, id_sum)
        base.save(self.folder, info)
        return base, info

    def merge(self, background: bool = False) -> None:
        """Fold the delta and tombstones into a new base snapshot; queries wait only for the swap."""
        if background:
            with self._lock:
                if self._merge_thread and self._merge_thread.is_alive():
                    return
                self._merge_thread = threading.Thread(target=self.merge, name="bisearch-merge", daemon=True)
                self._merge_thread.start()
            return
        base, info = self._build_base()
        with self._lock:
            self._view = self._empty_view(base, info)
        self._prune_tombstones(info.generation)

    def _prune_tombstones(self, snapshot_generation: int) -> None:
        """Drop the tombstones that the newest snapshot (of ``snapshot_generation``) already leaves out."""
        if latest_snapshot(self.folder) is None:
            return
        try:
            with self.store.transaction():
                dropped = self.store.prune_tombstones(snapshot_generation)
        except sqlite3.Error as error:  # the next merge prunes them; nothing is lost meanwhile
            log.warning("index %s: tombstones not pruned (%s)", self.folder, error)
            return
        if dropped:
            log.info("index %s: %d tombstones pruned through generation %d", self.folder, dropped, snapshot_generation)

    # -- searches ------------------------------------------------------------------
    def dense_search(self, vector: np.ndarray, k: int, where: Filter) -> Scored:
        view = self._current_view()
        allowed = None if where.is_empty else self._allowed_ids(where, view.generation)
        fetch = k + len(view.tombstones)
        found = view.base.search(vector, fetch, allowed, exact=self.store.vectors)
        found += view.delta.search(vector, fetch, allowed)
        live = [(passage_id, score) for passage_id, score in found if passage_id not in view.tombstones]
        return sorted(live, key=lambda pair: -pair[1])[:k]

    def _allowed_ids(self, where: Filter, generation: int) -> AllowedIds:
        """The passage ids ``where`` allows, read from SQLite (and made a FAISS selector) once per
        generation: they change only with a write, and every write moves the generation, so a
        filtered query no longer costs O(corpus) before the search. A read racing a newer write
        may hold ids the view has not caught up with yet; they are simply not found."""
        key = (generation, where)
        with self._lock:
            ids = self._allowed_cache.get(key)
            if ids is not None:
                self._allowed_cache.move_to_end(key)
                return ids
        ids = AllowedIds(self.store.passage_ids(where))
        with self._lock:
            self._allowed_cache[key] = ids
            while len(self._allowed_cache) > ALLOWED_CACHE_SIZE:
                self._allowed_cache.popitem(last=False)
        return ids

    def keyword_search(self, query: KeywordQuery, k: int, where: Filter) -> Scored:
        return self.store.keyword_search(query.tokens, k, where, query.phrases)

    # -- reads -----------------------------------------------------------------------
    def rows(self, ids: Iterable[int], fields: Fields = Fields.ORIGIN) -> dict[int, Row]:
        return self.store.rows(ids, fields)

    def document(self, doc_id: str) -> Document | None:
        return self.store.document(doc_id)

    def file(self, doc_id: str) -> bytes | None:
        """The original file a document was read from (PDF, DOCX), when it was kept."""
        return self.store.file(doc_id)

    def document_hash(self, doc_id: str) -> str | None:
        return self.store.document_hash(doc_id)

    def documents(self, limit: int = 50, offset: int = 0) -> list[DocumentSummary]:
        return self.store.documents(limit, offset)

    def count(self) -> int:
        return self.store.count()

    def stats(self) -> dict[str, object]:
        """Counts, model and generation; recounted only after a write (``/health`` stays cheap under load)."""
        generation = self.store.generation()
        if self._stats_cache is None or self._stats_cache[0] != generation:
            info = self.model()
            self._stats_cache = (generation, {"backend": "local", "index": str(self.folder), **self.store.counts(),
                                              "model": info.as_dict() if info else None, "generation": generation})
        return dict(self._stats_cache[1])

    def close(self) -> None:
        if self._merge_thread:
            self._merge_thread.join()
        self.store.close()
