"""Plain text and Markdown: UTF-8 only, binaries refused; Markdown headings become sections."""

from __future__ import annotations

import re

from search.text.language import has_visible_text
from search.loading.base import (KIND_NAMES, MARKDOWN_MEDIA_TYPE, TEXT_MEDIA_TYPE, DocumentError, first_line_title,
                                 lang_of, short_title, sniff)
from search.types import Document

MARKDOWN_SUFFIXES = (".md", ".markdown")
#: An ATX heading line: ``# Title`` .. ``###### Title``; :func:`heading_text` trims it. One way to
#: match any line (no quantifier can hand characters to another), so matching is linear: the former
#: ``[ \t]+(.+?)[ \t]*#*[ \t]*$`` tried every split of a run of spaces (cubic: 5 KB ran over a minute).
MARKDOWN_HEADING_RE = re.compile(r"^ {0,3}#{1,6}+[ \t]++([^\n]+)", re.MULTILINE)


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 text of ``data``; binary, PDF/ZIP or non-UTF-8 content raises :class:`DocumentError`."""
    kind = sniff(data)
    if kind != "other":  # e.g. a PDF whose first KiB happens to be valid UTF-8
        raise DocumentError(f"{name}: the content is {KIND_NAMES[kind]}, not text")
    if b"\x00" in data:
        raise DocumentError(f"{name}: binary file (contains NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DocumentError(f"{name}: not valid UTF-8 text ({error.reason} at byte {error.start})") from error
    return text.replace("\r\n", "\n").replace("\r", "\n")


def heading_text(line_rest: str) -> str:
    """A heading's text without the spaces and closing hashes around it (``Title ##`` -> ``Title``)."""
    return line_rest.rstrip(" \t").rstrip("#").rstrip(" \t")


def markdown_sections(text: str) -> tuple[tuple[int, str], ...]:
    """``(offset of the heading line, heading text)`` of each ATX heading with text, in order."""
    found = ((match.start(), heading_text(match.group(1))) for match in MARKDOWN_HEADING_RE.finditer(text))
    return tuple((offset, heading) for offset, heading in found if heading)


def text_document(doc_id: str, text: str, title: str | None = None, source: str = "",
                  markdown: bool = False) -> Document:
    """A document from plain text or Markdown; the title is the given one, else the first heading/line."""
    if not has_visible_text(text):
        raise DocumentError(f"{source or doc_id}: no text to index (only spaces or invisible characters)")
    sections = markdown_sections(text) if markdown else ()
    found = short_title(title) or (sections[0][1][:200] if sections else "")
    return Document(doc_id, found or first_line_title(text), source, text, lang=lang_of(text), sections=sections,
                    media_type=MARKDOWN_MEDIA_TYPE if markdown else TEXT_MEDIA_TYPE, title_guessed=not found)


def read_text(data: bytes, name: str, doc_id: str, title: str | None = None, source: str | None = None,
              markdown: bool = False) -> Document:
    return text_document(doc_id, decode_text(data, name), title=title,
                         source=name if source is None else source, markdown=markdown)
