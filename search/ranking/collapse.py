"""One hit per document and near-duplicate folding, as pure functions over ranked hits.

Two passages of different documents are near-duplicates (folded, the later one's document
listed under the first) when all three hold:

* cosine >= 0.80, and
* containment >= 0.7: the share of the *smaller* passage's character 3-grams (normalised,
  whitespace removed) found in the other, ``|A∩B| / min(|A|, |B|)``. It tolerates passage
  boundaries that fall elsewhere in the other copy, page furniture and line breaks, where
  Jaccard does not; and
* the same amount of Chinese: if either passage holds a Han character, the other holds at
  least half as many. Translations share code, commands and file names (maintguide EN/ZH:
  the best cross-language passage pair has cosine median .88 and 3-gram containment p95 .77),
  but the Chinese prose of one is missing from the other.

Measured (docs/bench/duplicates.txt, ``docs/bench/tools/duplicates.py``: the Debian New
Maintainers' Guide as HTML chapters, PDF and section texts, EN and ZH, 1,180 passages). True
duplicates (the same text in another format, >= half the smaller passage's 12-grams shared)
have cosine p5/median .71/.90 and Jaccard .31/.61, containment .65/.86. This rule folds 73% of
them (the former cosine >= .95 AND Jaccard >= .8: 13%), 100% of a republished chapter, 0 of
the 1,180 nearest distinct passages, 0 distinct pairs of the benchmark queries' result lists,
and 0 translation pairs holding Chinese text (the cross-language pairs it folds are language-
neutral text: table-of-contents dot leaders, identical code listings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from search.text.language import HAN_RE
from search.text.language import fold

DUPLICATE_COSINE = 0.80
DUPLICATE_CONTAINMENT = 0.7
HAN_RATIO = 0.5  # the passage with fewer Han characters holds at least this share of the other's ...
HAN_MIN = 1  # ... once either holds this many (any: a Chinese TOC line with one 和 is not a copy of the English)
SHINGLE = 3


@dataclass
class Collapsed:
    index: int                                            # position of the kept hit in the input ranking
    doc_id: str
    more_in_doc: int = 0                                  # other matching passages of the same document
    also_in: list[str] = field(default_factory=list)      # documents whose near-identical passage was folded


def collapse_by_doc(doc_ids: Sequence[str]) -> list[Collapsed]:
    """Best (first) passage per document, in ranked order, with the count of the others."""
    kept: dict[str, Collapsed] = {}
    for index, doc_id in enumerate(doc_ids):
        if doc_id in kept:
            kept[doc_id].more_in_doc += 1
        else:
            kept[doc_id] = Collapsed(index, doc_id)
    return list(kept.values())


def shingles(text: str, size: int = SHINGLE) -> frozenset[str]:
    """Character ``size``-grams of the normalised text with whitespace removed."""
    folded = "".join(fold(text).split())
    return frozenset(folded[i:i + size] for i in range(max(1, len(folded) - size + 1)))


def containment(a: frozenset[str], b: frozenset[str]) -> float:
    """Share of the smaller shingle set found in the other: ``|A∩B| / min(|A|, |B|)``."""
    return len(a & b) / (min(len(a), len(b)) or 1)


def same_chinese(han_a: int, han_b: int) -> bool:
    """Both passages hold about as much Chinese (Han character counts), or neither holds any to speak of."""
    return max(han_a, han_b) < HAN_MIN or min(han_a, han_b) >= HAN_RATIO * max(han_a, han_b)


def fold_duplicates(doc_ids: Sequence[str], texts: Sequence[str], vectors: np.ndarray,
                    cosine: float = DUPLICATE_COSINE, overlap: float = DUPLICATE_CONTAINMENT,
                    limit: int | None = None) -> list[Collapsed]:
    """Keep the first of each group of near-identical passages from different documents
    (cosine >= ``cosine``, shingle containment >= ``overlap``, as much Chinese in both; see the
    module docstring); the folded ones' documents are listed under it. ``vectors`` are
    L2-normalised rows in ranked order.

    With ``limit``, at most that many groups are kept: later passages only join them (or drop).
    Each passage is compared with the kept groups alone (one matrix-vector product), and shingles
    are made only for pairs over the cosine, so the work is O(passages x groups), never a square
    matrix of every pair (20k documents once took 43 s and 1.9 GB).
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    kept: list[Collapsed] = []
    kept_vectors = np.zeros((min(len(doc_ids), limit or len(doc_ids)), vectors.shape[1] if vectors.ndim == 2 else 0),
                            dtype=np.float32)
    grams: dict[int, frozenset[str]] = {}
    han: dict[int, int] = {}

    def shingles_of(index: int) -> frozenset[str]:
        return grams[index] if index in grams else grams.setdefault(index, shingles(texts[index]))

    def han_of(index: int) -> int:
        return han[index] if index in han else han.setdefault(index, len(HAN_RE.findall(texts[index])))

    for index, doc_id in enumerate(doc_ids):
        similar = np.flatnonzero(kept_vectors[:len(kept)] @ vectors[index] >= cosine) if kept else ()
        for position in similar:
            group = kept[position]
            if (group.doc_id != doc_id and same_chinese(han_of(group.index), han_of(index))
                    and containment(shingles_of(group.index), shingles_of(index)) >= overlap):
                if doc_id not in group.also_in:
                    group.also_in.append(doc_id)
                break
        else:
            if limit is None or len(kept) < limit:
                kept_vectors[len(kept)] = vectors[index]
                kept.append(Collapsed(index, doc_id))
    return kept
