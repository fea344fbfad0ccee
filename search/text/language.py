"""Script detection, Chinese normalisation and keyword tokenisation (jieba)."""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import lru_cache
from typing import Iterable

import jieba
from jieba.analyse.tfidf import KeywordExtractor
import opencc

from search.types import Lang


HAN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
LATIN_WORD_RE = re.compile(r"[A-Za-z\u00c0-\u024f]+")
WORD_CHAR_RE = re.compile(r"\w", re.UNICODE)
#: One Latin word carries about as much meaning as this many Han characters.
HAN_PER_LATIN_WORD = 1.5
#: Share of one script above which a text counts as written in that script alone (not mixed).
DOMINANT_SHARE = 0.8

jieba.setLogLevel(logging.WARNING)


def has_visible_text(text: str) -> bool:
    """True when ``text`` has a character that is not a space, control or format (zero-width) character."""
    return any(unicodedata.category(char)[0] not in "CZ" for char in text)


def han_share(text: str) -> float | None:
    """Fraction of the text's content that is Chinese, or None when it has neither script."""
    han = len(HAN_RE.findall(text))
    latin = len(LATIN_WORD_RE.findall(text)) * HAN_PER_LATIN_WORD
    if han + latin == 0:
        return None
    return han / (han + latin)


def detect_language(text: str) -> Lang:
    """The dominant language by script: ``zh`` when at least half the content is Chinese, else ``en``."""
    return Lang.ZH if (han_share(text) or 0.0) >= 0.5 else Lang.EN


def is_mixed(text: str) -> bool:
    """True when both scripts carry real weight (each more than ``1 - DOMINANT_SHARE`` of the content)."""
    share = han_share(text)
    return share is not None and 1 - DOMINANT_SHARE < share < DOMINANT_SHARE


@lru_cache(maxsize=1)
def _to_simplified_converter() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def normalize(text: str) -> str:
    """NFKC (full-width to half-width) and traditional to simplified Chinese."""
    text = unicodedata.normalize("NFKC", text)
    if HAN_RE.search(text):
        text = _to_simplified_converter().convert(text)
    return text


def fold(text: str) -> str:
    """Normalisation shared by phrases, exclusions and passages: NFKC, simplified, lower case."""
    return normalize(text).lower()


def comparable(text: str) -> str:
    """Text as phrases are compared with it: folded, whitespace runs as one space."""
    return " ".join(fold(text).split())


def keyword_tokens(text: str) -> list[str]:
    """Keyword tokens for BM25: jieba search-mode words, lower-cased, punctuation dropped."""
    words = jieba.cut_for_search(normalize(text))
    return [word.lower() for word in (w.strip() for w in words) if word and WORD_CHAR_RE.search(word)]


#: Words not worth highlighting: jieba's English stop words plus Chinese function words.
HIGHLIGHT_STOP_WORDS = frozenset(KeywordExtractor.STOP_WORDS) | frozenset(
    "的 了 是 在 和 与 及 或 吗 呢 吧 啊 也 都 就 而 之 其 这 那 有 个 为 于 以 被 把 对 从 到 比 "
    "什么 怎么 怎样 如何 哪些 哪个 多少 为什么 是否 可以 能否 需要 应该 "
    "how what which who why when does do did".split()
)


def highlight_terms(tokens: Iterable[str]) -> frozenset[str]:
    """The query's keyword tokens (from :func:`keyword_tokens`) worth highlighting: no stop words, and
    no single Chinese character (jieba's search mode cuts 可, 新… out of longer words: they would
    speckle a Chinese page) unless the query is that one character. BM25 keeps every token."""
    tokens = list(tokens)
    if len(tokens) == 1:
        return frozenset(tokens)
    return frozenset(token for token in tokens if token not in HIGHLIGHT_STOP_WORDS
                     and not (len(token) == 1 and HAN_RE.match(token)))


def _folded_with_positions(text: str) -> tuple[str, list[int] | None]:
    """``text`` normalised like keyword tokens (NFKC, simplified, lower case), and for each
    of its characters the offset in ``text`` it came from (None: offsets are unchanged)."""
    if text.isascii():
        return text.lower(), None
    simplified = _to_simplified_converter().convert(text) if HAN_RE.search(text) else text
    if len(simplified) != len(text):
        simplified = text
    whole = unicodedata.normalize("NFKC", simplified).lower()
    if len(whole) == len(text) and not any(map(unicodedata.combining, simplified)):
        return whole, None
    folded, positions = [], []
    for offset, char in enumerate(simplified):
        normal = unicodedata.normalize("NFKC", char).lower()
        folded.append(normal)
        positions.extend([offset] * len(normal))
    return "".join(folded), positions


@lru_cache(maxsize=4096)
def _term_pattern(term: str) -> re.Pattern:
    """Chinese terms match anywhere; Latin words and numbers only as whole words."""
    edge = r"(?<![0-9a-z])" if term[0].isascii() and term[0].isalnum() else ""
    tail = r"(?![0-9a-z])" if term[-1].isascii() and term[-1].isalnum() else ""
    return re.compile(edge + re.escape(term) + tail)


def term_matches(text: str, terms: frozenset[str]) -> list[tuple[int, int, str]]:
    """``(start, end, term)`` for every occurrence of the query ``terms`` in ``text``, in order.

    Matching runs on a normalised copy (full-width, traditional characters, case), and
    the spans are mapped back, so they always index the original ``text``.
    """
    folded, positions = _folded_with_positions(text)
    found = sorted((match.start(), match.end(), term) for term in terms for match in _term_pattern(term).finditer(folded))
    if positions is not None:
        found = [(positions[start], positions[end - 1] + 1, term) for start, end, term in found]
    return found


def highlight_spans(text: str, terms: frozenset[str]) -> list[tuple[int, int]]:
    """Merged ``[start, end)`` spans of ``text`` where the query ``terms`` occur (see :func:`term_matches`)."""
    merged: list[tuple[int, int]] = []
    for start, end, _ in term_matches(text, terms):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
