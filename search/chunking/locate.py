"""Where a passage sits in its document: page range (paged documents) and nearest heading."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import replace

from search.types import Document, Passage


def locate(passage: Passage, document: Document) -> Passage:
    """The passage with its page range (paged documents), whether OCR read it (any of its pages) and
    its nearest heading (sectioned ones)."""
    located = passage
    if document.pages:
        first = bisect_right(document.pages, passage.start)
        last = bisect_right(document.pages, passage.end - 1)
        label = document.page_labels[first - 1] if len(document.page_labels) >= first else None
        ocr = any(first <= page <= last for page in document.ocr_pages)
        located = replace(located, page=first, page_end=last, page_label=label, ocr=ocr)
    if document.sections:
        starts = [start for start, _ in document.sections]
        index = bisect_right(starts, passage.start) - 1
        if index >= 0:
            located = replace(located, section=document.sections[index][1])
    return replace(located, title=document.title, source=document.source)


#: Between a document's title and a passage's section in :func:`passage_title`.
TITLE_SEPARATOR = " › "


def passage_title(passage: Passage, document_titled: bool = True) -> str:
    """What the model is told a located passage belongs to: its document's title and, when it has one
    that says more, its section heading ("Title › Section"). ``document_titled`` False: the document's
    title is a guess (its first line, :attr:`Document.title_guessed`), left out."""
    title = " ".join(passage.title.split()) if document_titled else ""
    section = " ".join((passage.section or "").split())
    if not section or section.casefold() in title.casefold():
        return title
    if not title or title.casefold() in section.casefold():
        return section
    return f"{title}{TITLE_SEPARATOR}{section}"
