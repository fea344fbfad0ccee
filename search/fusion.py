"""Fusion of dense and keyword candidates and language balance, as pure functions.

Everything here takes plain mappings (``chunk id -> score``, ``chunk id -> script``)
and returns scores or ranked ids, so a test (or an offline benchmark sweep, see
``tools/fusion_sweep.py``) can call it without a model or an index.
"""

from __future__ import annotations

from typing import Mapping, Sequence

#: Weight of the min-max normalised BM25 score added to the cosine in hybrid mode.
KEYWORD_WEIGHT = 0.05
#: Balance: how many passages of the other script are lifted into the top ``k``.
BALANCE_SLOTS = 3
#: Balance: an other-script passage is lifted when its cosine is within this margin of
#: the best other-script cosine (the "leader" of its language).
BALANCE_MARGIN = 0.05

Scores = Mapping[int, float]


def keyword_bonus(keyword: Scores, scripts: Mapping[int, str], query_lang: str,
                  weight: float = KEYWORD_WEIGHT) -> dict[int, float]:
    """``weight`` × min-max normalised BM25, only for passages in the query's own script
    (keyword matching means nothing across languages; a mixed query gets it everywhere)."""
    if not keyword:
        return {}
    low, high = min(keyword.values()), max(keyword.values())
    spread = (high - low) or 1.0
    return {chunk_id: weight * (bm25 - low) / spread for chunk_id, bm25 in keyword.items()
            if query_lang == "mixed" or scripts.get(chunk_id) == query_lang}


def fuse(dense: Scores, keyword: Scores, scripts: Mapping[int, str], query_lang: str,
         weight: float = KEYWORD_WEIGHT) -> dict[int, float]:
    """Hybrid score of every dense candidate: cosine + own-script keyword bonus."""
    bonus = keyword_bonus(keyword, scripts, query_lang, weight)
    return {chunk_id: cosine + bonus.get(chunk_id, 0.0) for chunk_id, cosine in dense.items()}


def rank(scores: Scores) -> list[int]:
    """Ids by score, best first (ties by id, so the order is deterministic)."""
    return sorted(scores, key=lambda chunk_id: (-scores[chunk_id], chunk_id))


def interleave(ranked: Sequence[int], groups: Mapping[int, str], lead: str) -> list[int]:
    """Alternate the best passages of each script, starting with the ``lead`` script
    (the balance before issue 16: strict alternation)."""
    queues: dict[str, list[int]] = {lead: []}
    for chunk_id in ranked:
        queues.setdefault(groups[chunk_id], []).append(chunk_id)
    merged: list[int] = []
    heads = {script: 0 for script in queues}
    while any(heads[script] < len(queue) for script, queue in queues.items()):
        for script, queue in queues.items():
            if heads[script] < len(queue):
                merged.append(queue[heads[script]])
                heads[script] += 1
    return merged


def lift_other_language(ranked: Sequence[int], scores: Scores, cosines: Scores, groups: Mapping[int, str],
                        lead: str, k: int, slots: int = BALANCE_SLOTS,
                        margin: float = BALANCE_MARGIN) -> list[int]:
    """Balance that leaves the own-language ranking alone except for a few reserved slots.

    The first ``k`` results are the fused ranking, except that up to ``slots`` passages of
    the other script(s) are guaranteed a place: the best other-script passage and those
    whose cosine is within ``margin`` of it. Each lifted passage takes the place of the
    lowest-ranked own-script passage in the top ``k`` (which moves down to ``k + 1``, …),
    and keeps its relative order; other-script passages already in the top ``k`` count
    towards the ``slots``. Beyond ``k`` the order is the fused one.
    """
    ranked = list(ranked)
    head = ranked[:k]
    others = [chunk_id for chunk_id in ranked if groups[chunk_id] != lead]
    if not others:
        return ranked
    best = cosines[others[0]] if others[0] in cosines else scores[others[0]]
    wanted = [chunk_id for chunk_id in others[:slots]
              if chunk_id == others[0] or cosines.get(chunk_id, scores[chunk_id]) >= best - margin]
    missing = [chunk_id for chunk_id in wanted if chunk_id not in head]
    if not missing:
        return ranked
    own_in_head = [chunk_id for chunk_id in head if groups[chunk_id] == lead]
    dropped = set(own_in_head[len(own_in_head) - len(missing):]) if len(missing) <= len(own_in_head) else set(own_in_head)
    top = set(head) - dropped | set(missing)
    first = [chunk_id for chunk_id in ranked if chunk_id in top]
    return first + [chunk_id for chunk_id in ranked if chunk_id not in top]


def calibrated(scores: Scores, cosines: Scores, groups: Mapping[int, str], lead: str,
               strength: float = 1.0) -> dict[int, float]:
    """Per-language calibration: shift each other script's scores so that its best cosine
    meets the lead script's best cosine (``strength`` 1) or part of the way (< 1)."""
    best: dict[str, float] = {}
    for chunk_id, cosine in cosines.items():
        script = groups[chunk_id]
        best[script] = max(best.get(script, cosine), cosine)
    if lead not in best:
        return dict(scores)
    shift = {script: strength * (best[lead] - top) for script, top in best.items()}
    return {chunk_id: score + shift.get(groups[chunk_id], 0.0) for chunk_id, score in scores.items()}


def balanced_merge(ranked: Sequence[int], scores: Scores, groups: Mapping[int, str], lead: str,
                   margin: float = BALANCE_MARGIN) -> list[int]:
    """Interleave with a margin: alternate the lead script and the other script(s) as
    :func:`interleave` does, but an other-script passage takes its turn only when its
    score is within ``margin`` of the lead-script passage it would go ahead of;
    otherwise the lead script keeps the place. ``margin`` +inf is strict alternation,
    -inf the plain fused ranking. Pass calibrated scores (:func:`calibrated`) so the
    scripts are compared on one scale.
    """
    own = [chunk_id for chunk_id in ranked if groups[chunk_id] == lead]
    other = [chunk_id for chunk_id in ranked if groups[chunk_id] != lead]
    merged: list[int] = []
    i = j = 0
    other_turn = False
    while i < len(own) or j < len(other):
        if j < len(other) and (i >= len(own) or (other_turn and scores[other[j]] >= scores[own[i]] - margin)
                               or scores[other[j]] > scores[own[i]]):
            merged.append(other[j])
            j += 1
            other_turn = False
        else:
            merged.append(own[i])
            i += 1
            other_turn = True
    return merged


def interleave_after_leaders(ranked: Sequence[int], scores: Scores, groups: Mapping[int, str], lead: str,
                             margin: float = BALANCE_MARGIN) -> list[int]:
    """Strict alternation (:func:`interleave`), except that lead-script passages scoring
    within ``margin`` of the best passage keep the first places: a clear own-language
    answer is never pushed down by the balance; the rest alternates."""
    if not ranked:
        return []
    best = max(scores[chunk_id] for chunk_id in ranked)
    leaders = [chunk_id for chunk_id in ranked if groups[chunk_id] == lead and scores[chunk_id] >= best - margin]
    kept = set(leaders)
    return leaders + interleave([chunk_id for chunk_id in ranked if chunk_id not in kept], groups, lead)
