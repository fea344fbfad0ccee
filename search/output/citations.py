"""A search result as users see it (API and ``query --json``): quotes, highlights, citations.

No web framework here: the CLI and the API both build their JSON with :func:`search_response`.
Sources are shown without absolute server paths (see :func:`public_source`).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from pydantic import BaseModel

from search.text.language import highlight_spans, highlight_terms
from search.output.report import Report, Section, as_spans, evidence_quote, format_citation
from search.ranking.retriever import SearchResult
from search.types import Lang, Mode


class CitedHit(BaseModel):
    """A hit as users get it: the passage's fields, scores, exact quote, highlights and ready citation."""

    rank: int
    score: float
    doc_id: str
    chunk_no: int
    id: int | None
    start: int
    end: int
    text: str
    lang: Lang
    mixed: bool
    title: str
    source: str
    page: int | None = None
    page_end: int | None = None
    page_label: str | None = None
    section: str | None = None
    ocr: bool = False  # the text was read by OCR from a scan: check the quote against the page
    dense_score: float | None = None
    keyword_score: float | None = None
    more_in_doc: int = 0  # collapse=doc: other matching passages of the same document
    also_in: list[str] = []  # collapse=doc: documents holding a near-identical passage
    evidence: list[list[int]] = []  # [start, end] document offsets of the answering sentences, best first
    quote: str = ""  # exactly document.text[start:end]
    highlights: list[tuple[int, int]] = []  # [start, end) of query words in text
    citation: str = ""
    evidence_quote: str = ""  # the evidence sentences' exact text, in document order, joined by " … "
    evidence_citation: str = ""  # the citation of evidence_quote (its characters, not the passage's)


class SearchOut(BaseModel):
    query: str
    query_lang: Lang
    mode: Mode
    k: int
    offset: int
    took_ms: float
    results: list[CitedHit]
    notices: list[str] = []  # what quoted phrases and -exclusions did, e.g. 'no English passage contains "x"'


def public_source(source: str, root: Path | None = None) -> str:
    """``source`` without the server's folders: relative to ``root`` when inside it, else the file name.

    Non-path sources (``api:ID``, upload names, URLs) and relative paths are kept as they are.
    """
    if not source or not os.path.isabs(source):
        return source
    path = Path(source)
    if root is not None:
        try:
            return path.relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return path.name


def search_response(result: SearchResult, k: int, offset: int = 0, root: Path | None = None) -> SearchOut:
    """The JSON shape of a search result: every hit with its quote, highlights and citation."""
    terms = highlight_terms(result.tokens)
    results = []
    for hit in result.hits:
        passage = replace(hit.passage, source=public_source(hit.passage.source, root))
        evidence = as_spans(hit.evidence)
        results.append(CitedHit(**{**hit.as_dict(), "source": passage.source}, quote=passage.text,
                                highlights=highlight_spans(passage.text, terms),
                                citation=format_citation(hit.rank, passage),
                                evidence_quote=evidence_quote(passage, evidence) if evidence else "",
                                evidence_citation=format_citation(hit.rank, passage, evidence) if evidence else ""))
    return SearchOut(query=result.query, query_lang=result.query_lang, mode=result.mode, k=k, offset=offset,
                     took_ms=result.took_ms, results=results, notices=result.notices)


def public_report(report: Report, root: Path | None = None) -> Report:
    """The same report with every reference's source shown as :func:`public_source` shows it."""
    shown = {id(ref): replace(ref, passage=replace(ref.passage, source=public_source(ref.passage.source, root)))
             for ref in report.references}
    sections = [Section(section.heading, [shown[id(ref)] for ref in section.references]) for section in report.sections]
    return Report(report.title, sections, [shown[id(ref)] for ref in report.references])


def quoted_chars(report: Report) -> int:
    """Characters quoted by a report (each reference once)."""
    return sum(len(reference.quote) for reference in report.references)
