"""Query → dense (FAISS) and keyword (BM25) candidates → language-aware fusion → passages."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from search.backends.base import Backend, origins_of, passages_of, sentences_of, vectors_of
from search.model.embedder import Embedder
from search.ranking.evidence import evidence_spans, shared_words_evidence, stored_evidence
from search.text.sentences import sentence_spans
from search.ranking.collapse import collapse_by_doc, fold_duplicates
from search.ranking.fusion import RankingPolicy, documents_first, fuse, holders_first, interleave, rank
from search.text.language import detect_language, is_mixed, keyword_tokens, normalize
from search.ranking.budget import MAX_EVIDENCE_SENTENCES, MAX_QUERY_CHARS, QueryError, parse_enum, plan_search
from search.ranking.query import ParsedQuery, holds_phrases, is_excluded, script_of, unmatched_phrases
from search.text.language import fold
from search.types import Filter, KeywordQuery, Lang, Mode, Origin, Passage


@dataclass
class Hit:
    """One ranked passage with its scores (the passage carries everything needed to cite it)."""

    rank: int
    score: float
    passage: Passage
    dense_score: float | None = None
    keyword_score: float | None = None
    more_in_doc: int = 0  # collapse=doc: other matching passages of this document
    also_in: list[str] = field(default_factory=list)  # collapse=doc: documents with a near-identical passage
    evidence: list[list[int]] = field(default_factory=list)  # [start, end] of the answering sentences, best first

    def as_dict(self) -> dict[str, object]:
        return {"rank": self.rank, "score": self.score, **self.passage.as_dict(),
                "dense_score": self.dense_score, "keyword_score": self.keyword_score,
                "more_in_doc": self.more_in_doc, "also_in": self.also_in, "evidence": self.evidence}


@dataclass
class SearchResult:
    query: str
    query_lang: Lang
    mode: Mode
    hits: list[Hit] = field(default_factory=list)
    took_ms: float = 0.0
    tokens: list[str] = field(default_factory=list)  # the query's keyword tokens (BM25, highlights)
    notices: list[str] = field(default_factory=list)  # what phrases and exclusions did ("no English passage contains …")


class Retriever:
    """Ranked, cited passages for a query, from any storage backend."""

    def __init__(self, backend: Backend, embedder: Embedder, policy: RankingPolicy = RankingPolicy()):
        self.backend = backend
        self.embedder = embedder
        self.policy = policy

    def search(self, query: str, k: int = 10, lang: Lang | str | None = None, doc_ids: list[str] | None = None,
               mode: Mode | str = Mode.HYBRID, offset: int = 0, collapse: bool = False,
               evidence: int = 0) -> SearchResult:
        """Run a query (read as people write it, see :mod:`search.ranking.query`): among the passages
        of a phrase's language those holding ``"exact phrases"`` come first, ``-words`` remove the
        passages of their language holding them; the other language ranks as without the marks. Hybrid results without a language filter alternate the
        best English and Chinese passages; the language of the passage closest in meaning
        leads, so keyword evidence never decides which language wins; every document's best
        passage comes before any document's second one. ``collapse`` keeps the
        best passage per document and folds near-identical passages of other documents.
        Every hit carries its answering sentences (``hit.evidence``), see :meth:`_add_evidence`;
        ``evidence`` recomputes them for the first that many hits by embedding their sentences
        (more precise, about half a second per hit on a 2-core CPU)."""
        started = time.perf_counter()
        plan = plan_search(query, k, mode, offset, collapse, evidence)  # every limit checked before any work
        query, mode, parsed, wanted, pool = plan.query, plan.mode, plan.parsed, plan.wanted, plan.pool
        text = parsed.text
        where = Filter(parse_enum(Lang, lang, "lang"), tuple(doc_ids or ()))
        query_lang, mixed_query = detect_language(text), is_mixed(text)
        normalized = normalize(text)
        tokens = keyword_tokens(normalized)
        keywords = KeywordQuery(tuple(tokens), normalized)
        query_vector = self.embedder.encode_query(normalized) if mode != Mode.SPARSE else None
        dense, keyword = self._candidates(query_vector, keywords, mode, pool, where,
                                          self._phrase_holders(parsed, keywords, pool, where))
        candidates = set(dense) | set(keyword)
        notices: list[str] = []
        holders: set[int] = set()
        if plan.narrowed:  # the syntax and collapsing read every candidate's text and document
            passages, holders, notices = self._matching(parsed, passages_of(self.backend, candidates), where.lang)
            origins = {passage_id: Origin(passage.lang, passage.doc_id) for passage_id, passage in passages.items()}
        else:  # ranking needs only languages and documents: texts are read for the returned ranks
            passages, origins = {}, origins_of(self.backend, candidates)
        # Passages another process deleted since their vectors were found, or that the syntax rules out, drop.
        dense, keyword = ({passage_id: score for passage_id, score in found.items() if passage_id in origins}
                          for found in (dense, keyword))
        languages = {passage_id: origin.lang for passage_id, origin in origins.items()}
        scored = self._scores(dense, keyword, languages, None if mixed_query else query_lang, mode)
        documents = {passage_id: origin.doc_id for passage_id, origin in origins.items()}
        ranked = self._ranked(scored, dense, languages, documents, mode, balanced=where.lang is None)
        if parsed.phrases:
            ranked = holders_first(ranked, languages, holders, {script_of(phrase) for phrase in parsed.phrases})
        kept = ranked if collapse else ranked[:wanted]  # collapsing counts over every candidate
        passages = passages or passages_of(self.backend, kept)
        hits = [Hit(0, round(scored[passage_id], 6), passages[passage_id], _rounded(dense.get(passage_id)),
                    _rounded(keyword.get(passage_id))) for passage_id in kept if passage_id in passages]
        if collapse:
            hits = self._collapsed(hits, wanted)
        hits = hits[offset:wanted]
        for position, hit in enumerate(hits, start=offset + 1):
            hit.rank = position
        if evidence and query_vector is None:  # sparse mode: the model runs only when asked
            query_vector = self.embedder.encode_query(normalized)
        self._add_evidence(hits, query_vector, tokens, evidence)
        if parsed.excluded and len(hits) < k and len(origins) < len(candidates):
            notices.append(f"fewer than {k} hits: the -exclusions left out {len(candidates) - len(origins)} passages")
        took_ms = round((time.perf_counter() - started) * 1000, 2)
        return SearchResult(query, query_lang, mode, hits, took_ms, tokens, notices)

    def _ranked(self, scored: dict[int, float], dense: dict[int, float], languages: dict[int, Lang],
                documents: dict[int, str], mode: Mode, balanced: bool) -> list[int]:
        """Ids best first. Hybrid (as the policy says): each document's best passage before any second
        one, and, without a language filter, English and Chinese alternating from the language of the
        closest passage."""
        ranked = rank(scored)
        if mode != Mode.HYBRID or not ranked:
            return ranked
        if dense and balanced and self.policy.interleave:
            ranked = interleave(ranked, languages, lead=languages[max(dense, key=dense.__getitem__)])
        return documents_first(ranked, documents) if self.policy.documents_first else ranked

    def _candidates(self, query_vector: np.ndarray | None, keywords: KeywordQuery, mode: Mode, pool: int,
                    where: Filter, held: dict[int, float]) -> tuple[dict[int, float], dict[int, float]]:
        """Dense ``{passage id: cosine}`` and keyword ``{passage id: BM25}`` candidate pools; ``held``
        (passages holding a quoted phrase) join the pool of the mode without changing anyone's score."""
        keyword = dict(self.backend.keyword_search(keywords, pool, where)) if mode != Mode.DENSE else {}
        if mode == Mode.SPARSE:
            return {}, {**held, **keyword}
        dense = dict(self.backend.dense_search(query_vector, pool, where))
        extra = [*keyword, *held] if mode == Mode.HYBRID else list(held)
        missing = [passage_id for passage_id in dict.fromkeys(extra) if passage_id not in dense]
        for passage_id, vector in vectors_of(self.backend, missing).items():
            dense[passage_id] = float(vector @ query_vector)
        return dense, keyword

    def _phrase_holders(self, parsed: ParsedQuery, keywords: KeywordQuery, pool: int,
                        where: Filter) -> dict[int, float]:
        """Passages of each phrase's language that hold it, wherever they rank by meaning (the
        backend's phrase index; candidates only: the plain BM25 scores stay those of the question)."""
        held: dict[int, float] = {}
        for lang in Lang:
            phrases = parsed.phrases_in(lang)
            if phrases and where.lang in (None, lang):
                found = self.backend.keyword_search(replace(keywords, phrases=phrases), pool,
                                                    replace(where, lang=lang))
                held.update((passage_id, score) for passage_id, score in found if passage_id not in held)
        return held

    @staticmethod
    def _matching(parsed: ParsedQuery, passages: dict[int, Passage],
                  searched: Lang | None) -> tuple[dict[int, Passage], set[int], list[str]]:
        """The passages no exclusion of their language removes, those of them holding the phrases of
        their language, and notices for the phrases that none of their language holds."""
        folded = {passage_id: (fold(passage.text), passage.lang) for passage_id, passage in passages.items()}
        kept = {passage_id: passages[passage_id] for passage_id, (text, lang) in folded.items()
                if not is_excluded(parsed, text, lang, folded=True)}
        holders = {passage_id for passage_id in kept if parsed.phrases_in(folded[passage_id][1])
                   and holds_phrases(parsed, *folded[passage_id], folded=True)}
        return kept, holders, unmatched_phrases(parsed, folded.values(), searched) if parsed.phrases else []

    def _add_evidence(self, hits: list[Hit], query_vector: np.ndarray | None, tokens: list[str],
                      embedded: int) -> None:
        """Every hit's answering sentences, best first, as document offsets. The first ``embedded``
        hits, as far as ``MAX_EVIDENCE_SENTENCES`` sentences go: their sentences embedded now
        (evidence@1 .64 on tests/data/evidence.jsonl). The others: the sentence vectors stored with
        the passage at ingest (.55, no model call); without them (sparse mode, passages stored before
        they were kept, a sentence set too big for a Milvus field) the sentences holding the most
        query words (.26; .41 for same-language questions; none when no sentence holds one)."""
        marked = self._mark_evidence(hits[:embedded], query_vector) if embedded else 0
        rest = hits[marked:]
        stored = sentences_of(self.backend, (hit.passage.id for hit in rest)) if query_vector is not None else {}
        for hit in rest:
            if hit.passage.id in stored:
                hit.evidence = stored_evidence(stored[hit.passage.id], query_vector, hit.passage.start)
            else:
                hit.evidence = shared_words_evidence(tokens, hit.passage.text, hit.passage.start)

    def _mark_evidence(self, hits: list[Hit], query_vector: np.ndarray) -> int:
        """The answering sentences (any language) of the first hits whose sentences fit in
        ``MAX_EVIDENCE_SENTENCES``, from one embedding call; returns how many hits were marked."""
        spans: list[list[tuple[int, int]]] = []
        for hit in hits:
            sentences = sentence_spans(hit.passage.text, hit.passage.start)
            if sum(map(len, spans)) + len(sentences) > MAX_EVIDENCE_SENTENCES:
                break
            spans.append(sentences)
        if not spans:
            return 0
        texts = [hit.passage.text[a - hit.passage.start:b - hit.passage.start]
                 for hit, sentences in zip(hits, spans) for a, b in sentences]
        vectors, row = self.embedder.encode_documents(texts), 0
        for hit, sentences in zip(hits, spans):
            hit.evidence = evidence_spans(query_vector, vectors[row:row + len(sentences)], sentences)
            row += len(sentences)
        return len(spans)

    def _collapsed(self, hits: list[Hit], wanted: int) -> list[Hit]:
        """The best hit per document (counting the others), then near-duplicates across documents folded
        into the first ``wanted`` kept hits."""
        kept = [(hits[group.index], group.more_in_doc) for group in collapse_by_doc([h.passage.doc_id for h in hits])]
        best = [hit for hit, _ in kept]
        for hit, more in kept:
            hit.more_in_doc = more
        vectors = vectors_of(self.backend, (hit.passage.id for hit in best))
        if not best or len(vectors) != len(best):  # nothing to compare (no hits, or vectors gone meanwhile)
            return best[:wanted]
        folded = fold_duplicates([hit.passage.doc_id for hit in best], [hit.passage.text for hit in best],
                                 np.stack([vectors[hit.passage.id] for hit in best]), limit=wanted)
        for group in folded:
            best[group.index].also_in = group.also_in
        return [best[group.index] for group in folded]

    def _scores(self, dense: dict[int, float], keyword: dict[int, float], languages: dict[int, Lang],
                bonus_lang: Lang | None, mode: Mode) -> dict[int, float]:
        """The ranking score of each candidate: BM25 (sparse), cosine (dense) or fused (hybrid)."""
        if mode == Mode.SPARSE:
            return dict(keyword)
        if mode == Mode.DENSE:
            return dict(dense)
        return fuse(dense, keyword, languages, bonus_lang, self.policy.keyword_weight)


def _rounded(score: float | None) -> float | None:
    return None if score is None else round(score, 6)
