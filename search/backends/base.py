"""The storage seam: what every backend offers, and the factory that picks one from settings.

A backend stores and searches; it never chunks or embeds. It receives prepared documents
(passages with offsets, language, keyword tokens and vectors, see :mod:`search.ingest.pipeline`)
and answers dense and keyword searches with ``(passage id, score)`` pairs, best first.
Locking is the backend's own business. txtai's ``ann/base.py`` is the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

from search.types import (SentenceVectors, Document, DocumentSummary, Filter, KeywordQuery, ModelInfo, OcrLine, Origin,
                          Passage, Scored)


class BackendError(RuntimeError):
    """The storage cannot be reached or read (names the index folder or URI)."""


class ModelMismatchError(BackendError):
    """The index was built with a different embedding model or vector size."""


def ocr_lines_as_rows(lines: Sequence[OcrLine]) -> list[list[float]]:
    """A document's OCR lines as compact JSON rows ``[start, end, page, x0, y0, x1, y1]``."""
    return [[line.start, line.end, line.page, *line.box] for line in lines]


def ocr_lines_from_rows(rows: Iterable[Sequence[float]]) -> tuple[OcrLine, ...]:
    """The inverse of :func:`ocr_lines_as_rows`."""
    return tuple(OcrLine(int(row[0]), int(row[1]), int(row[2]), tuple(float(value) for value in row[3:7]))
                 for row in rows)


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


@runtime_checkable
class Backend(Protocol):
    """Storage and search of documents and their passages."""

    def model(self) -> ModelInfo | None:
        """The model the index was built with (None for a new, empty index)."""

    def record_model(self, info: ModelInfo) -> None:
        """Record the model of a new index; raise :class:`ModelMismatchError` if another is recorded."""

    def write(self, documents: Sequence[PreparedDocument]) -> None:
        """Store documents, replacing any with the same id; all or nothing, visible to the next query."""

    def delete(self, doc_id: str) -> bool:
        """Remove a document and its passages; False when it does not exist."""

    def dense_search(self, vector: np.ndarray, k: int, where: Filter) -> Scored:
        """Top ``k`` passages by cosine similarity (exact scores)."""

    def keyword_search(self, query: KeywordQuery, k: int, where: Filter) -> Scored:
        """Top ``k`` passages by BM25 (positive, higher is better). The local backend returns only
        passages holding ``query.phrases`` (English: the words side by side; Chinese of three
        characters or more: as a substring), so a phrase's passages are not crowded out of the pool
        by passages with its words apart; Milvus ranks on the text alone."""

    def passages(self, ids: Iterable[int]) -> dict[int, Passage]:
        """Passages by id, with their document's title and source (unknown ids left out)."""

    def origins(self, ids: Iterable[int]) -> dict[int, Origin]:
        """Each passage's language and document by id, without its text (ranking needs no more;
        unknown ids left out)."""

    def vectors(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        """Stored unit vectors by passage id (unknown ids left out)."""

    def sentences(self, ids: Iterable[int]) -> dict[int, SentenceVectors]:
        """Stored sentence vectors by passage id (passages stored without them left out)."""

    def document(self, doc_id: str) -> Document | None:
        """One document with its exact text, or None."""

    def file(self, doc_id: str) -> bytes | None:
        """The original file of a document, when one was kept."""

    def document_hash(self, doc_id: str) -> str | None:
        """SHA-256 of a stored document's text (to skip unchanged files), or None."""

    def documents(self, limit: int = 50, offset: int = 0) -> list[DocumentSummary]:
        """Documents in id order, paged."""

    def stats(self) -> dict[str, object]:
        """Counts (documents, passages per language), model and location."""

    def close(self) -> None:
        """Release files and connections."""
