"""Tesseract: a page read with Chinese and English, then its Latin words on Chinese lines again in English alone.

Debian's ``tesseract-ocr`` 5 with ``chi_sim`` and ``eng`` (``.ci/system-deps``), run as a command with
one thread (``OMP_THREAD_LIMIT=1``: pages run side by side instead, ``search.loading.ocr.PageReader``).

1. The page is read with ``chi_sim+eng`` (its language is not known before it is read).
2. On a page that is not mostly Latin, the runs of Latin words (consecutive words of a line without a
   Chinese character) holding a word read with less than REREAD_BELOW confidence are cut out of the
   page, stacked one under another into one small image, and read with ``eng`` alone, one command:
   the mixed model misreads English and code set among Chinese (``l`` as ``L`` or ``t``, ``/`` as
   ``y``, spaces inside paths), the English one far less.
   A mostly Latin page is left as read: ``eng`` alone makes the same errors there (docs/ocr.md).
3. A run takes the English words that lie on it (each English word goes to the first-pass word its box
   overlaps most), unless their mean confidence is lower than the run's own.

Lines are Tesseract's own (block, paragraph, line), boxed by their words. A line whose words' mean
confidence is under MIN_LINE_SCORE is dropped: what the engine cannot read at all (specks, a line cut
by the page edge). Tesseract scores correct but noisy text low (a list item's file name at 0.28 on
the scanned maint-guide), so the floor is lower than RapidOCR's 0.5 (measured: docs/ocr.md).
"""

from __future__ import annotations

import functools
import io
import os
import subprocess
import unicodedata
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

#: Every page is read with both languages; Latin runs on Chinese pages again with LATIN_LANGUAGE.
LANGUAGES = "chi_sim+eng"
LATIN_LANGUAGE = "eng"
TIMEOUT_S = 600
#: A line whose words' mean confidence is under this is dropped.
MIN_LINE_SCORE = 0.3
#: A page whose characters are at least this share in Latin words is not read a second time.
LATIN_PAGE_SHARE = 0.8
#: Only runs holding a word read with less confidence than this are read again (the rest are read well).
REREAD_BELOW = 0.8
#: Runs are cut out with this margin (pixels) and stacked this far apart (and from the sheet's edges).
RUN_MARGIN = 1
RUN_SPACING = 24
#: Tesseract's page segmentation modes: automatic (a page), one uniform block of text (the stacked runs).
PAGE = 3
BLOCK = 6

Bounds = tuple[int, int, int, int]


@dataclass(frozen=True)
class Word:
    """A word as Tesseract reads it: its line (block, paragraph, line), box in pixels, confidence (0 to 1)."""

    line: tuple[int, int, int]
    left: int
    top: int
    right: int
    bottom: int
    confidence: float
    text: str

    @property
    def latin(self) -> bool:
        """No wide (Chinese, full-width) character, and an ASCII letter or digit."""
        return (not any(unicodedata.east_asian_width(char) in "WF" for char in self.text)
                and any(char.isascii() and char.isalnum() for char in self.text))

    def overlap(self, other: "Word") -> int:
        """The area the two boxes share, in pixels."""
        return (max(0, min(self.right, other.right) - max(self.left, other.left))
                * max(0, min(self.bottom, other.bottom) - max(self.top, other.top)))

    def moved(self, dx: int, dy: int) -> "Word":
        return replace(self, left=self.left + dx, right=self.right + dx, top=self.top + dy, bottom=self.bottom + dy)


@functools.lru_cache(maxsize=1)
def installed() -> bool:
    """Whether the ``tesseract`` command runs here with the languages it needs (``chi_sim``, ``eng``)."""
    try:
        listed = subprocess.run(["tesseract", "--list-langs"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return set(LANGUAGES.split("+")) <= set(listed.stdout.decode("utf-8", "replace").split())


def read(image) -> list:
    """A page image's lines as ``[quad, text, score]`` (the engine contract of ``search.loading.ocr``)."""
    words = run(image, LANGUAGES)
    return lines_of(reread_latin(image, words))


def run(image, languages: str, mode: int = PAGE) -> list[Word]:
    """The words ``tesseract stdin stdout -l LANGUAGES --psm MODE tsv`` finds on a PIL image, in its order."""
    buffer = io.BytesIO()
    image.convert("L").save(buffer, "PNG")
    try:
        done = subprocess.run(["tesseract", "stdin", "stdout", "-l", languages, "--psm", str(mode), "tsv"],
                              input=buffer.getvalue(), capture_output=True, timeout=TIMEOUT_S, check=False,
                              env={**os.environ, "OMP_THREAD_LIMIT": "1"})
    except FileNotFoundError:
        raise RuntimeError("tesseract is not installed (apt-get install tesseract-ocr tesseract-ocr-chi-sim), "
                           "or set ocr_engine=rapidocr") from None
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"tesseract took more than {TIMEOUT_S} s on one page") from None
    if done.returncode != 0:
        reason = " ".join(done.stderr.decode("utf-8", "replace").split())[:200]
        raise RuntimeError(f"tesseract failed ({reason or done.returncode})")
    return words_of(done.stdout.decode("utf-8", "replace"))


def words_of(tsv: str) -> list[Word]:
    """The words of Tesseract's TSV output (its level-5 rows that hold text)."""
    words = []
    for row in tsv.splitlines()[1:]:
        cells = row.split("\t")
        if len(cells) == 12 and cells[0] == "5" and cells[11].strip():
            left, top, width, height = (int(cell) for cell in cells[6:10])
            words.append(Word((int(cells[2]), int(cells[3]), int(cells[4])), left, top, left + width, top + height,
                              max(0.0, float(cells[10])) / 100, cells[11].strip()))
    return words


def latin_share(words: Sequence[Word]) -> float:
    """The share of the words' characters that stand in Latin words."""
    total = sum(len(word.text) for word in words)
    return sum(len(word.text) for word in words if word.latin) / total if total else 0.0


def latin_runs(words: Sequence[Word]) -> list[list[int]]:
    """The runs of consecutive Latin words on one line, as indices into ``words``."""
    runs: list[list[int]] = []
    for index, word in enumerate(words):
        if not word.latin:
            continue
        if runs and runs[-1][-1] == index - 1 and words[index - 1].line == word.line:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


def reread_latin(image, words: list[Word]) -> list[Word]:
    """``words`` with the doubtful Latin runs (a word under REREAD_BELOW) of a page that is not mostly Latin
    read again in English."""
    runs = [members for members in latin_runs(words)
            if min(words[index].confidence for index in members) < REREAD_BELOW]
    if not runs or latin_share(words) >= LATIN_PAGE_SHARE:
        return words
    return merge(words, runs, read_runs(image, [bounds(words[index] for index in members) for members in runs]))


def bounds(words: Iterable[Word]) -> Bounds:
    """The box around some words: ``(left, top, right, bottom)``."""
    words = list(words)
    return (min(word.left for word in words), min(word.top for word in words),
            max(word.right for word in words), max(word.bottom for word in words))


def read_runs(image, boxes: Sequence[Bounds]) -> list[Word]:
    """The regions ``boxes`` of the page read with LATIN_LANGUAGE: cut out (RUN_MARGIN around), stacked
    RUN_SPACING apart into one sheet read as one block of text, each word found put back on the page."""
    from PIL import Image

    crops = [(max(0, left - RUN_MARGIN), max(0, top - RUN_MARGIN),
              min(image.width, right + RUN_MARGIN), min(image.height, bottom + RUN_MARGIN))
             for left, top, right, bottom in boxes]
    sheet = Image.new("L", (max(right - left for left, _, right, _ in crops) + 2 * RUN_SPACING,
                            sum(bottom - top for _, top, _, bottom in crops) + RUN_SPACING * (len(crops) + 1)), 255)
    rows: list[tuple[int, Bounds]] = []  # each crop's top on the sheet
    y = RUN_SPACING
    for crop in crops:
        sheet.paste(image.crop(crop).convert("L"), (RUN_SPACING, y))
        rows.append((y, crop))
        y += crop[3] - crop[1] + RUN_SPACING
    placed = []
    for word in run(sheet, LATIN_LANGUAGE, BLOCK):
        middle = (word.top + word.bottom) / 2
        for top, crop in rows:
            if top <= middle < top + crop[3] - crop[1]:
                placed.append(word.moved(crop[0] - RUN_SPACING, crop[1] - top))
                break
    return placed


def merge(words: list[Word], runs: list[list[int]], english: list[Word]) -> list[Word]:
    """``words`` with each run replaced by the English words that lie on it, left to right, unless those
    are read with a lower mean confidence. An English word lies on the run word its box overlaps most."""
    run_of = {index: number for number, members in enumerate(runs) for index in members}
    taken: dict[int, list[Word]] = {}
    for new in english:
        area, index = max(((new.overlap(words[index]), index) for index in run_of), default=(0, -1))
        if area > 0:
            taken.setdefault(run_of[index], []).append(new)
    out: list[Word] = []
    for index, word in enumerate(words):
        number = run_of.get(index)
        if number is None or number not in taken:
            out.append(word)
        elif index == runs[number][0]:
            first = [words[member] for member in runs[number]]
            second = sorted(taken[number], key=lambda found: found.left)
            better = mean_confidence(second) >= mean_confidence(first)
            out.extend([replace(found, line=word.line) for found in second] if better else first)
    return out


def mean_confidence(words: Sequence[Word]) -> float:
    return sum(word.confidence for word in words) / len(words)


def lines_of(words: Sequence[Word]) -> list:
    """The words grouped by line as ``[quad, text, score]``, lines scored under MIN_LINE_SCORE left out."""
    lines: dict[tuple[int, int, int], list[Word]] = {}
    for word in words:
        lines.setdefault(word.line, []).append(word)
    found = []
    for members in lines.values():
        score = mean_confidence(members)
        if score >= MIN_LINE_SCORE:
            left, top, right, bottom = bounds(members)
            found.append([[[left, top], [right, top], [right, bottom], [left, bottom]],
                          " ".join(word.text for word in members), score])
    return found
