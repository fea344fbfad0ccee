"""Sentences of mixed English/Chinese text, as character spans (linear on any input).

Used by the chunker (passages are packed from sentences), the model (one pooled vector per
sentence) and evidence (the answering sentences of a hit).
"""

from __future__ import annotations

import re

from search.text.language import HAN_RE

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
#: The run of letters and periods at the end of a text (entered only at its start: linear).
_WORD_BEFORE_RE = re.compile(r"(?<![A-Za-z.])[A-Za-z.]++$")
ABBREVIATION_WINDOW = 32  # characters before a period searched for the word it ends (keeps splitting linear)


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the period at ``dot`` ends an abbreviation such as "Dr." or "U.S."."""
    match = _WORD_BEFORE_RE.search(text[max(0, dot - ABBREVIATION_WINDOW):dot])
    word = match.group().lstrip(".") if match else ""
    if not word:
        return False
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
_LIST_ITEM_RE = re.compile(r"(?<![ \t])[ \t]*+(?:(?:[-*•·+▪◦]|\d{1,3}[.)]|\(\d{1,3}\))(?:[ \t]|$)"
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


def trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
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
        span = trimmed(text, start, match.end())
        if span:
            spans.append(span)
        start = match.end()
    tail = trimmed(text, start, len(text))
    if tail:
        spans.append(tail)
    return spans




#: A sentence ending in a colon introduces what follows: at most this many more spans join it ...
INTRODUCED_SPANS = 4
#: ... while the unit stays within this many characters.
UNIT_MAX_CHARS = 400
_INTRODUCING_ENDS = (":", "：")


def _starts_block_line(text: str, at: int) -> bool:
    """Whether the span at ``at`` begins a list item or a command/code line."""
    line_start = text.rfind("\n", 0, at) + 1
    line = text[line_start:text.find("\n", at) if "\n" in text[at:] else len(text)]
    return bool(_LIST_ITEM_RE.match(line) or _CODE_LINE_RE.match(line))


def sentence_spans(passage: str, start: int = 0) -> list[tuple[int, int]]:
    """Document offsets of the evidence units of a passage that begins at ``start``: its sentences,
    except that a sentence ending in ``:`` or ``：`` and the block it introduces (the next sentence,
    then the list items or command lines after it) are one unit, so evidence quotes the command a
    line announces, not only the announcement."""
    spans = split_sentences(passage)
    units: list[tuple[int, int]] = []
    index = 0
    while index < len(spans):
        first, end = spans[index]
        index += 1
        if passage[first:end].endswith(_INTRODUCING_ENDS):
            taken = 0
            while (index < len(spans) and taken < INTRODUCED_SPANS and spans[index][1] - first <= UNIT_MAX_CHARS
                   and (taken == 0 or _starts_block_line(passage, spans[index][0]))):
                end = spans[index][1]
                index += 1
                taken += 1
        units.append((start + first, start + end))
    return units
