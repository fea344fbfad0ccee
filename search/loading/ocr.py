"""OCR: the printed text of a page image, line by line in reading order, with each line's box.

Two engines, both offline (setting ``ocr_engine``; docs/ocr.md has their measurements):

* ``tesseract``: Debian's ``tesseract-ocr`` 5 with ``chi_sim`` and ``eng`` (``.ci/system-deps``),
  run as a command on each page with both languages, the Latin words of a Chinese page read again
  in English alone (``search.loading.tesseract``); its lines come from its TSV output.
  On the scanned maint-guide pages it made fewer errors in both languages and used less CPU.
* ``rapidocr``: RapidOCR (``rapidocr-onnxruntime``, Apache-2.0), the PP-OCRv4 Chinese/English
  detection and recognition models inside its wheel, run by onnxruntime; a Python dependency,
  so it is there wherever the project is installed, root or not. Loaded once per process.
* ``auto`` (default): Tesseract where it is installed with both languages, else RapidOCR.

Nothing is downloaded at run time. Tesseract reads several pages at once (:class:`PageReader`: one
single-threaded command per core, the next page rendered meanwhile); RapidOCR one at a time (one
engine per process, behind a lock).

Reading order. The engine finds text boxes (a visual line, or a piece of one when words stand
far apart). Boxes are deskewed by their median angle, then ordered by a recursive XY-cut:
a block is split in two at its widest vertical gutter (each side holding a few boxes), else at
its widest horizontal gap taller than a line, and the leaves are read top to bottom, boxes on
one visual line left to right (boxes that share their width are never on one visual line: the
boxes of two long lines of a tilted page overlap in height, not in place). Lines are then
cleaned and joined by the same rules as a PDF's text layer (``search.loading.pdf``): no spaces
between Chinese characters, wrapped lines joined, hyphenation rejoined.

Low-confidence text is kept: only what the engine cannot read at all is dropped (RapidOCR: a line
scored under 0.5, its own floor; Tesseract: a line whose words' mean confidence is under 0.3,
``search.loading.tesseract.MIN_LINE_SCORE``). Passages read by OCR say so (``Passage.ocr``).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from statistics import median
from typing import Callable, Iterator, Sequence

import numpy as np

import search.loading.tesseract as tesseract
from search.loading.base import DocumentError
from search.types import OcrLine

#: Box of a line as fractions of the page image: ``(x0, y0, x1, y1)``, origin top left.
Box = tuple[float, float, float, float]
#: How a user sets OCR (``--ocr``, ``BISEARCH_OCR``): only pages without usable text, every page, or none.
OCR_MODES = ("auto", "always", "never")
#: Tesseract commands run at once (one page each, one thread each): the cores, at most this many.
TESSERACT_MAX_WORKERS = 4
#: The engine reads images of at most this many pixels a side (RapidOCR's max_side_len).
ENGINE_MAX_SIDE = 2000
#: A column gutter is at least this many line heights wide; each column holds at least this many boxes.
COLUMN_GAP_LINES = 1.2
COLUMN_MIN_BOXES = 3
#: A block is cut into row bands at gaps at least this many line heights tall.
ROW_GAP_LINES = 0.9
#: Two boxes are on one visual line when their heights overlap by at least this share.
SAME_LINE_OVERLAP = 0.5

_engine = None
_engine_lock = threading.Lock()
_page_listener: Callable[[], None] | None = None


def listen_for_pages(listener: Callable[[], None] | None) -> None:
    """Call ``listener`` as each page is handed to OCR (the reader's child process tells its caller,
    which allows the file ``ocr_page_seconds`` more: search/loading/isolated.py)."""
    global _page_listener
    _page_listener = listener


@dataclass(frozen=True)
class ReadLine:
    """A visual line read by OCR: its text and its box on the page (fractions of the image)."""

    text: str
    box: Box


@dataclass(frozen=True)
class ReadPage:
    """A page image's lines in reading order."""

    lines: tuple[ReadLine, ...]


@dataclass(frozen=True)
class _Piece:
    """A text box: its text, its deskewed bounds (for ordering) and its page box."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    box: Box

    @property
    def height(self) -> float:
        return self.y1 - self.y0


def _rapidocr(image) -> list:
    """RapidOCR's ``[quad, text, score]`` boxes (the engine is loaded once; its models are package files)."""
    global _engine
    if _engine is None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as error:
            raise RuntimeError(f"the OCR engine cannot be loaded ({error}); pip install rapidocr-onnxruntime") from error
        _engine = RapidOCR(use_cls=False)  # the angle classifier flipped good lines: 3x the errors (docs/ocr.md)
    with _engine_lock:  # one engine per process, one page at a time
        found, _ = _engine(np.asarray(image.convert("RGB")))
    return found or []


#: The OCR engines a user can pick (setting ``ocr_engine``): each gives ``[quad, text, score]`` boxes.
ENGINES = {"rapidocr": _rapidocr, "tesseract": tesseract.read}


def engine_for(setting: str) -> str:
    """The engine a setting names; ``auto``: Tesseract where it is installed (the more accurate and faster of
    the two on scanned pages, docs/ocr.md), else RapidOCR (always installed: a Python dependency)."""
    if setting != "auto":
        return setting
    return "tesseract" if tesseract.installed() else "rapidocr"


def read_image(image, name: str, engine: str = "auto") -> ReadPage:
    """OCR one page image (a PIL image, any mode): its lines in reading order, with their boxes.

    An image larger than the engine reads (ENGINE_MAX_SIDE pixels a side) is shrunk first, in its own
    mode, so a big scan never becomes a three-channel copy at full size."""
    if max(image.size) > ENGINE_MAX_SIDE:
        image = image.copy()
        image.thumbnail((ENGINE_MAX_SIDE, ENGINE_MAX_SIDE))
    width, height = image.size
    try:
        found = ENGINES[engine_for(engine)](image)
    except RuntimeError as error:
        raise DocumentError(f"{name}: {error}") from error
    return ReadPage(tuple(reading_order(found, width, height)))


def ocr_workers(engine: str) -> int:
    """Pages read at once: Tesseract one command per core (at most TESSERACT_MAX_WORKERS), RapidOCR one."""
    if engine_for(engine) != "tesseract":
        return 1
    return max(1, min(len(os.sched_getaffinity(0)), TESSERACT_MAX_WORKERS))


class PageReader:
    """Page images read by OCR side by side (:func:`ocr_workers`), handed back in the order given.

    ``submit`` a page, then take what is ready from :meth:`ready`; at most ``workers`` pages are
    queued or read at once (``ready`` waits for the oldest one beyond that), so a long scan holds a
    few rendered pages, never all. ``seconds`` is the wall time of the reading shared evenly among
    the pages read: what a page costs the ingest, with the pages overlapping.
    """

    def __init__(self, engine: str = "auto"):
        self.engine = engine
        self.workers = ocr_workers(engine)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ocr")
        self._pending: deque[tuple[int, Future]] = deque()
        self._busy_since: float | None = None
        self._busy = 0.0
        self._pages = 0

    def __enter__(self) -> "PageReader":
        return self

    def __exit__(self, *exc) -> None:
        for _, future in self._pending:
            future.cancel()
        self._pool.shutdown(wait=True)

    def submit(self, key: int, image, name: str) -> None:
        if self._busy_since is None:
            self._busy_since = time.perf_counter()
        if _page_listener is not None:
            _page_listener()
        self._pending.append((key, self._pool.submit(read_image, image, name, self.engine)))

    def ready(self, wait_all: bool = False) -> Iterator[tuple[int, ReadPage]]:
        """Read pages in the order submitted: those done, the oldest beyond ``workers``, or (``wait_all``) all."""
        while self._pending and (wait_all or len(self._pending) > self.workers or self._pending[0][1].done()):
            key, future = self._pending.popleft()
            page = future.result()
            self._pages += 1
            if not self._pending:
                self._busy += time.perf_counter() - self._busy_since
                self._busy_since = None
            yield key, page

    @property
    def seconds(self) -> tuple[float, ...]:
        """Each page's share of the wall time pages were being read."""
        return (round(self._busy / self._pages, 3),) * self._pages if self._pages else ()


def reading_order(found: Sequence, width: int, height: int) -> list[ReadLine]:
    """The engine's ``[quad, text, score]`` boxes as visual lines in reading order."""
    quads = [(np.asarray(quad, dtype=np.float64).reshape(4, 2), str(text).strip()) for quad, text, *_ in found]
    quads = [(quad, text) for quad, text in quads if text]
    if not quads:
        return []
    angle = _skew([quad for quad, _ in quads])
    pieces = [_piece(quad, text, angle, width, height) for quad, text in quads]
    line_height = median(piece.height for piece in pieces) or 1.0
    return [line for block in _blocks(pieces, line_height) for line in _lines(block)]


def _skew(quads: list[np.ndarray]) -> float:
    """The median angle (radians) of the long boxes' top edges: the page's tilt."""
    angles = [math.atan2(quad[1, 1] - quad[0, 1], quad[1, 0] - quad[0, 0]) for quad in quads
              if np.hypot(*(quad[1] - quad[0])) > 3 * np.hypot(*(quad[3] - quad[0]))]
    return median(angles) if angles else 0.0


def _piece(quad: np.ndarray, text: str, angle: float, width: int, height: int) -> _Piece:
    cos, sin = math.cos(-angle), math.sin(-angle)
    xs = quad[:, 0] * cos - quad[:, 1] * sin
    ys = quad[:, 0] * sin + quad[:, 1] * cos
    box = (max(0.0, quad[:, 0].min() / width), max(0.0, quad[:, 1].min() / height),
           min(1.0, quad[:, 0].max() / width), min(1.0, quad[:, 1].max() / height))
    return _Piece(text, float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()),
                  tuple(round(float(value), 4) for value in box))


def _halves(pieces: list[_Piece], axis: str, min_gap: float) -> list[list[_Piece]]:
    """Pieces split at their widest gap along ``axis`` (``x``: a gutter, ``y``: a space between rows) when
    it is at least ``min_gap``; else one group."""
    low, high = (lambda p: p.x0, lambda p: p.x1) if axis == "x" else (lambda p: p.y0, lambda p: p.y1)
    ordered = sorted(pieces, key=low)
    best_gap, best_at, reach = min_gap, None, high(ordered[0])
    for position, piece in enumerate(ordered[1:], start=1):
        if low(piece) - reach >= best_gap:
            best_gap, best_at = low(piece) - reach, position
        reach = max(reach, high(piece))
    return [ordered] if best_at is None else [ordered[:best_at], ordered[best_at:]]


def _blocks(pieces: list[_Piece], line_height: float) -> list[list[_Piece]]:
    """Recursive XY-cut: columns left to right (each holding a few boxes), else rows top to bottom at the
    widest gap taller than a line, down to leaf blocks."""
    if len(pieces) > 1:
        columns = _halves(pieces, "x", COLUMN_GAP_LINES * line_height)
        if len(columns) > 1 and all(len(column) >= COLUMN_MIN_BOXES for column in columns):
            return [block for column in columns for block in _blocks(column, line_height)]
        rows = _halves(pieces, "y", ROW_GAP_LINES * line_height)
        if len(rows) > 1:
            return [block for row in rows for block in _blocks(row, line_height)]
    return [pieces]


def _lines(block: list[_Piece]) -> list[ReadLine]:
    """A leaf block's boxes as visual lines: top to bottom, boxes of one line left to right."""
    lines: list[list[_Piece]] = []
    for piece in sorted(block, key=lambda p: (p.y0 + p.y1) / 2):
        if lines:
            top, bottom = min(p.y0 for p in lines[-1]), max(p.y1 for p in lines[-1])
            overlap = min(bottom, piece.y1) - max(top, piece.y0)
            if overlap >= SAME_LINE_OVERLAP * min(piece.height, bottom - top) and all(
                    _side_by_side(piece, other) for other in lines[-1]):
                lines[-1].append(piece)
                continue
        lines.append([piece])
    return [_line(sorted(line, key=lambda p: p.x0)) for line in lines]


def _side_by_side(piece: _Piece, other: _Piece) -> bool:
    """Whether two boxes stand beside each other: they share less width than SAME_LINE_OVERLAP of the shorter
    one's height. Two lines one above the other never do, however tall a tilted page makes their boxes."""
    shared = min(piece.x1, other.x1) - max(piece.x0, other.x0)
    return shared < SAME_LINE_OVERLAP * min(piece.height, other.height)


def _line(pieces: list[_Piece]) -> ReadLine:
    box = (min(p.box[0] for p in pieces), min(p.box[1] for p in pieces),
           max(p.box[2] for p in pieces), max(p.box[3] for p in pieces))
    return ReadLine(" ".join(piece.text for piece in pieces), box)


def locate_lines(text: str, starts: Sequence[int], pages: dict[int, list[tuple[str, Box]]]) -> tuple[OcrLine, ...]:
    """Where each cleaned OCR line stands in the assembled ``text``: ``pages`` maps a 1-based page to
    its ``(cleaned line, box)`` pairs in order. Lines dropped by the cleaning (running headers) or
    changed by a join past recognition are left out."""
    located: list[OcrLine] = []
    for page, lines in sorted(pages.items()):
        cursor = starts[page - 1]
        end = starts[page] if page < len(starts) else len(text)
        for line, box in lines:
            at = text.find(line, cursor, end)
            size = len(line)
            if at < 0 and line.endswith("-"):
                at, size = text.find(line[:-1], cursor, end), size - 1
            if at < 0:
                continue
            located.append(OcrLine(at, at + size, page, box))
            cursor = at + size
    return tuple(located)


def check_pixels(name: str, what: str, width: int, height: int, limit: int) -> None:
    """Refuse an image (or a page to render) of more than ``limit`` pixels, before it is decoded."""
    if width * height > limit:
        raise DocumentError(f"{name}: {what} is {width:,} × {height:,} pixels, over the limit of {limit:,} pixels "
                            f"(setting max_image_pixels)")
