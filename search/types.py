"""The project's vocabulary: languages, search modes, documents, passages, filters, models.

One name per concept, used by loading, ingest, the backends, retrieval, the API and the CLI.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import asdict, dataclass, field, fields
from enum import Enum

import numpy as np


class Lang(str, Enum):
    """A text's dominant language (by script): the value users filter on and see."""

    EN = "en"
    ZH = "zh"


class Mode(str, Enum):
    """How candidates are found: meaning (dense), words (sparse, BM25) or both (hybrid)."""

    HYBRID = "hybrid"
    DENSE = "dense"
    SPARSE = "sparse"


@dataclass(frozen=True)
class ModelInfo:
    """What an index records about the model that built it."""

    name: str
    dimension: int
    query_prompt: str
    document_prompt: str
    #: Passages were embedded with their document's title and section in the prompt's title slot
    #: (``title: {title} › {section} | text: …``), not ``title: none``. An index keeps one way for
    #: every passage; indexes from before it existed read False.
    passage_titles: bool = False

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class OcrLine:
    """A line of text read by OCR: ``text[start:end]`` of its document, on 1-based ``page``, inside
    ``box`` = ``(x0, y0, x1, y1)`` as fractions of the page's width and height (origin top left)."""

    start: int
    end: int
    page: int
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Document:
    """A document as stored: ``text`` is what every citation's offsets point into.

    ``pages`` holds the start offset of each physical page (page 1 first) for paged formats
    (PDF), ``page_labels`` the printed labels when the file defines them, and ``sections``
    the ``(start offset, heading)`` of each heading in order (DOCX, HTML, Markdown).
    ``ocr_pages`` are the 1-based pages whose text was read by OCR (scans, images), and
    ``ocr_lines`` where its lines stand on those pages.
    """

    id: str
    title: str
    source: str
    text: str
    lang: Lang = Lang.EN
    pages: tuple[int, ...] = ()
    page_labels: tuple[str, ...] = ()
    sections: tuple[tuple[int, str], ...] = ()
    media_type: str = "text/plain"
    ocr_pages: tuple[int, ...] = ()
    ocr_lines: tuple[OcrLine, ...] = ()
    #: The title is only the text's first line (the file names none): shown, never given to the model
    #: as the passages' title. Set by the loaders for the ingest; not stored.
    title_guessed: bool = field(default=False, compare=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Passage:
    """A cited piece of a document: ``text == document.text[start:end]``.

    ``lang`` is the dominant script; ``mixed`` says both scripts carry real weight.
    ``id`` is the storage id a backend assigns; page and section fields are filled for
    documents that have them; ``ocr`` says its text was read by OCR from a scan (check it there).
    """

    doc_id: str
    chunk_no: int
    start: int
    end: int
    text: str
    lang: Lang
    mixed: bool = False
    title: str = ""
    source: str = ""
    id: int | None = None
    page: int | None = None
    page_end: int | None = None
    page_label: str | None = None
    section: str | None = None
    ocr: bool = False

    def as_dict(self) -> dict[str, object]:
        return {**{name: getattr(self, name) for name in PASSAGE_FIELDS}, "lang": self.lang.value}


#: Passage's field names (``as_dict`` copies them shallowly: its values are immutable).
PASSAGE_FIELDS = tuple(field.name for field in fields(Passage))


@dataclass(frozen=True)
class Filter:
    """Which passages a search may return: one language and/or some documents (empty: all)."""

    lang: Lang | None = None
    doc_ids: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return self.lang is None and not self.doc_ids


@dataclass(frozen=True)
class KeywordQuery:
    """A keyword search: jieba tokens (local BM25) and the normalised text (engines with analysers).
    ``phrases``: the quoted phrases, folded (:func:`search.text.language.fold`); a backend returns only
    passages holding them (:func:`search.backends.codec.holds_phrases`; the retriever checks every
    phrase itself)."""

    tokens: tuple[str, ...]
    text: str
    phrases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Origin:
    """Where a passage comes from, as ranking needs it: its language and its document (no text)."""

    lang: Lang
    doc_id: str


Scored = list[tuple[int, float]]
"""``(passage id, score)`` pairs, best first."""


@dataclass
class DocumentSummary:
    """A document in a listing: no text."""

    id: str
    title: str
    source: str
    lang: Lang
    chars: int
    chunks: int
    media_type: str = "text/plain"
    added_at: str = ""
    extra: dict[str, object] = field(default_factory=dict)


#: Sentence vectors are stored Matryoshka-truncated to this many dimensions, as float16.
SENTENCE_DIMENSION = 256


@dataclass(frozen=True)
class SentenceVectors:
    """A passage's sentences as stored at ingest: spans relative to the passage start and one
    unit vector each (pooled from the passage's own forward pass, see ``Embedder.encode_passages``)."""

    spans: np.ndarray  # (n, 2) int32, offsets into the passage text
    vectors: np.ndarray  # (n, d) float16

    def to_bytes(self) -> bytes:
        count, dimension = self.vectors.shape
        return (struct.pack("<II", count, dimension) + np.asarray(self.spans, "<i4").tobytes()
                + np.asarray(self.vectors, "<f2").tobytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> "SentenceVectors":
        count, dimension = struct.unpack_from("<II", data)
        spans = np.frombuffer(data, "<i4", 2 * count, 8).reshape(count, 2)
        return cls(spans, np.frombuffer(data, "<f2", count * dimension, 8 + 8 * count).reshape(count, dimension))


def truncate(vectors: np.ndarray, dimension: int | None) -> np.ndarray:
    """Matryoshka truncation to ``dimension`` and L2 re-normalisation (rows or one vector)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if dimension is not None and dimension < vectors.shape[-1]:
        vectors = vectors[..., :dimension]
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)
