"""Small fakes for storage and ranking tests: prepared documents with deterministic vectors, no model."""

from __future__ import annotations

import hashlib
from typing import Iterable

import numpy as np

from search.backends.base import Backend, Fields, PreparedDocument
from search.text.language import detect_language, is_mixed, keyword_tokens
from search.text.sentences import sentence_spans
from search.types import Document, ModelInfo, Origin, Passage, SentenceVectors

DIMENSION = 16
FAKE_MODEL = ModelInfo("fake/hash-embedder", DIMENSION, "query: ", "passage: ")


def fake_vector(text: str, dimension: int = DIMENSION) -> np.ndarray:
    """A deterministic unit vector for ``text``."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimension).astype(np.float32)
    return vector / np.linalg.norm(vector)


def sentence_vectors(passage: str) -> SentenceVectors:
    """Stored sentence vectors of a passage: each sentence's fake vector (float16)."""
    spans = sentence_spans(passage)
    return SentenceVectors(np.array(spans, dtype=np.int32),
                           np.stack([fake_vector(passage[a:b]) for a, b in spans]).astype(np.float16))


def prepared(doc_id: str, sentences: list[str], title: str = "", original: bytes | None = None,
             with_sentences: bool = False) -> PreparedDocument:
    """A document whose passages are its sentences (joined by one space), ready to write;
    ``with_sentences`` stores each passage's sentence vectors too (as ingest does)."""
    text = " ".join(sentences)
    passages, start = [], 0
    for number, sentence in enumerate(sentences):
        passages.append(Passage(doc_id, number, start, start + len(sentence), sentence, detect_language(sentence),
                                is_mixed(sentence), title or doc_id, f"mem:{doc_id}"))
        start += len(sentence) + 1
    document = Document(doc_id, title or doc_id, f"mem:{doc_id}", text, detect_language(text))
    return PreparedDocument(document, tuple(passages), tuple(tuple(keyword_tokens(s)) for s in sentences),
                            np.stack([fake_vector(s) for s in sentences]), original,
                            tuple(sentence_vectors(s) for s in sentences) if with_sentences else ())


class FakeEmbedder:
    """Queries embed like the passage they name (so the test decides what is 'closest in meaning')."""

    info = FAKE_MODEL

    def __init__(self, meaning: dict[str, str] | None = None):
        self.meaning = meaning or {}

    def encode_query(self, text: str) -> np.ndarray:
        return fake_vector(self.meaning.get(text, text))

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        return np.stack([fake_vector(text) for text in texts])


# -- reads by id, as the retriever makes them (Backend.rows with one field) --------------------------
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
