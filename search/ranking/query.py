"""Query syntax, read as people write questions: "exact phrases" and -exclusions, as pure functions.

``parse_query('"30% faster" Shuibei -gold')`` -> ParsedQuery(text='30% faster Shuibei',
phrases=('30% faster',), excluded=('gold',)).

The rules (measured on both dev sets with natural questions that carry marks,
``docs/bench/marked/``):

- A phrase or an exclusion constrains only passages of its own script (Chinese when it holds a
  Chinese character, else English): a translation cannot contain the phrase, so passages of the
  other language rank by meaning exactly as if the marks were absent.
- Among the passages of its language, those holding a phrase come first, the others follow by
  meaning (people quote terms and error messages they half remember: a strict filter cost both@10
  on both dev sets' marked questions, docs/quality.md); an exclusion removes passages.
- The ranking text is the question with its quotation marks and exclusions deleted in place, so
  ``"测试版"包含什么？`` ranks like ``测试版包含什么？``.
- ASCII ``"`` and full-width ``＂`` mark phrases. Curly ``“…”`` mark phrases only in a query
  without Chinese (an English question typed on a phone); in Chinese writing they, ``「…」`` and
  ``『…』`` are ordinary punctuation. A quote left without its partner is punctuation too.
- ``-word`` is an exclusion only where it cannot be part of a token: after a space or at the
  start, outside quotes, followed by a letter (not ``--purge``, ``-1.5%``, ``x-ray``).

Phrases and excluded words are compared with the same normalisation as keyword search (NFKC
full-width, traditional -> simplified, lower case); a Chinese phrase matches as a contiguous
string, a word or number at a phrase's edge must sit on a word boundary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from search.errors import InvalidInput
from search.text.language import HAN_RE, comparable, fold
from search.types import Lang


class QuerySyntaxError(InvalidInput):
    """A malformed query; the retriever raises it as its QueryError (422 / CLI error)."""


@dataclass(frozen=True)
class ParsedQuery:
    text: str                   # what ranks: the question without its marks and exclusions
    phrases: tuple[str, ...]    # folded; each must occur in a passage of its own script
    excluded: tuple[str, ...]   # folded; none may occur in a passage of its own script
    written_terms: int = field(default=0, compare=False)  # phrases and exclusions as written, repeats counted

    @property
    def constrained(self) -> bool:
        return bool(self.phrases or self.excluded)

    def phrases_in(self, lang: Lang) -> tuple[str, ...]:
        """The phrases that constrain passages of ``lang``."""
        return tuple(phrase for phrase in self.phrases if script_of(phrase) == lang)


LANGUAGE_NAMES = {Lang.EN: "English", Lang.ZH: "Chinese"}
#: Every quotation mark deleted from the ranking text (operator or punctuation).
QUOTATION_MARKS = '"＂“”「」『』'
_OPERATOR_QUOTES = str.maketrans({"＂": '"'})
_CURLY_QUOTES = str.maketrans({"“": '"', "”": '"'})
#: a quoted phrase (``-"…"`` at a token start excludes it), an exclusion ``-word`` (a letter after
#: the minus, at a token start), any other token, or a quote inside a word.
_TOKEN_RE = re.compile(r'(?:(?<!\S)(?P<minus>-))?"(?P<phrase>[^"]*)"|(?<!\S)-(?P<word>[^\W\d_][^\s"]*)|[^\s"]+|"')
_DELETED_MARKS = str.maketrans("", "", QUOTATION_MARKS)


def script_of(term: str) -> Lang:
    """The passages a phrase or exclusion constrains: Chinese when it holds a Chinese character."""
    return Lang.ZH if HAN_RE.search(term) else Lang.EN


def _operator_quotes(query: str) -> str:
    """The query with every phrase-marking quote as ASCII ``"``; a quote without a partner is
    blanked out of the syntax (it stays punctuation of the ranking text)."""
    query = query.translate(_OPERATOR_QUOTES)
    if not HAN_RE.search(query):
        query = query.translate(_CURLY_QUOTES)
    if query.count('"') % 2:
        last = query.rindex('"')
        query = query[:last] + "\u201d" + query[last + 1:]  # a curly mark: punctuation, deleted from the text
    return query


def parse_query(query: str) -> ParsedQuery:
    """Split a question into ranking text, required phrases and excluded words/phrases."""
    phrases: list[str] = []
    excluded: list[str] = []

    def read(match: re.Match) -> str:
        """What a token leaves in the ranking text, noting its phrase or exclusion."""
        phrase, word = match.group("phrase"), match.group("word")
        if phrase is None and word is None:
            return match.group(0)
        negated = word is not None or match.group("minus") is not None
        term = fold(word) if word is not None else comparable(phrase)
        if term:
            (excluded if negated else phrases).append(term)
        return "" if negated else phrase

    ranking = _TOKEN_RE.sub(read, _operator_quotes(query or ""))
    text = " ".join(ranking.translate(_DELETED_MARKS).split())
    if not text:
        raise QuerySyntaxError("a query needs at least one word or phrase to search for, not only exclusions")
    return ParsedQuery(text, tuple(dict.fromkeys(phrases)), tuple(dict.fromkeys(excluded)),
                       len(phrases) + len(excluded))


def without_marks(query: str) -> str:
    """The question as if typed without its marks: quotation marks and exclusion minus signs deleted
    (the control of the marked-question benchmark)."""
    def read(match: re.Match) -> str:
        return next((group for group in (match.group("phrase"), match.group("word")) if group is not None),
                    match.group(0))

    return " ".join(_TOKEN_RE.sub(read, _operator_quotes(query)).translate(_DELETED_MARKS).split())


def _word_char(char: str) -> bool:
    """A letter or digit of a word that is not Chinese (Chinese has no word boundaries to respect)."""
    return char.isalnum() and not HAN_RE.match(char)


def _occurs(needle: str, haystack: str) -> bool:
    """Substring test; a word or number at a needle edge must sit on a word boundary (``"caf"``
    does not match "café")."""
    start = haystack.find(needle)
    while start != -1:
        end = start + len(needle)
        left_ok = not _word_char(needle[0]) or start == 0 or not _word_char(haystack[start - 1])
        right_ok = not _word_char(needle[-1]) or end == len(haystack) or not _word_char(haystack[end])
        if left_ok and right_ok:
            return True
        start = haystack.find(needle, start + 1)
    return False


def _spaced(text: str, terms: Iterable[str]) -> str:
    """``text`` with whitespace runs as one space when a term holds a space."""
    return " ".join(text.split()) if any(" " in term for term in terms) else text


def _own(terms: tuple[str, ...], lang: Lang | None) -> list[str]:
    """The terms that constrain a passage of ``lang`` (``None``: every term)."""
    return [term for term in terms if lang is None or script_of(term) == lang]


def holds_phrases(parsed: ParsedQuery, passage: str, lang: Lang | None, folded: bool = False) -> bool:
    """True when ``passage`` (of language ``lang``) holds every phrase of its script (``lang=None``:
    every phrase). ``folded``: the passage is already normalised with :func:`fold`."""
    phrases = _own(parsed.phrases, lang)
    text = _spaced(passage if folded else fold(passage), phrases) if phrases else ""
    return all(_occurs(phrase, text) for phrase in phrases)


def is_excluded(parsed: ParsedQuery, passage: str, lang: Lang | None, folded: bool = False) -> bool:
    """True when ``passage`` (of language ``lang``) holds an exclusion of its script."""
    excluded = _own(parsed.excluded, lang)
    text = _spaced(passage if folded else fold(passage), excluded) if excluded else ""
    return any(_occurs(term, text) for term in excluded)


def passage_matches(parsed: ParsedQuery, passage: str, lang: Lang | None, folded: bool = False) -> bool:
    """True when ``passage`` holds every phrase of its script and no exclusion of its script (the
    strict reading, used by the phrase benchmarks; the retriever ranks phrase holders first instead)."""
    text = passage if folded else fold(passage)
    return holds_phrases(parsed, text, lang, folded=True) and not is_excluded(parsed, text, lang, folded=True)


def unmatched_phrases(parsed: ParsedQuery, passages: Iterable[tuple[str, Lang]],
                      searched: Lang | None = None) -> list[str]:
    """Notices for the phrases that no passage of their language holds, among ``passages``
    (folded text, language): ``no English passage contains "x"`` (only phrases of the ``searched``
    language when a filter names one)."""
    passages = list(passages)
    notices = []
    for phrase in parsed.phrases:
        lang = script_of(phrase)
        if searched not in (None, lang):
            continue
        own = [_spaced(text, [phrase]) for text, passage_lang in passages if passage_lang == lang]
        if not any(_occurs(phrase, text) for text in own):
            notices.append(f'no {LANGUAGE_NAMES[lang]} passage contains "{phrase}"')
    return notices
