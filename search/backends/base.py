"""The storage contract: what every backend offers (:class:`Backend`), what it is given to store
(:class:`PreparedDocument`) and what it reads back by passage id (:class:`Row`, :class:`Fields`).

A backend stores and searches; it never chunks or embeds. It receives prepared documents
(passages with offsets, language, keyword tokens and vectors, see :mod:`search.ingest.pipeline`)
and answers dense and keyword searches with ``(passage id, score)`` pairs, best first.
Locking is the backend's own business. What both backends encode alike, and the rules every
write obeys, live in :mod:`search.backends.codec`; :func:`search.backends.open_backend` picks
a backend from the settings. txtai's ``ann/base.py`` is the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Flag, auto
from typing import Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

from search.errors import Conflict, InvalidInput, Unavailable
from search.types import (Document, DocumentSummary, Filter, KeywordQuery, ModelInfo, Origin, Passage, Scored,
                          SentenceVectors)


class BackendError(Unavailable):
    """The storage cannot be reached, read or written (names the index folder or URI)."""


class ModelMismatchError(Conflict, BackendError):
    """The index was built with a different embedding model or vector size."""


class DocumentRefused(InvalidInput):
    """A write the storage contract refuses: a document id it cannot hold, vectors of the wrong
    shape, a value too long for the storage, or no model recorded yet."""


@dataclass(frozen=True)
class PreparedDocument:
    """A document ready to store: its passages with keyword tokens and unit vectors (row i ↔ passage i)."""

    document: Document
    passages: tuple[Passage, ...]
    tokens: tuple[tuple[str, ...], ...]
    vectors: np.ndarray
    original: bytes | None = None  # the file it was read from (PDF, DOCX), kept and served
    sentences: tuple[SentenceVectors | None, ...] = ()  # per passage, for evidence spans (empty: none)

    def sentences_of(self, row: int) -> SentenceVectors | None:
        return self.sentences[row] if row < len(self.sentences) else None


class Fields(Flag):
    """What :meth:`Backend.rows` reads besides each passage's origin (its language and document)."""

    ORIGIN = 0  # nothing more: what ranking needs
    PASSAGE = auto()  # the passage: text, offsets, page, section, its document's title and source
    VECTOR = auto()  # its unit vector
    SENTENCES = auto()  # its sentence vectors (None when it was stored without them)


@dataclass(frozen=True)
class Row:
    """One stored passage as :meth:`Backend.rows` reads it: its origin, and each field asked for
    (the others None)."""

    origin: Origin
    passage: Passage | None = None
    vector: np.ndarray | None = None
    sentences: SentenceVectors | None = None


@runtime_checkable
class Backend(Protocol):
    """Storage and search of documents and their passages."""

    def model(self) -> ModelInfo | None:
        """The model the index was built with (None for a new, empty index)."""

    def record_model(self, info: ModelInfo) -> None:
        """Record the model of a new index; raise :class:`ModelMismatchError` if another is recorded."""

    def write(self, documents: Sequence[PreparedDocument]) -> None:
        """Store documents, replacing any with the same id; all or nothing, visible to the next query.
        Refused (:class:`DocumentRefused`, nothing written) as :func:`codec.check_write` says."""

    def delete(self, doc_id: str) -> bool:
        """Remove a document and its passages; False when it does not exist."""

    def dense_search(self, vector: np.ndarray, k: int, where: Filter) -> Scored:
        """Top ``k`` passages by cosine similarity (exact scores)."""

    def keyword_search(self, query: KeywordQuery, k: int, where: Filter) -> Scored:
        """Top ``k`` passages by BM25 (positive, higher is better). With ``query.phrases``, only
        passages that hold each of them as :func:`codec.holds_phrases` says (English: the words side
        by side; Chinese of three characters or more: as a substring), so a phrase's passages are
        not crowded out of the pool by passages with its words apart."""

    def rows(self, ids: Iterable[int], fields: Fields = Fields.ORIGIN) -> dict[int, Row]:
        """Stored passages by id: each one's origin and the ``fields`` asked for (unknown ids left out)."""

    def document(self, doc_id: str) -> Document | None:
        """One document with its exact text, or None."""

    def file(self, doc_id: str) -> bytes | None:
        """The original file of a document, when one was kept."""

    def document_hash(self, doc_id: str) -> str | None:
        """SHA-256 of a stored document's text (to skip unchanged files), or None."""

    def documents(self, limit: int = 50, offset: int = 0) -> list[DocumentSummary]:
        """Documents in id order, paged."""

    def count(self) -> int:
        """How many documents are stored (what paging needs; cheaper than :meth:`stats`)."""

    def stats(self) -> dict[str, object]:
        """Counts (documents, passages per language), model and location."""

    def close(self) -> None:
        """Release files and connections."""


# -- one field of rows(), by id: shorthands for callers ---------------------------------------------
def passages_of(backend: Backend, ids: Iterable[int]) -> dict[int, Passage]:
    return {passage_id: row.passage for passage_id, row in backend.rows(ids, Fields.PASSAGE).items()}


def origins_of(backend: Backend, ids: Iterable[int]) -> dict[int, Origin]:
    return {passage_id: row.origin for passage_id, row in backend.rows(ids).items()}


def vectors_of(backend: Backend, ids: Iterable[int]) -> dict[int, np.ndarray]:
    return {passage_id: row.vector for passage_id, row in backend.rows(ids, Fields.VECTOR).items()}


def sentences_of(backend: Backend, ids: Iterable[int]) -> dict[int, SentenceVectors]:
    """Stored sentence vectors by passage id (passages stored without them left out)."""
    return {passage_id: row.sentences for passage_id, row in backend.rows(ids, Fields.SENTENCES).items()
            if row.sentences is not None}
