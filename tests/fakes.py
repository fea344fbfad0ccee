"""Small fakes for storage, ranking and API tests: prepared documents with deterministic vectors,
a fake tokenizer and the API over them, no model."""

from __future__ import annotations

import hashlib
import re

import numpy as np

from search.backends.base import PreparedDocument
from search.text.language import detect_language, is_mixed, keyword_tokens
from search.text.sentences import sentence_spans
from search.types import Document, ModelInfo, Passage, SentenceVectors

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



class FakeTokenizer:
    """The slice of a fast tokenizer the chunker uses: a run of letters or digits is one token,
    every other non-space character (a CJK character, a mark) is one token."""

    TOKEN = re.compile(r"[^\W_]+|\S", re.ASCII)

    def __call__(self, text: str, add_special_tokens: bool = True, return_offsets_mapping: bool = False,
                 verbose: bool = True) -> dict[str, list]:
        spans = [match.span() for match in self.TOKEN.finditer(text)]
        encoding: dict[str, list] = {"input_ids": [sum(map(ord, text[a:b])) % 30_000 for a, b in spans]}
        if return_offsets_mapping:
            encoding["offset_mapping"] = spans
        return encoding


def fake_api(folder, documents: list[PreparedDocument] = (), **settings):
    """The real app over a local index in ``folder`` holding ``documents``, on the fake embedder and
    tokenizer (for validation and error tests: serve it with ``fastapi.testclient.TestClient``)."""
    from search.api import create_app
    from search.backends.local import LocalBackend
    from search.chunking import Chunker
    from search.ingest.pipeline import Ingester
    from search.loading import LoadLimits
    from search.ranking.retriever import Retriever
    from search.settings import Settings

    config = Settings().with_overrides(index=folder, **settings)
    backend, embedder = LocalBackend(folder), FakeEmbedder()
    backend.record_model(FAKE_MODEL)
    if documents:
        backend.write(list(documents))
    ingester = Ingester(backend, embedder, Chunker(FakeTokenizer(), config.chunk_tokens), LoadLimits.from_settings(config))
    return create_app(Retriever(backend, embedder), config, ingester)
