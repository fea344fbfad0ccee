"""Query → dense (FAISS) and keyword (BM25) candidates → language-aware fusion → passages."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from search.embedding import Embedder
from search.backend import SearchBackend
from search.language import Lang, detect_language, keyword_tokens, normalize
from search.store import StoredChunk

Mode = Literal["dense", "sparse", "hybrid"]
MODES: tuple[str, ...] = ("dense", "sparse", "hybrid")
MAX_QUERY_CHARS = 2000
MIN_CANDIDATES = 100
#: Weight of the normalised BM25 score added to the cosine similarity in hybrid mode.
KEYWORD_WEIGHT = 0.05


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
    tokens: list[str] = field(default_factory=list)  # the query's keyword tokens (BM25, highlights)


def check_lang(lang: str | None) -> str | None:
    """Validate a passage-language filter (it selects passages by their dominant script)."""
    if lang not in (None, "en", "zh"):
        raise QueryError(f"lang must be 'en' or 'zh', not {lang!r}")
    return lang


def interleave(ranked: list[int], groups: dict[int, str], lead: str) -> list[int]:
    """Alternate the best passages of each script, starting with the ``lead`` script."""
    queues: dict[str, list[int]] = {lead: []}
    for chunk_id in ranked:
        queues.setdefault(groups[chunk_id], []).append(chunk_id)
    merged: list[int] = []
    while any(queues.values()):
        for queue in queues.values():
            if queue:
                merged.append(queue.pop(0))
    return merged


class Retriever:
    """Ranked, cited passages for a query."""

    def __init__(self, index: SearchBackend, embedder: Embedder, keyword_weight: float = KEYWORD_WEIGHT):
        self.index = index
        self.embedder = embedder
        self.keyword_weight = keyword_weight

    def search(self, query: str, k: int = 10, lang: str | None = None, doc_ids: list[str] | None = None,
               mode: str = "hybrid", balance: bool | None = None, offset: int = 0) -> SearchResult:
        """Run a query; ``balance`` (default: on in hybrid mode without a language filter)
        alternates the best English and Chinese passages. The language of the passage
        closest in meaning leads, so keyword evidence never decides which language wins."""
        started = time.perf_counter()
        query = self._validated(query, k, mode, offset)
        script, docs = check_lang(lang), tuple(doc_ids) if doc_ids else None
        query_lang = detect_language(query)
        normalized = normalize(query)
        wanted = k + offset
        pool = max(MIN_CANDIDATES, 4 * wanted)
        tokens = keyword_tokens(query)  # normalised inside, as ``normalized`` is
        query_vector = self.embedder.encode_query(normalized) if mode != "sparse" else None
        with self.index.lock:
            dense, keyword = self._candidates(query_vector, tokens, mode, pool, script, docs)
            chunks = self.index.store.chunks_by_id(set(dense) | set(keyword))
        # A chunk another process deleted after this FAISS snapshot was loaded is dropped.
        dense, keyword = ({chunk_id: score for chunk_id, score in candidates.items() if chunk_id in chunks}
                          for candidates in (dense, keyword))
        scored = self._fuse(dense, keyword, chunks, query_lang, mode)
        ranked = sorted(scored, key=lambda chunk_id: scored[chunk_id][0], reverse=True)
        if ranked and dense and (balance if balance is not None else (script is None and mode == "hybrid")):
            groups = {chunk_id: chunks[chunk_id].script for chunk_id in ranked}
            ranked = interleave(ranked, groups, lead=groups[max(dense, key=dense.__getitem__)])
        hits = [self._hit(rank, chunks[chunk_id], scored[chunk_id])
                for rank, chunk_id in enumerate(ranked[offset:wanted], start=offset + 1)]
        return SearchResult(query, query_lang, mode, hits, round((time.perf_counter() - started) * 1000, 2), tokens)

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

    def _candidates(self, query_vector: np.ndarray | None, tokens: list[str], mode: str, pool: int,
                    script: str | None, docs: tuple[str, ...] | None) -> tuple[dict[int, float], dict[int, float]]:
        """Dense ``{chunk id: cosine}`` and keyword ``{chunk id: BM25}`` candidate pools."""
        store = self.index.store
        keyword = dict(store.keyword_search(tokens, pool, script, docs)) if mode != "dense" else {}
        if mode == "sparse":
            return {}, keyword
        allowed = store.chunk_ids(script, docs) if (script or docs) else None
        dense = dict(self.index.dense_search(query_vector, pool, allowed))
        if mode == "hybrid":
            missing = [chunk_id for chunk_id in keyword if chunk_id not in dense]
            for chunk_id, vector in store.vectors_of(missing).items():
                dense[chunk_id] = float(vector @ query_vector)
        return dense, keyword

    def _fuse(self, dense: dict[int, float], keyword: dict[int, float], chunks: dict[int, StoredChunk],
              query_lang: Lang, mode: str) -> dict[int, tuple[float, float | None, float | None]]:
        """``chunk id -> (score, dense, keyword)``.

        Hybrid: cosine plus a bonus from the min-max normalised BM25 score, given only to
        passages in the query's own script, where keyword matching is meaningful. A
        passage in the other language is never pushed down by words it cannot contain.
        """
        if mode == "sparse":
            return {chunk_id: (score, None, score) for chunk_id, score in keyword.items()}
        if mode == "dense":
            return {chunk_id: (score, score, None) for chunk_id, score in dense.items()}
        low, high = min(keyword.values(), default=0.0), max(keyword.values(), default=0.0)
        spread = (high - low) or 1.0
        scored = {}
        for chunk_id, cosine in dense.items():
            bm25 = keyword.get(chunk_id)
            bonus = 0.0
            if bm25 is not None and (query_lang == "mixed" or chunks[chunk_id].script == query_lang):
                bonus = self.keyword_weight * (bm25 - low) / spread
            scored[chunk_id] = (cosine + bonus, cosine, bm25)
        return scored

    @staticmethod
    def _hit(rank: int, chunk: StoredChunk, scores: tuple[float, float | None, float | None]) -> Hit:
        score, dense, keyword = scores
        return Hit(rank, round(score, 6), chunk.doc_id, chunk.title, chunk.source, chunk.chunk_no, chunk.lang,
                   chunk.start, chunk.end, chunk.text, chunk.id,
                   None if dense is None else round(dense, 6), None if keyword is None else round(keyword, 6))
