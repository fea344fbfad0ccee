"""Query syntax: "exact phrases" and -exclusions, as pure functions.

``parse_query('"30% faster" Shuibei -gold')`` -> ParsedQuery(text='Shuibei',
phrases=('30% faster',), excluded=('gold',)). Phrases and excluded words are compared
with the same normalisation as keyword search (NFKC full-width, traditional ->
simplified, lower case); a Chinese phrase matches as a contiguous string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from search.language import normalize


class QuerySyntaxError(ValueError):
    """A malformed query; the retriever raises it as its QueryError (422 / CLI error)."""


@dataclass(frozen=True)
class ParsedQuery:
    text: str                   # what ranks (phrases included, exclusions removed)
    phrases: tuple[str, ...]    # normalised, each must occur in a passage
    excluded: tuple[str, ...]   # normalised, none may occur in a passage


_QUOTES = str.maketrans({"“": '"', "”": '"', "＂": '"', "「": '"', "」": '"'})
_TOKEN_RE = re.compile(r'(-?)"([^"]*)"|(\S+)')
_LATIN_EDGE = re.compile(r"[0-9a-z]")


def fold(text: str) -> str:
    """Normalisation shared by phrases, exclusions and passages: NFKC, simplified, lower case."""
    return normalize(text).lower()


def comparable(text: str) -> str:
    """Text as phrases are compared with it: folded, whitespace runs as one space."""
    return " ".join(fold(text).split())


def parse_query(query: str) -> ParsedQuery:
    """Split a query into ranking text, required phrases and excluded words/phrases."""
    query = (query or "").translate(_QUOTES)
    if query.count('"') % 2:
        raise QuerySyntaxError('unbalanced quote: close the "phrase" or remove the quote')
    words: list[str] = []
    phrases: list[str] = []
    excluded: list[str] = []
    for match in _TOKEN_RE.finditer(query):
        negated, phrase, word = match.group(1), match.group(2), match.group(3)
        if phrase is not None:
            folded = comparable(phrase)
            if not folded:
                raise QuerySyntaxError('empty phrase ""')
            if negated:
                excluded.append(folded)
            else:
                phrases.append(folded)
                words.append(phrase)
        elif word.startswith("-") and len(word) > 1 and not word.startswith("--"):
            excluded.append(fold(word[1:]))
        else:
            words.append(word)
    text = " ".join(words).strip()
    if not text:
        raise QuerySyntaxError("a query needs at least one word or phrase to search for, not only exclusions")
    return ParsedQuery(text, tuple(phrases), tuple(excluded))


def _occurs(needle: str, haystack: str) -> bool:
    """Substring test; a Latin word or number at a needle edge must sit on a word boundary."""
    start = haystack.find(needle)
    while start != -1:
        end = start + len(needle)
        left_ok = not _LATIN_EDGE.match(needle[0]) or start == 0 or not _LATIN_EDGE.match(haystack[start - 1])
        right_ok = not _LATIN_EDGE.match(needle[-1]) or end == len(haystack) or not _LATIN_EDGE.match(haystack[end])
        if left_ok and right_ok:
            return True
        start = haystack.find(needle, start + 1)
    return False


def passage_matches(parsed: ParsedQuery, passage: str, folded: bool = False) -> bool:
    """True when ``passage`` holds every phrase and none of the exclusions
    (``folded``: the passage is already normalised with :func:`fold`)."""
    if not parsed.phrases and not parsed.excluded:
        return True
    text = passage if folded else fold(passage)
    text = " ".join(text.split()) if any(" " in p for p in parsed.phrases + parsed.excluded) else text
    return all(_occurs(p, text) for p in parsed.phrases) and not any(_occurs(e, text) for e in parsed.excluded)
