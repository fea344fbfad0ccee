"""Split mixed English/Chinese text into sentences and pack them into token-bounded passages.

Every span is a pair of character offsets into the document text, so
``text[passage.start:passage.end] == passage.text`` holds by construction.
"""

from __future__ import annotations

import re
from typing import Protocol

from search.language import HAN_RE, detect_language, is_mixed
from search.types import Passage

#: Chinese sentence enders (and the semicolon, which closes clauses as long as sentences).
CJK_TERMINALS = "。！？；…"
CLOSERS = "”’」』）)】\"'"
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc eg ie inc ltd co corp no fig approx dept est "
    "jan feb mar apr jun jul aug sep sept oct nov dec mt ft vol ed al".split()
)
# Linear on any input: runs are matched possessively and a Latin terminator run can only start
# where the previous character is not one (a run of 32k dots once cost O(n²) backtracking).
_TERMINAL_RE = re.compile(
    rf"([{CJK_TERMINALS}]++[{CLOSERS}]*+)|((?<![.!?])[.!?]++[{CLOSERS}]*+(?=\s|$))|(\n[ \t]*+\n\s*+)|(\n)"
)
_WORD_BEFORE_RE = re.compile(r"([A-Za-z][A-Za-z.]*)$")
ABBREVIATION_WINDOW = 32  # characters before a period searched for the word it ends (keeps splitting linear)


class Tokenizer(Protocol):
    """The slice of a Hugging Face fast tokenizer the chunker needs."""

    def __call__(self, text: str | list[str], **kwargs): ...


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the period at ``dot`` ends an abbreviation such as "Dr." or "U.S."."""
    match = _WORD_BEFORE_RE.search(text, max(0, dot - ABBREVIATION_WINDOW), dot)
    if not match:
        return False
    word = match.group(1)
    if "." in word:  # initialisms: U.S., e.g., i.e.
        return True
    return word.lower() in ABBREVIATIONS or (len(word) == 1 and word.isupper())


_LIST_NUMBER_RE = re.compile(r"(?:^|\n)[ \t]{0,4}\d{1,3}$")


def _is_list_number(text: str, dot: int) -> bool:
    """True when the period at ``dot`` closes a list number at a line start ("1. ")."""
    return _LIST_NUMBER_RE.search(text, max(0, dot - 8), dot) is not None


def _is_boundary(text: str, match: re.Match[str]) -> bool:
    """Decide whether a candidate terminal is a real sentence boundary."""
    if match.group(2):
        return not (match.group(2)[0] == "." and (_is_abbreviation(text, match.start())
                                                  or _is_list_number(text, match.start())))
    if match.group(4):
        return _line_break_is_boundary(text, match.start())
    return True


#: A line that starts a list item: bullets, "1." / "1)" / "(1)" / "一、" numbering.
_LIST_ITEM_RE = re.compile(r"[ \t]*+(?:(?:[-*•·+▪◦]|\d{1,3}[.)]|\(\d{1,3}\))(?:[ \t]|$)"
                           r"|\d{1,3}、|[（(]?[一二三四五六七八九十]{1,3}[、)）])")
#: A command or code line: a shell prompt, or indented by a tab or four spaces.
_CODE_LINE_RE = re.compile(r"(?:[$%#>] |\t| {4})")
#: Characters that end a line which is a sentence (or clause) rather than a heading.
_NOT_HEADING_END = frozenset(".!?,;:。！？；，、：…-–—(/\"'“‘")
HEADING_MAX_CHARS = 60
#: Words a heading does not end with (a line ending in one is wrapped mid-sentence).
_CONTINUATION_WORDS = frozenset("a an the and or but nor of to in on at by for with from as that which "
                                "is are was were be using via into than then if".split())


def _is_heading(line: str, before: str | None) -> bool:
    """A short title-like line opening a paragraph: starts with a capital or a digit, no
    closing punctuation, and the paragraph break (or the text start) right before it."""
    line = line.strip()
    return (0 < len(line) <= HEADING_MAX_CHARS and (line[0].isupper() or line[0].isdigit())
            and line[-1] not in _NOT_HEADING_END and line.rsplit(None, 1)[-1] not in _CONTINUATION_WORDS
            and (before is None or not before.strip()))


def _line_break_is_boundary(text: str, at: int) -> bool:
    """Whether the single line break at ``at`` ends a sentence.

    A hard wrap inside a sentence is not a boundary, in English as in Chinese; list
    items, command/code lines and headings stay apart. Each line is examined a bounded
    number of times, so splitting stays linear.
    """
    line_start = text.rfind("\n", 0, at) + 1
    next_end = text.find("\n", at + 1)
    line, following = text[line_start:at], text[at + 1:next_end if next_end != -1 else len(text)]
    if not following.strip() or not line.strip():
        return True
    if _LIST_ITEM_RE.match(following) or _CODE_LINE_RE.match(following) or _CODE_LINE_RE.match(line):
        return True
    if HAN_RE.search(line) or HAN_RE.search(following):
        return False  # Chinese lines are wrapped anywhere, headings included
    if following.lstrip()[:1].isupper():
        before = None
        if line_start:
            previous_start = text.rfind("\n", 0, line_start - 1) + 1
            before = text[previous_start:line_start - 1]
        return _is_heading(line, before)
    return False


def _trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The span without surrounding whitespace, or None if only whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans of ``text`` (whitespace between sentences is left out)."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _TERMINAL_RE.finditer(text):
        if not _is_boundary(text, match):
            continue
        span = _trimmed(text, start, match.end())
        if span:
            spans.append(span)
        start = match.end()
    tail = _trimmed(text, start, len(text))
    if tail:
        spans.append(tail)
    return spans


class Chunker:
    """Pack sentences into chunks of at most ``max_tokens`` model tokens with overlap.

    Token counts come from tokenising the exact chunk text, so the limit holds for the
    text the model will see (the model's own prompt is added on top of it).
    """

    def __init__(self, tokenizer: Tokenizer, max_tokens: int = 256, overlap_sentences: int = 1):
        if max_tokens < 8:
            raise ValueError("max_tokens must be at least 8")
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap_sentences = overlap_sentences

    def count_tokens(self, text: str) -> int:
        """Number of model tokens in ``text`` (no special tokens)."""
        return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def _split_long(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """Cut an over-long span at token boundaries into spans within the limit."""
        offsets = self.tokenizer(text[start:end], add_special_tokens=False, return_offsets_mapping=True,
                                 verbose=False)["offset_mapping"]  # over-long on purpose: no warning
        spans: list[tuple[int, int]] = []
        first = 0
        while first < len(offsets):
            size = self.max_tokens
            while True:
                last = min(first + size, len(offsets)) - 1
                piece_end = end if last == len(offsets) - 1 else start + offsets[last][1]
                span = _trimmed(text, start + (offsets[first][0] if first else 0), piece_end)
                if span is None or size == 1 or self.count_tokens(text[span[0]:span[1]]) <= self.max_tokens:
                    break
                size -= max(1, size // 16)
            if span:
                spans.append(span)
            first += size
        return spans

    def _pieces(self, text: str) -> list[tuple[int, int]]:
        """Sentence spans, with sentences over the limit cut into smaller spans."""
        pieces: list[tuple[int, int]] = []
        for start, end in split_sentences(text):
            if self.count_tokens(text[start:end]) <= self.max_tokens:
                pieces.append((start, end))
            else:
                pieces.extend(self._split_long(text, start, end))
        return pieces

    def _fits(self, text: str, group: list[tuple[int, int]], piece: tuple[int, int]) -> bool:
        return not group or self.count_tokens(text[group[0][0]:piece[1]]) <= self.max_tokens

    def _group(self, text: str, pieces: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
        """Greedy packing; each new group repeats the last sentences of the previous one."""
        groups: list[list[tuple[int, int]]] = []
        current: list[tuple[int, int]] = []
        for piece in pieces:
            if not self._fits(text, current, piece):
                groups.append(current)
                keep = current[-self.overlap_sentences:] if self.overlap_sentences and len(current) > 1 else []
                current = keep if self._fits(text, keep, piece) else []
            current.append(piece)
        if current:
            groups.append(current)
        return groups

    def chunk(self, text: str, doc_id: str = "") -> list[Passage]:
        """Passages covering every sentence of ``text``, in order."""
        passages = []
        for number, group in enumerate(self._group(text, self._pieces(text))):
            start, end = group[0][0], group[-1][1]
            body = text[start:end]
            passages.append(Passage(doc_id, number, start, end, body, detect_language(body), is_mixed(body)))
        return passages
