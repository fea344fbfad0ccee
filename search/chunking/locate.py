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
