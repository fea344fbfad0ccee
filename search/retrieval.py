"""Query → dense (FAISS) and keyword (BM25) candidates → language-aware fusion → passages."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from search.embedding import Embedder
from search.indexing import SearchIndex
from search.language import Lang, detect_language, han_share, keyword_tokens, normalize
from search.store import StoredChunk

Mode = Literal["dense", "sparse", "hybrid"]
MODES: tuple[str, ...] = ("dense", "sparse", "hybrid")
MAX_QUERY_CHARS = 2000
MIN_CANDIDATES = 100
#: Weight of the normalised BM25 score added to the cosine similarity in hybrid mode.
KEYWORD_WEIGHT = 0.1


class QueryError(ValueError):
    """A query that cannot be run (empty, too long, bad parameters)."""


@dataclass
class Hit:
    """One ranked passage with everything needed to cite it."""

    rank: int
    score: float
    doc_id: str
    title: str
    source: str
    chunk_no: int
    lang: str
    start: int
    end: int
    text: str
    chunk_id: int
    dense_score: float | None = None
    keyword_score: float | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class SearchResult:
    query: str
    query_lang: Lang
    mode: str
    hits: list[Hit] = field(default_factory=list)
    took_ms: float = 0.0


def lang_filter(lang: str | None) -> tuple[str, ...] | None:
    """Passage languages a filter admits: mixed passages hold both scripts."""
    if lang is None:
        return None
    if lang not in ("en", "zh"):
        raise QueryError(f"lang must be 'en' or 'zh', not {lang!r}")
    return (lang, "mixed")


def script_group(chunk: StoredChunk) -> str:
    """``en`` or ``zh``: the script a passage is mostly written in."""
    if chunk.lang in ("en", "zh"):
        return chunk.lang
    return "zh" if (han_share(chunk.text) or 0) >= 0.5 else "en"


def interleave(ranked: list[int], groups: dict[int, str]) -> list[int]:
    """Alternate the best passages of each script, the best overall first."""
    queues: dict[str, list[int]] = {}
    for chunk_id in ranked:
        queues.setdefault(groups[chunk_id], []).append(chunk_id)
    order = list(queues)  # insertion order: the group of the best hit comes first
    merged: list[int] = []
    while any(queues.values()):
        for group in order:
            if queues[group]:
                merged.append(queues[group].pop(0))
    return merged


class Retriever:
    """Ranked, cited passages for a query."""

    def __init__(self, index: SearchIndex, embedder: Embedder, keyword_weight: float = KEYWORD_WEIGHT):
        self.index = index
        self.embedder = embedder
        self.keyword_weight = keyword_weight

    def search(self, query: str, k: int = 10, lang: str | None = None, doc_ids: list[str] | None = None,
               mode: str = "hybrid", balance: bool | None = None, offset: int = 0) -> SearchResult:
        """Run a query; ``balance`` (default: on without a language filter) mixes both languages."""
        started = time.perf_counter()
        query = self._validated(query, k, mode, offset)
        langs, docs = lang_filter(lang), tuple(doc_ids) if doc_ids else None
        query_lang = detect_language(query)
        normalized = normalize(query)
        wanted = k + offset
        pool = max(MIN_CANDIDATES, 4 * wanted)
        query_vector = self.embedder.encode_query(normalized) if mode != "sparse" else None
        with self.index.lock:
            scored = self._score(query_vector, keyword_tokens(normalized), query_lang, mode, pool, langs, docs)
            chunks = self.index.store.chunks_by_id(scored)
        ranked = sorted(scored, key=lambda chunk_id: scored[chunk_id][0], reverse=True)
        if balance if balance is not None else (lang is None and mode != "sparse"):
            ranked = interleave(ranked, {chunk_id: script_group(chunks[chunk_id]) for chunk_id in ranked})
        hits = [self._hit(rank, chunks[chunk_id], scored[chunk_id])
                for rank, chunk_id in enumerate(ranked[offset:wanted], start=offset + 1)]
        return SearchResult(query, query_lang, mode, hits, round((time.perf_counter() - started) * 1000, 2))

    @staticmethod
    def _validated(query: str, k: int, mode: str, offset: int) -> str:
        query = (query or "").strip()
        if not query:
            raise QueryError("query is empty")
        if len(query) > MAX_QUERY_CHARS:
            raise QueryError(f"query is longer than {MAX_QUERY_CHARS} characters")
        if not 1 <= k <= 100:
            raise QueryError("k must be between 1 and 100")
        if offset < 0:
            raise QueryError("offset must not be negative")
        if mode not in MODES:
            raise QueryError(f"mode must be one of {', '.join(MODES)}")
        return query

    def _score(self, query_vector: np.ndarray | None, tokens: list[str], query_lang: Lang, mode: str,
               pool: int, langs: tuple[str, ...] | None,
               docs: tuple[str, ...] | None) -> dict[int, tuple[float, float | None, float | None]]:
        """``chunk id -> (score, dense, keyword)`` for the candidate pool."""
        store = self.index.store
        keyword = dict(store.keyword_search(tokens, pool, langs, docs)) if mode != "dense" else {}
        if mode == "sparse":
            return {chunk_id: (score, None, score) for chunk_id, score in keyword.items()}
        allowed = store.chunk_ids(langs, docs) if (langs or docs) else None
        dense = dict(self.index.vectors.search(query_vector, pool, allowed))
        if mode == "dense":
            return {chunk_id: (score, score, None) for chunk_id, score in dense.items()}
        missing = [chunk_id for chunk_id in keyword if chunk_id not in dense]
        for chunk_id, vector in store.vectors_of(missing).items():
            dense[chunk_id] = float(vector @ query_vector)
        top_keyword = max(keyword.values(), default=0.0) or 1.0
        chunk_langs = store.chunk_langs(list(dense))
        scored = {}
        for chunk_id, cosine in dense.items():
            keyword_score = keyword.get(chunk_id)
            bonus = 0.0
            if keyword_score is not None and _same_script(query_lang, chunk_langs[chunk_id]):
                bonus = self.keyword_weight * keyword_score / top_keyword
            scored[chunk_id] = (cosine + bonus, cosine, keyword_score)
        return scored

    @staticmethod
    def _hit(rank: int, chunk: StoredChunk, scores: tuple[float, float | None, float | None]) -> Hit:
        score, dense, keyword = scores
        return Hit(rank, round(score, 6), chunk.doc_id, chunk.title, chunk.source, chunk.chunk_no, chunk.lang,
                   chunk.start, chunk.end, chunk.text, chunk.id,
                   None if dense is None else round(dense, 6), None if keyword is None else round(keyword, 6))


def _same_script(query_lang: Lang, passage_lang: str) -> bool:
    """Keyword evidence counts only for passages written in the query's script."""
    return query_lang == "mixed" or passage_lang in (query_lang, "mixed")
