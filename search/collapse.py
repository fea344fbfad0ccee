"""One hit per document and near-duplicate folding, as pure functions over ranked hits.

Near-duplicates need BOTH a high cosine and a high text overlap: translations of each
other have a high cosine (maintguide EN/ZH section pairs: best passage pair p5 0.861,
median 0.912, up to 1.0 for code-only passages) but share almost no character n-grams,
so they are never folded (they are the bilingual pair a user wants).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from search.query import fold

DUPLICATE_COSINE = 0.95
DUPLICATE_OVERLAP = 0.8
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


def text_overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard overlap of two shingle sets."""
    return len(a & b) / (len(a | b) or 1)


def fold_duplicates(doc_ids: Sequence[str], texts: Sequence[str], vectors: np.ndarray,
                    cosine: float = DUPLICATE_COSINE, overlap: float = DUPLICATE_OVERLAP) -> list[Collapsed]:
    """Keep the first of each group of near-identical passages from different documents
    (cosine >= ``cosine`` AND shingle overlap >= ``overlap``); the folded ones' documents
    are listed under it. ``vectors`` are L2-normalised rows in ranked order."""
    vectors = np.asarray(vectors, dtype=np.float32)
    similarity = vectors @ vectors.T if len(vectors) else np.zeros((0, 0))
    grams = [shingles(text) for text in texts]
    kept: list[Collapsed] = []
    for index, doc_id in enumerate(doc_ids):
        for group in kept:
            if (group.doc_id != doc_id and similarity[group.index, index] >= cosine
                    and text_overlap(grams[group.index], grams[index]) >= overlap):
                if doc_id not in group.also_in:
                    group.also_in.append(doc_id)
                break
        else:
            kept.append(Collapsed(index, doc_id))
    return kept
