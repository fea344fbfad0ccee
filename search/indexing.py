"""The index: chunk, embed and store documents; keep SQLite and FAISS in step."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

import numpy as np

from search.chunking import Chunker
from search.embedding import Embedder, ModelInfo
from search.language import detect_language, keyword_tokens
from search.loading import Document
from search.store import NewChunk, Store, StoredDocument
from search.vectors import IndexSettings, VectorIndex, VectorIndexError, snapshot_path

log = logging.getLogger(__name__)
DB_NAME = "index.sqlite"
DEFAULT_CHUNK_TOKENS = 256
Status = Literal["added", "replaced", "unchanged"]


class ModelMismatchError(RuntimeError):
    """The index was built with a different embedding model."""


@dataclass(frozen=True)
class IngestOutcome:
    doc_id: str
    status: Status
    chunks: int


@dataclass
class _Prepared:
    document: Document
    status: Status
    chunks: list[NewChunk]


class SearchIndex:
    """Documents, chunks, keyword index and vectors in one folder.

    Writes are all-or-nothing: one SQLite transaction per batch, then a FAISS snapshot
    named after the new generation. A missing or stale snapshot is rebuilt from the
    vectors kept in SQLite, so a crash between the two steps loses nothing.
    """

    def __init__(self, folder: Path, embedder: Embedder | None = None, chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
                 settings: IndexSettings | None = None):
        self.folder = Path(folder)
        self.settings = settings or IndexSettings.from_env()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.folder / DB_NAME)
        self.lock: threading.RLock = self.store.lock
        self.embedder = embedder
        self.chunker = Chunker(embedder.tokenizer, chunk_tokens) if embedder else None
        self._vectors: VectorIndex | None = None
        self._generation = -1
        if embedder:
            self._check_model(embedder.info)

    # -- model bookkeeping -------------------------------------------------
    @property
    def model_info(self) -> ModelInfo | None:
        recorded = self.store.get_meta("model")
        return ModelInfo(**recorded) if recorded else None

    def _check_model(self, info: ModelInfo) -> None:
        recorded = self.model_info
        if recorded is None:
            with self.store.transaction():
                self.store.set_meta("model", info.as_dict())
        elif (recorded.name, recorded.dimension) != (info.name, info.dimension):
            raise ModelMismatchError(
                f"index {self.folder} was built with model {recorded.name!r} ({recorded.dimension}-d), "
                f"not {info.name!r} ({info.dimension}-d): query it with that model "
                f"(--model / BISEARCH_MODEL) or rebuild the index with `bisearch ingest`"
            )

    # -- vectors -------------------------------------------------------------
    @property
    def vectors(self) -> VectorIndex:
        """The FAISS index for the committed generation (reloaded after outside writes)."""
        with self.lock:
            generation = self.store.generation()
            if self._vectors is None or generation != self._generation:
                self._vectors = self._load_vectors(generation)
                self._generation = generation
            return self._vectors

    def _dimension(self) -> int:
        info = self.model_info
        return info.dimension if info else (self.embedder.info.dimension if self.embedder else 0)

    def _load_vectors(self, generation: int) -> VectorIndex:
        path = snapshot_path(self.folder, generation)
        if path.exists():
            try:
                vectors = VectorIndex.load(path, self._dimension(), self.settings)
                count = self.store.chunk_count()
                if len(vectors) == count and vectors.kind == self.settings.kind_for(count):
                    return vectors
                log.warning("%s does not match the database or the index settings; rebuilding it", path)
            except VectorIndexError as error:
                log.warning("%s; rebuilding it from %s", error, self.store.path)
        return self._rebuild_vectors(generation)

    def _rebuild_vectors(self, generation: int) -> VectorIndex:
        vectors = VectorIndex.build(self._dimension(), self.store.iter_vectors, self.store.chunk_count(),
                                    self.settings, sample=self.store.sample_vectors)
        vectors.save(self.folder, generation)
        return vectors

    def dense_search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top ``k`` ``(chunk id, cosine)``; approximate candidates are re-scored exactly."""
        return self.vectors.search(query, k, allowed, exact=self.store.vectors_of)

    # -- writes ----------------------------------------------------------------
    def _prepare(self, documents: list[Document], progress: bool) -> list[_Prepared]:
        """Chunk and embed the documents that are new or changed."""
        if self.embedder is None or self.chunker is None:
            raise RuntimeError("an embedder is needed to add documents")
        prepared, pending = [], []
        for document in documents:
            known = self.store.document_hash(document.id)
            if known == document.sha256:
                prepared.append(_Prepared(document, "unchanged", []))
                continue
            chunks = self.chunker.chunk(document.text)
            prepared.append(_Prepared(document, "replaced" if known else "added", []))
            pending.extend((prepared[-1], chunk) for chunk in chunks)
        texts = [chunk.text for _, chunk in pending]
        vectors = self.embedder.encode_documents(texts, progress=progress)
        for (item, chunk), vector in zip(pending, vectors):
            item.chunks.append(NewChunk(chunk, keyword_tokens(chunk.text), vector))
        return prepared

    def add_documents(self, documents: Iterable[Document], progress: bool = False) -> list[IngestOutcome]:
        """Add new documents, replace changed ones, skip unchanged ones; one atomic write.

        When one batch holds the same id twice, the last one wins.
        """
        prepared = self._prepare(list({document.id: document for document in documents}.values()), progress)
        changed = [item for item in prepared if item.status != "unchanged"]
        if changed:
            with self.lock:
                vectors = self.vectors
                removed: list[int] = []
                added: list[tuple[list[int], list[NewChunk]]] = []
                with self.store.transaction():
                    for item in changed:
                        removed += self.store.delete_document(item.document.id)
                        stored = StoredDocument(item.document.id, item.document.title, item.document.source,
                                                item.document.text, item.document.sha256,
                                                detect_language(item.document.text))
                        added.append((self.store.insert_document(stored, item.chunks), item.chunks))
                self._apply(vectors, removed, added)
        return [IngestOutcome(item.document.id, item.status, len(item.chunks)) for item in prepared]

    def delete_document(self, doc_id: str) -> bool:
        """Delete a document; False when it does not exist."""
        with self.lock:
            if self.store.document_hash(doc_id) is None:
                return False
            vectors = self.vectors
            with self.store.transaction():
                removed = self.store.delete_document(doc_id)
            self._apply(vectors, removed, [])
            return True

    def _apply(self, vectors: VectorIndex, removed: list[int],
               added: list[tuple[list[int], list[NewChunk]]]) -> None:
        """Mirror a committed transaction in FAISS and save the new snapshot.

        When the index outgrows its kind (or cannot delete in place) it is rebuilt instead.
        """
        self._generation = self.store.generation()
        try:
            count = self.store.chunk_count()
            if vectors.kind != self.settings.kind_for(count) or (removed and not vectors.can_remove):
                self._vectors = self._rebuild_vectors(self._generation)
                return
            vectors.remove(removed)
            for ids, chunks in added:
                if ids:
                    vectors.add(np.array(ids, dtype=np.int64), np.stack([chunk.vector for chunk in chunks]))
            vectors.save(self.folder, self._generation)
        except BaseException:
            self._vectors = None  # the committed SQLite state is rebuilt into FAISS on the next read
            raise

    def stats(self) -> dict[str, object]:
        info = self.model_info
        return {"index": str(self.folder), **self.store.counts(),
                "model": info.as_dict() if info else None, "generation": self.store.generation()}

    def close(self) -> None:
        self.store.close()
