"""PDF: text per page by pypdfium2 (pdfminer.six for pages pdfium garbles), cleaned, with a page map.

Reading: pages are opened, read and closed one at a time (memory grows with the text,
not with the page objects), each page's text and the file's total capped (``max_page_chars``,
``max_text_chars``: pages sharing one huge compressed stream are a text bomb); the pages whose
text shows ``(cid:NNN)`` or U+FFFD are read again by pdfminer.six, in one pass, and the better
of the two kept.

Cleaning, measured on the Debian New Maintainers' Guide (EN and zh-CN):

* ligatures U+FB00–FB06 expanded (only those: no NFKC, quotes stay as printed);
* running headers/footers and bare page numbers dropped: lines at the top or bottom of a
  page whose shape (digits and roman numerals masked) repeats on at least half the pages;
* spaces between two Chinese characters (or Chinese punctuation) removed;
* a line wrapped inside a sentence joined to the next: with no space when either side is
  Chinese, by removing the hyphen of a word hyphenated at the line end, else with one
  space. A line counts as wrapped when it is nearly as wide as the document's full lines
  and does not end a sentence; headings, list items, code and short lines stay lines.

The document text is the cleaned pages joined (a blank line between pages unless a
sentence runs on); ``pages[i]`` is the offset where physical page ``i + 1`` starts.

Scans (``search.loading.ocr``). With ``ocr=auto`` a page is read by OCR when its text layer is
unusable: fewer than 40 visible characters on a page at least half covered by images, or more
``(cid:)``/U+FFFD marks than characters after both extractors. ``always`` reads every page by
OCR, ``never`` none. The page is rendered in grey at its scanned image's own resolution (150 dpi
without images; at most 2000 pixels a side, what the engine reads); an image on it declaring
more than ``max_image_pixels`` is refused before anything is drawn. OCR lines go through the
same cleaning as text-layer lines.
"""

from __future__ import annotations

import io
import re
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass

from search.loading.base import (DEFAULT_LIMITS, PDF_MEDIA_TYPE, DocumentError, LoadedFile, LoadLimits, Progress,
                                 lang_of, short_title, text_over_limit)
from search.loading.ocr import ENGINE_MAX_SIDE, Box, PageReader, ReadPage, check_pixels, locate_lines
from search.types import Document, OcrLine

#: pdfium is not thread-safe: one PDF is read at a time in this process.
_PDFIUM_LOCK = threading.Lock()

CJK = r"\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
CJK_CHAR_RE = re.compile(f"[{CJK}]")
#: Spaces between two CJK characters or CJK punctuation marks (pdfium's guesses from glyph gaps); a run
#: is entered only at its start and taken whole (U+3000 is both a space and CJK), so matching is linear.
CJK_SPACE_RE = re.compile(f"(?<=[{CJK}])(?<![ \u00a0\u3000])[ \u00a0\u3000]++(?=[{CJK}])")
LIGATURE_RE = re.compile("[\ufb00-\ufb06]")
BAD_TEXT_RE = re.compile(r"\(cid:\d+\)|\ufffd")
CID_RE = re.compile(r"\(cid:\d++\)")
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufeff]")
DIGITS_RE = re.compile(r"\d+")
PAGE_OF_RE = re.compile(r"#\s*(/|of)\s*#")
#: pdfium marks a hyphen it saw at a line end (a word broken across lines) with U+FFFE.
PDFIUM_LINE_HYPHEN = "\ufffe"
#: The mark inside a line, where pdfium joined the word itself.
JOINED_HYPHEN_RE = re.compile(f"{PDFIUM_LINE_HYPHEN}(?=\\w)")
ROMAN_TOKEN_RE = re.compile(r"(?<![^\W\d_])[ivxlcdm]+(?![^\W\d_])", re.IGNORECASE)
#: Characters that end a sentence (or introduce a block) at a line end: no join after them.
LINE_END_STOPS = frozenset(".!?:;。！？：；…")
#: Line starts that open a new block: bullets, shell prompts, comments, numbered headings. Runs are
#: taken whole and entered only at their start, so matching is linear wherever it starts.
BLOCK_START_RE = re.compile(r"[•◦▪‣●○■□\-–—*$#>]|(?<![\d.])(?:\d++|[A-Z])(?:\.\d++)*+[.)]?\s|(?:Chapter|Appendix|第)\s*+\w")
#: Dot leaders of a table-of-contents line (see :func:`is_toc_line`).
TOC_LEADER = "..."
#: Share of the full line width from which a line is taken as wrapped.
WRAPPED_SHARE = 0.8
#: Share of pages a header/footer shape must appear on to be dropped (at least 3 pages).
FURNITURE_SHARE = 0.5
EDGE_LINES = 2
#: ocr=auto: a page with fewer visible characters than this, at least this share covered by images, is a scan.
SCAN_MAX_CHARS = 40
SCAN_IMAGE_SHARE = 0.5
#: A page is rendered for OCR at the resolution of its largest image (within OCR_MIN_DPI..OCR_DPI_CAP), a page
#: without images at OCR_DPI; smaller when its longer side would pass what the engine reads.
OCR_DPI = 150
OCR_MIN_DPI = 100
OCR_DPI_CAP = 300
OCR_MAX_SIDE = ENGINE_MAX_SIDE


@dataclass(frozen=True)
class PdfText:
    """A PDF's cleaned text with its page map, labels, outline sections and title."""

    text: str
    pages: tuple[int, ...]
    page_labels: tuple[str, ...]
    sections: tuple[tuple[int, str], ...]
    title: str
    fallback_pages: tuple[int, ...] = ()  # 1-based pages read by pdfminer.six
    ocr_pages: tuple[int, ...] = ()  # 1-based pages read by OCR
    ocr_lines: tuple[OcrLine, ...] = ()
    ocr_seconds: tuple[float, ...] = ()  # OCR time of each page it read
    title_guessed: bool = False  # no title in the metadata: the first line stands in


def expand_ligatures(text: str) -> str:
    return LIGATURE_RE.sub(lambda match: unicodedata.normalize("NFKC", match.group()), text)


def display_width(line: str) -> int:
    """Width in half-width cells: a Chinese character counts two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in line)


def page_lines(raw: str) -> list[str]:
    """A page's raw text as lines: controls dropped, ligatures expanded, CJK spaces removed, blanks gone."""
    raw = expand_ligatures(raw.replace("\r\n", "\n").replace("\r", "\n"))
    raw = CONTROL_RE.sub("", raw)
    # pdfium joins some hyphenated words itself, leaving its hyphen mark inside the line: drop it
    raw = JOINED_HYPHEN_RE.sub("", raw)
    lines = (CJK_SPACE_RE.sub("", line).strip() for line in raw.split("\n"))
    return [" ".join(line.split(" ")) for line in lines if line]


def furniture_key(line: str) -> str:
    """A line's shape with numbers masked: running headers and footers share it across pages.

    ``Guide ii`` (front matter) and ``Guide 15 / 57`` (body) share the shape ``guide #``.
    """
    shape = ROMAN_TOKEN_RE.sub("#", DIGITS_RE.sub("#", line)).casefold()
    return PAGE_OF_RE.sub("#", shape)


def furniture(pages: list[list[str]]) -> set[str]:
    """Shapes of top/bottom lines repeating on at least half of the pages with text."""
    counts: Counter[str] = Counter()
    with_text = 0
    for lines in pages:
        if lines:
            with_text += 1
            counts.update({furniture_key(line) for line in lines[:EDGE_LINES] + lines[-EDGE_LINES:]})
    needed = max(3, FURNITURE_SHARE * with_text)
    return {key for key, count in counts.items() if count >= needed}


def drop_furniture(lines: list[str], shapes: set[str]) -> list[str]:
    """The page's lines without the repeating headers/footers at its edges."""
    start, end = 0, len(lines)
    while start < min(EDGE_LINES, end) and furniture_key(lines[start]) in shapes:
        start += 1
    while end > max(start, len(lines) - EDGE_LINES) and furniture_key(lines[end - 1]) in shapes:
        end -= 1
    return lines[start:end] if start < end else lines  # a page of nothing but "furniture" is content


def is_cjk(char: str) -> bool:
    return bool(CJK_CHAR_RE.match(char))


def _ends_with_dots(text: str, count: int) -> bool:
    """True when ``text`` ends with ``count`` dots, spaces allowed between and after them."""
    for _ in range(count):
        text = text.rstrip()
        if not text.endswith("."):
            return False
        text = text[:-1]
    return True


def is_toc_line(line: str) -> bool:
    """A table-of-contents line: dot leaders (three dots or more, spaces allowed between them), then
    a page number, optionally glued to a word (``Intro ..... 12``, ``. . . . 7``, ``....A-3``).

    The lines the regex ``(\\.\\s*){3,}\\S*\\d+$`` finds, in linear time: that regex retried every
    split of a run of dots (cubic: a line of 3,000 dots took 77 s).
    """
    if not line[-1:].isdecimal():
        return False
    word_start = len(line)
    while word_start and not line[word_start - 1].isspace():
        word_start -= 1
    word = line[word_start:]  # the page number and what is glued to it
    if TOC_LEADER in word[:-1]:
        return True
    dots = len(word) - len(word.lstrip("."))  # leaders that reach the word, continued before it
    return _ends_with_dots(line[:word_start], len(TOC_LEADER) - dots)


def joiner(previous: str, following: str, full_width: float) -> str | None:
    """How to join a line to the next when the first wraps inside a sentence, or None to keep the break.

    ``""`` (Chinese on either side, or a path/URL cut after ``/``), ``"-"`` (drop the hyphen
    of a hyphenated word) or ``" "``.
    """
    if not previous or not following or previous[-1] in LINE_END_STOPS:
        return None
    if is_toc_line(previous):
        return None
    if previous[-1] == PDFIUM_LINE_HYPHEN:
        return "-" if following[0].isalpha() else None
    if previous.endswith("/-") and not following[0].isspace():
        return "-"  # a URL broken after a slash, the break marked with a hyphen (DocBook/LaTeX)
    if display_width(previous) < WRAPPED_SHARE * full_width or BLOCK_START_RE.match(following):
        return None
    first = following[0]
    if not (first.isalnum() or first in "(\"'“‘’《「（"):
        return None
    if is_cjk(previous[-1]) or is_cjk(first):
        return ""
    if previous[-1] == "-" and len(previous) > 1 and previous[-2].isalpha() and first.islower():
        return "-"
    if previous[-1] == "/" and not first.isspace():
        return ""
    return " "


def join_wrapped(lines: list[str], full_width: float) -> str:
    """A page's lines with wrapped sentences joined (each decision looks at the physical line before)."""
    out: list[str] = []
    previous = ""
    for line in lines:
        how = joiner(previous, line, full_width) if out else None
        if how is None:
            out.append(line)
        else:
            out[-1] = (out[-1][:-1] if how == "-" else out[-1] + how) + line
        previous = line
    return "\n".join(out)


def full_line_width(pages: list[list[str]]) -> float:
    """The width of a full line: the 90th percentile of line widths (at least 20 cells)."""
    widths = sorted(display_width(line) for lines in pages for line in lines)
    return max(20.0, float(widths[int(0.9 * (len(widths) - 1))])) if widths else 20.0


def assemble(pages: list[list[str]]) -> tuple[str, tuple[int, ...]]:
    """Cleaned pages joined into one text, and the start offset of each page."""
    shapes = furniture(pages)
    kept = [drop_furniture(lines, shapes) for lines in pages]
    width = full_line_width(kept)
    parts: list[str] = []
    starts: list[int] = []
    length = 0
    previous_last = ""
    for lines in kept:
        text = join_wrapped(lines, width)
        if text and parts:
            how = joiner(previous_last, lines[0], width)
            if how == "-":
                parts[-1] = parts[-1][:-1]
                length -= 1
                separator = ""
            else:
                separator = "\n\n" if how is None else how
            parts.append(separator)
            length += len(separator)
        starts.append(length)
        if text:
            parts.append(text)
            length += len(text)
            previous_last = lines[-1]
    # a line-end hyphen mark left unjoined is a printed hyphen (same length: offsets hold)
    return "".join(parts).replace(PDFIUM_LINE_HYPHEN, "-"), tuple(starts)


def scanned_lines(page: ReadPage) -> list[tuple[str, Box]]:
    """A page read by OCR as cleaned lines (the text-layer rules of :func:`page_lines`) with their boxes."""
    return [(cleaned, line.box) for line in page.lines for cleaned in page_lines(line.text)]


def pdfminer_pages(data: bytes, indices: set[int], max_chars: int) -> dict[int, str]:
    """pdfminer.six's text of the pages at ``indices`` (0-based), in one pass over the file (a pass per
    page re-read every page before it: quadratic). Best effort: a page it fails on, or whose text is
    over ``max_chars``, is left out (with the pages after a failure)."""
    texts: dict[int, str] = {}
    try:
        from pdfminer.converter import TextConverter
        from pdfminer.layout import LAParams
        from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager
        from pdfminer.pdfpage import PDFPage

        resources = PDFResourceManager(caching=True)
        for index, page in zip(sorted(indices), PDFPage.get_pages(io.BytesIO(data), pagenos=indices)):
            output = io.StringIO()
            device = TextConverter(resources, output, laparams=LAParams())
            try:
                PDFPageInterpreter(resources, device).process_page(page)
            finally:
                device.close()
            if len(output.getvalue()) <= max_chars:
                texts[index] = output.getvalue()
    except Exception:  # noqa: BLE001 - the fallback is best effort
        pass
    return texts


def _open(data: bytes, name: str):
    import pypdfium2 as pdfium

    tail = data[-2048:]
    if b"%%EOF" not in tail:
        raise DocumentError(f"{name}: truncated or corrupt PDF (no %%EOF end marker)")
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as error:
        reason = str(error)
        if "password" in reason.lower():
            raise DocumentError(f"{name}: encrypted PDF (needs a password); decrypt it first") from error
        raise DocumentError(f"{name}: corrupt or unreadable PDF ({reason.rstrip('.')})") from error


def _labels(pdf, count: int) -> tuple[str, ...]:
    try:
        labels = [pdf.get_page_label(index) for index in range(count)]
    except Exception:  # noqa: BLE001 - labels are optional
        return ()
    if not any(labels):
        return ()
    return tuple(label or str(index + 1) for index, label in enumerate(labels))


def _outline(pdf, count: int, limit: int = 5000) -> list[tuple[int, str]]:
    """``(page index, title)`` of the PDF's bookmarks, in order."""
    found = []
    try:
        for number, bookmark in enumerate(pdf.get_toc(max_depth=8)):
            if number >= limit:
                break
            destination = bookmark.get_dest()
            index = destination.get_index() if destination is not None else None
            title = " ".join((bookmark.get_title() or "").split())
            if title and index is not None and 0 <= index < count:
                found.append((index, title))
    except Exception:  # noqa: BLE001 - a broken outline costs the sections, not the document
        return []
    return found


def _sections(text: str, starts: tuple[int, ...], outline: list[tuple[int, str]]) -> tuple[tuple[int, str], ...]:
    """Outline entries placed where their title stands on their page (else at the page start)."""
    sections = []
    for index, title in outline:
        begin = starts[index]
        end = starts[index + 1] if index + 1 < len(starts) else len(text)
        at = text.find(title, begin, end)
        sections.append((at if at >= 0 else begin, title))
    sections.sort(key=lambda item: item[0])
    return tuple(sections)


@dataclass(frozen=True)
class _PageRead:
    """One page as read: its text layer (or the better extractor's), or the image to OCR instead."""

    raw: str
    image: object | None  # a PIL image, rendered when the page is read by OCR


def _read_page(pdf, index: int, name: str, limits: LoadLimits) -> _PageRead:
    """A page's text layer (refused past ``max_page_chars``) and, when OCR should read it instead, its
    rendered image (hold the pdfium lock)."""
    try:
        page = pdf[index]
        try:
            textpage = page.get_textpage()
            try:
                if textpage.count_chars() > limits.max_page_chars:
                    raise DocumentError(f"{name}: page {index + 1} holds over {limits.max_page_chars:,} characters "
                                        f"of text (setting max_page_chars)")
                raw = textpage.get_text_range()
            finally:
                textpage.close()
            image = _render_for_ocr(page, index, name, limits) if _wants_ocr(limits.ocr, raw, page) else None
        finally:
            page.close()
    except DocumentError:
        raise
    except Exception as error:  # noqa: BLE001 - pdfium raises several types
        raise DocumentError(f"{name}: page {index + 1} cannot be read ({error})") from error
    return _PageRead(raw, image)


def _wants_ocr(mode: str, raw: str, page) -> bool:
    """Whether OCR reads this page: always, never, or (auto) when its text layer is unusable."""
    if mode != "auto":
        return mode == "always"
    bad = len(BAD_TEXT_RE.findall(raw))
    good = sum(1 for char in BAD_TEXT_RE.sub("", raw) if not char.isspace() and char != PDFIUM_LINE_HYPHEN)
    if bad > good:
        return True
    return good < SCAN_MAX_CHARS and _image_share(page) >= SCAN_IMAGE_SHARE


def _images(page) -> list:
    import pypdfium2.raw as pdfium_c

    return list(page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=4))


def _image_share(page) -> float:
    """The share of the page covered by its images (overlaps counted twice, at most 1)."""
    width, height = page.get_size()
    covered = 0.0
    for image in _images(page):
        left, bottom, right, top = image.get_bounds()
        covered += max(0.0, min(right, width) - max(left, 0.0)) * max(0.0, min(top, height) - max(bottom, 0.0))
    return min(1.0, covered / max(width * height, 1.0))


def _render_for_ocr(page, index: int, name: str, limits: LoadLimits):
    """The page in grey, at the resolution of its largest image (a scan is drawn pixel for pixel: resampling
    blurs the gaps between words), else at OCR_DPI; at most OCR_MAX_SIDE pixels a side. Images declaring
    more than ``max_image_pixels`` are refused before anything is drawn."""
    native, largest = OCR_DPI / 72, 0.0
    for image in _images(page):
        pixels_wide, pixels_high = image.get_px_size()
        check_pixels(name, f"an image on page {index + 1}", pixels_wide, pixels_high, limits.max_image_pixels)
        left, _, right, _ = image.get_bounds()
        if pixels_wide * pixels_high > largest and right - left > 1:
            native, largest = pixels_wide / (right - left), pixels_wide * pixels_high
    width, height = page.get_size()
    scale = min(max(native, OCR_MIN_DPI / 72), OCR_DPI_CAP / 72, OCR_MAX_SIDE / max(width, height, 1.0))
    check_pixels(name, f"page {index + 1} rendered for OCR", round(width * scale), round(height * scale),
                 limits.max_image_pixels)
    return page.render(scale=scale, grayscale=True).to_pil()


def extract_pdf(data: bytes, name: str, limits: LoadLimits = DEFAULT_LIMITS,
                progress: Progress | None = None) -> PdfText:
    """The cleaned text, page map, labels, sections and title of a PDF; bad PDFs raise DocumentError.

    pdfium is used under its lock one page at a time; OCR runs outside it.
    """
    with _PDFIUM_LOCK:
        pdf = _open(data, name)
    try:
        with _PDFIUM_LOCK:
            count = len(pdf)
        if count == 0:
            raise DocumentError(f"{name}: PDF has no pages")
        if count > limits.max_pages:
            raise DocumentError(f"{name}: {count:,} pages, over the page limit of {limits.max_pages:,} "
                                f"(setting max_pages)")
        raws: dict[int, str] = {}  # page index -> text layer (pages read from their text)
        garbled: dict[int, int] = {}  # page index -> marks of text pdfium could not decode
        scanned: dict[int, list[tuple[str, Box]]] = {}  # 1-based page -> lines read by OCR
        chars = done = 0

        def count_page(page_chars: int) -> None:
            nonlocal chars, done
            chars, done = chars + page_chars, done + 1
            if problem := text_over_limit(name, chars, limits):
                raise problem
            if progress is not None:
                progress(done, count)

        with PageReader(limits.ocr_engine) as reader:
            for index in range(count + 1):
                for number, page in reader.ready(wait_all=index == count):  # pages read meanwhile
                    scanned[number] = scanned_lines(page)
                    count_page(sum(len(line) for line, _ in scanned[number]))
                if index == count:
                    break
                with _PDFIUM_LOCK:
                    read = _read_page(pdf, index, name, limits)
                if read.image is not None:
                    reader.submit(index + 1, read.image, f"{name}: page {index + 1}")
                    continue
                raws[index] = read.raw
                if bad := len(BAD_TEXT_RE.findall(read.raw)):
                    garbled[index] = bad
                count_page(len(read.raw))
            seconds = reader.seconds
        with _PDFIUM_LOCK:
            labels = _labels(pdf, count)
            outline = _outline(pdf, count)
            metadata_title = short_title(pdf.get_metadata_value("Title") if hasattr(pdf, "get_metadata_value")
                                         else pdf.get_metadata_dict().get("Title"))
    finally:
        with _PDFIUM_LOCK:
            pdf.close()
    fallback = _read_garbled_again(data, raws, garbled, limits)
    pages = [page_lines(raws[index]) if index in raws else [line for line, _ in scanned[index + 1]]
             for index in range(count)]
    text, starts = assemble(pages)
    if not text.strip():
        raise DocumentError(f"{name}: {_why_empty(limits.ocr, bool(scanned))}")
    title = metadata_title or short_title(text.split("\n", 1)[0])
    return PdfText(text, starts, labels, _sections(text, starts, outline), title, tuple(fallback),
                   tuple(sorted(scanned)), locate_lines(text, starts, scanned), seconds, title_guessed=not metadata_title)


def _why_empty(mode: str, scanned: bool) -> str:
    if scanned:
        return "no text found (its pages were read by OCR)"
    if mode == "never":
        return "no text layer, and OCR is off (setting ocr=never)"
    return "no text layer, and no page image to read by OCR"


def _read_garbled_again(data: bytes, raws: dict[int, str], garbled: dict[int, int],
                         limits: LoadLimits) -> list[int]:
    """Pages pdfium garbled (``(cid:N)``, U+FFFD) read by pdfminer.six in one pass, the better text kept
    (in place in ``raws``, the ``(cid:N)`` marks dropped); returns the 1-based pages whose pdfminer
    text was kept."""
    kept = []
    others = pdfminer_pages(data, set(garbled), limits.max_page_chars) if garbled else {}
    for index, bad in garbled.items():
        other = others.get(index, "")
        if other.strip() and len(BAD_TEXT_RE.findall(other)) < bad:
            raws[index] = other
            kept.append(index + 1)
        raws[index] = CID_RE.sub("", raws[index])
    return kept


def read_pdf(data: bytes, name: str, doc_id: str, title: str | None = None, source: str | None = None,
             limits: LoadLimits = DEFAULT_LIMITS, progress: Progress | None = None) -> LoadedFile:
    """A PDF as a document, kept with its bytes and the OCR time of each page OCR read."""
    extracted = extract_pdf(data, name, limits, progress)
    document = Document(doc_id, short_title(title) or extracted.title, name if source is None else source,
                        extracted.text, lang=lang_of(extracted.text), pages=extracted.pages,
                        page_labels=extracted.page_labels, sections=extracted.sections, media_type=PDF_MEDIA_TYPE,
                        ocr_pages=extracted.ocr_pages, ocr_lines=extracted.ocr_lines,
                        title_guessed=not short_title(title) and extracted.title_guessed)
    return LoadedFile(document, data, extracted.ocr_seconds)


def page_of(document: Document, offset: int) -> int | None:
    """1-based physical page holding ``offset`` (None for documents without pages)."""
    from bisect import bisect_right

    if not document.pages:
        return None
    return max(1, bisect_right(document.pages, offset))
