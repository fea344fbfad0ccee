"""Fusion of dense and keyword candidates and language balance, as pure functions.

Everything here takes plain mappings (``passage id -> score``, ``passage id -> language``)
and returns scores or ranked ids, so a test can call it without a model or an index.
The designs measured, adopted or not, are in ``docs/bench/fusion_sweep.txt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

#: Weight of the min-max normalised BM25 score added to the cosine in hybrid mode
#: (.05 before; with documents first, .03 is as good or better on every R@10 cell of both dev sets:
#: docs/bench/fusion_sweep.txt).
KEYWORD_WEIGHT = 0.03

Scores = Mapping[int, float]


@dataclass(frozen=True)
class RankingPolicy:
    """How hybrid mode orders candidates: the BM25 weight, English and Chinese passages alternating
    (without a language filter), every document's best passage before any second one. The defaults
    are the measured best (docs/bench/fusion_sweep.txt); measurement tools pass other policies."""

    keyword_weight: float = KEYWORD_WEIGHT
    interleave: bool = True
    documents_first: bool = True


def keyword_bonus(keyword: Scores, scripts: Mapping[int, str], query_lang: str | None,
                  weight: float = KEYWORD_WEIGHT) -> dict[int, float]:
    """``weight`` × min-max normalised BM25, only for passages in the query's own language
    (keyword matching means nothing across languages; a mixed query, ``None``, gets it everywhere)."""
    if not keyword:
        return {}
    low, high = min(keyword.values()), max(keyword.values())
    spread = (high - low) or 1.0
    return {passage_id: weight * (bm25 - low) / spread for passage_id, bm25 in keyword.items()
            if query_lang is None or scripts.get(passage_id) == query_lang}


def fuse(dense: Scores, keyword: Scores, scripts: Mapping[int, str], query_lang: str | None,
         weight: float = KEYWORD_WEIGHT) -> dict[int, float]:
    """Hybrid score of every dense candidate: cosine + own-script keyword bonus."""
    bonus = keyword_bonus(keyword, scripts, query_lang, weight)
    return {passage_id: cosine + bonus.get(passage_id, 0.0) for passage_id, cosine in dense.items()}


def rank(scores: Scores) -> list[int]:
    """Ids by score, best first (ties by id, so the order is deterministic)."""
    return sorted(scores, key=lambda passage_id: (-scores[passage_id], passage_id))


def interleave(ranked: Sequence[int], groups: Mapping[int, str], lead: str) -> list[int]:
    """Alternate the best passages of each language, starting with the ``lead`` language."""
    queues: dict[str, list[int]] = {lead: []}
    for passage_id in ranked:
        queues.setdefault(groups[passage_id], []).append(passage_id)
    merged: list[int] = []
    heads = {script: 0 for script in queues}
    while any(heads[script] < len(queue) for script, queue in queues.items()):
        for script, queue in queues.items():
            if heads[script] < len(queue):
                merged.append(queue[heads[script]])
                heads[script] += 1
    return merged


def documents_first(ranked: Sequence[int], documents: Mapping[int, str]) -> list[int]:
    """Each document's best passage, in rank order, before any document's second passage
    (the later passages keep their order after them): ten hits show as many sources as they can."""
    seen: set[str] = set()
    firsts: list[int] = []
    later: list[int] = []
    for passage_id in ranked:
        doc_id = documents[passage_id]
        (later if doc_id in seen else firsts).append(passage_id)
        seen.add(doc_id)
    return firsts + later


def holders_first(ranked: Sequence[int], languages: Mapping[int, str], holders: set[int],
                  constrained: set[str]) -> list[int]:
    """Within each ``constrained`` language, the passages holding its phrases take that language's
    first places (in rank order), the others follow; every other language keeps its places exactly."""
    reordered = list(ranked)
    for lang in constrained:
        places = [index for index, passage_id in enumerate(ranked) if languages[passage_id] == lang]
        ids = [ranked[index] for index in places]
        ordered = [p for p in ids if p in holders] + [p for p in ids if p not in holders]
        for index, passage_id in zip(places, ordered):
            reordered[index] = passage_id
    return reordered
