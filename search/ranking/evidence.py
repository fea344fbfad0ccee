"""The sentences inside a hit that answer the query ("evidence spans").

Pure functions over plain strings and arrays: the caller supplies the passage text and
its start offset in the document, the query vector and one vector per sentence (from
ingest, see :func:`sentence_spans`; Matryoshka-truncated vectors work too, see
:func:`truncate`). Spans are ``[start, end]`` offsets into the *document* text, so
``document.text[start:end]`` is the quoted sentence.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from search.text.language import highlight_terms, term_matches
from search.text.sentences import sentence_spans
from search.types import SentenceVectors, truncate

MAX_SPANS = 3
#: A second or third sentence is kept only when its cosine is within this margin of the best.
RUNNER_UP_MARGIN = 0.05

Span = list[int]  # [start, end] document offsets


def stored_evidence(sentences: SentenceVectors, query_vector: np.ndarray, passage_start: int) -> list[Span]:
    """The answering sentences of a passage, from its stored sentence vectors, as document offsets, best first."""
    spans = [(passage_start + int(a), passage_start + int(b)) for a, b in sentences.spans]
    return evidence_spans(query_vector, sentences.vectors.astype(np.float32), spans, dimension=sentences.vectors.shape[1])


def evidence_spans(query_vector: np.ndarray, sentence_vectors: np.ndarray, spans: Sequence[tuple[int, int]],
                   limit: int = MAX_SPANS, margin: float = RUNNER_UP_MARGIN,
                   dimension: int | None = None) -> list[Span]:
    """Up to ``limit`` sentence spans, best first: the sentence closest in meaning to the
    query, then others within ``margin`` of it. Works across languages (a Chinese
    question marks the English sentence) because the vectors are multilingual."""
    if not spans:
        return []
    if len(spans) != len(sentence_vectors):
        raise ValueError("one vector per sentence span is needed")
    return ranked_spans(truncate(sentence_vectors, dimension) @ truncate(query_vector, dimension), spans,
                        limit, margin)


def ranked_spans(scores: np.ndarray, spans: Sequence[tuple[int, int]], limit: int = MAX_SPANS,
                 margin: float = RUNNER_UP_MARGIN) -> list[Span]:
    """Up to ``limit`` spans by score, best first: the best, then others within ``margin`` of it."""
    if not spans:
        return []
    order = np.argsort(-np.asarray(scores), kind="stable")
    best = float(scores[order[0]])
    return [list(spans[i]) for i in order[:limit] if i == order[0] or scores[i] >= best - margin]


def first_sentence(spans: Sequence[tuple[int, int]]) -> list[Span]:
    """Baseline: the passage's first sentence."""
    return [list(spans[0])] if spans else []


def overlap_ranked(query_tokens: Iterable[str], sentence_tokens: Sequence[Iterable[str]],
                   spans: Sequence[tuple[int, int]], limit: int = MAX_SPANS) -> list[Span]:
    """Baseline: sentences by the number of distinct query words they share (ties: earlier first)."""
    wanted = set(query_tokens)
    counts = [len(wanted & set(tokens)) for tokens in sentence_tokens]
    order = sorted(range(len(spans)), key=lambda i: (-counts[i], i))
    return [list(spans[i]) for i in order[:limit]]


def shared_words_evidence(query_tokens: Iterable[str], passage: str, start: int = 0,
                          limit: int = MAX_SPANS) -> list[Span]:
    """Fallback without vectors: the sentences holding the most distinct query words (the words the
    search page highlights: no stop words; ties kept, up to ``limit``), as document offsets; none
    when no sentence holds one."""
    matches = term_matches(passage, highlight_terms(query_tokens))
    spans = sentence_spans(passage, start)
    counts = [len({term for a, b, term in matches if s - start <= a and b <= e - start}) for s, e in spans]
    best = max(counts, default=0)
    return [list(span) for span, count in zip(spans, counts) if best and count == best][:limit]


def contains(span: Sequence[int], start: int, end: int) -> bool:
    """True when ``span`` covers the document range ``[start, end)``."""
    return span[0] <= start and end <= span[1]
