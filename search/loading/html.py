"""Web pages: the main content by trafilatura (title, date, headings as sections), else every text node.

trafilatura drops navigation, ads and footers; on pages where it finds too little (short
pages, unusual markup) every visible text node is kept instead (lxml's HTML parser, which
trafilatura uses too).
"""

from __future__ import annotations

import logging
import re

from search.text.language import has_visible_text
from search.loading.base import HTML_MEDIA_TYPE, DocumentError, first_line_title, lang_of, short_title
from search.types import Document

BLOCK_TAGS = frozenset(
    "p div br li ul ol tr table section article header footer h1 h2 h3 h4 h5 h6 pre blockquote dt dd title".split()
)
SKIPPED_TAGS = frozenset({"script", "style", "noscript", "template"})
#: Blank lines (with any spaces); a run of spaces is entered only at its start, so matching is linear.
BLANK_LINES_RE = re.compile(r"(?<![ \t])[ \t]*+\n[ \t\n]*\n")
#: trafilatura's text is used when it keeps at least this many characters (else the fallback's).
MIN_MAIN_CONTENT_CHARS = 200
#: Pages above this size skip trafilatura (its lxml tree costs tens of bytes per input byte).
MAX_TRAFILATURA_CHARS = 5_000_000

logging.getLogger("trafilatura").setLevel(logging.ERROR)


def _parsed(html: str):
    """The page's element tree by lxml's HTML parser (libxml2: linear, and tolerant of any markup;
    Python's html.parser is quadratic on unclosed ``<!--`` and raises on ``<![`` or a 4,400-digit
    ``&#`` reference), or None for a page with no elements."""
    import lxml.html
    from lxml import etree

    parser = lxml.html.HTMLParser(encoding="utf-8", no_network=True, remove_comments=True, remove_pis=True)
    try:
        return lxml.html.document_fromstring(html.encode("utf-8", "replace"), parser=parser)
    except etree.ParserError:  # "Document is empty"
        return None


def html_to_text(html: str) -> tuple[str, str]:
    """``(title, text)`` of an HTML page: tags dropped, line breaks at block elements, scripts and
    styles skipped, runs of blank lines collapsed."""
    from lxml import etree

    root = _parsed(html)
    if root is None:
        return "", ""
    parts: list[str] = []
    title: list[str] = []
    skipping = 0
    for event, element in etree.iterwalk(root, events=("start", "end")):
        tag = element.tag.lower() if isinstance(element.tag, str) else ""
        if event == "start":
            if tag in SKIPPED_TAGS:
                skipping += 1
            elif skipping:
                continue
            elif tag == "title":
                title.append(element.text or "")
            else:
                parts.extend(("\n" if tag in BLOCK_TAGS else "", element.text or ""))
            continue
        if tag in SKIPPED_TAGS:
            skipping -= 1
        elif skipping:
            continue
        elif tag in BLOCK_TAGS:
            parts.append("\n")
        if not skipping:
            parts.append(element.tail or "")
    text = BLANK_LINES_RE.sub("\n\n", "".join(parts))
    return " ".join("".join(title).split()), text.strip()


def _inline(element) -> str:
    return " ".join("".join(element.itertext()).split())


def main_content(html: str) -> tuple[str, str, str, tuple[tuple[int, str], ...]] | None:
    """``(title, date, text, sections)`` of the page's main content by trafilatura, or None."""
    if len(html) > MAX_TRAFILATURA_CHARS:
        return None
    try:
        import trafilatura
        from lxml import etree

        xml = trafilatura.extract(html, output_format="xml", with_metadata=True, include_tables=True,
                                  include_comments=False, include_images=False, deduplicate=False)
        if not xml:
            return None
        root = etree.fromstring(xml.encode("utf-8"))
    except Exception:  # noqa: BLE001 - any failure of the optional extractor means: use the fallback
        return None
    main = root.find("main")
    if main is None:
        return None
    lines: list[str] = []
    sections: list[tuple[int, str]] = []
    offset = 0

    def add(line: str, heading: bool = False) -> None:
        nonlocal offset
        if not line:
            return
        if heading:
            sections.append((offset, line))
        lines.append(line)
        offset += len(line) + 1

    for block in main:
        tag = block.tag if isinstance(block.tag, str) else ""
        if tag == "head":
            add(_inline(block), heading=True)
        elif tag == "list":
            for item in block.iter("item"):
                add(_inline(item))
        elif tag == "table":
            for row in block.iter("row"):
                add("\t".join(_inline(cell) for cell in row.iter("cell")).strip())
        elif tag:
            add(_inline(block))
    text = "\n".join(lines)
    return root.get("title") or "", root.get("date") or "", text, tuple(sections)


def html_document(doc_id: str, html: str, title: str | None = None, source: str = "") -> Document:
    """A document from an HTML page: trafilatura's main content when it finds enough, else all visible text."""
    fallback_title, fallback_text = html_to_text(html)
    found = main_content(html)
    if found and len(found[2].strip()) >= MIN_MAIN_CONTENT_CHARS:  # short pages: keep all their text
        page_title, _date, text, sections = found
        page_title = page_title or fallback_title
    else:
        page_title, text, sections = fallback_title, fallback_text, ()
    if not has_visible_text(text):
        raise DocumentError(f"{source or doc_id}: no text to index (only spaces or invisible characters)")
    found = short_title(title) or short_title(page_title)
    return Document(doc_id, found or first_line_title(text), source, text, lang=lang_of(text), sections=sections,
                    media_type=HTML_MEDIA_TYPE, title_guessed=not found)
