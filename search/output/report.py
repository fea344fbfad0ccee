"""Reports for pasting: questions with numbered, exact quotes and a reference list.

A reference quotes its passage's evidence sentences by default (``quote="evidence"``; the
whole passage with ``quote="passage"`` or when a hit has no evidence), and every quote is
read again from the stored document when the report is exported (:func:`verify_quotes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

from search.backends.base import Backend
from search.errors import Conflict, InvalidInput
from search.text.language import detect_language
from search.ranking.retriever import Hit, Retriever
from search.chunking.locate import locate
from search.types import Passage

DEFAULT_TITLE = "Search report"
QuoteKind = Literal["evidence", "passage"]
Spans = tuple[tuple[int, int], ...]  # [start, end) document offsets, inside one passage
EVIDENCE_GAP = " … "  # between two evidence sentences of one quote


class ReportError(InvalidInput):
    """A report request that cannot be served (unknown document, bad span)."""


class StaleQuoteError(Conflict, ReportError):
    """A quote no longer matches the stored document (it changed after the search)."""


def as_spans(evidence: Sequence[Sequence[int]] | None) -> Spans:
    """Evidence spans as a hashable tuple of ``(start, end)`` pairs."""
    return tuple((int(start), int(end)) for start, end in evidence or ())


def evidence_quote(passage: Passage, evidence: Spans) -> str:
    """The evidence sentences' exact text in document order, joined by :data:`EVIDENCE_GAP`."""
    return EVIDENCE_GAP.join(passage.text[start - passage.start:end - passage.start] for start, end in sorted(evidence))


@dataclass(frozen=True)
class Reference:
    """A numbered, cited span: ``passage.text == document.text[passage.start:passage.end]``;
    with ``evidence``, the quote is those sentences (document offsets inside the passage)."""

    number: int
    passage: Passage
    evidence: Spans = ()

    @property
    def quote(self) -> str:
        return evidence_quote(self.passage, self.evidence) if self.evidence else self.passage.text

    @property
    def citation(self) -> str:
        return format_citation(self.number, self.passage, self.evidence)

    def as_dict(self) -> dict[str, object]:
        return {"number": self.number, **self.passage.as_dict(), "evidence": [list(s) for s in self.evidence],
                "quote": self.quote, "citation": self.citation}


@dataclass
class Section:
    heading: str
    references: list[Reference] = field(default_factory=list)


@dataclass
class Report:
    title: str
    sections: list[Section] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)

    def cite(self, passage: Passage, evidence: Spans = ()) -> Reference:
        """The reference for a quote, numbered on first use and shared afterwards."""
        for reference in self.references:
            if (reference.passage.doc_id, reference.passage.start, reference.passage.end, reference.evidence) == (
                    passage.doc_id, passage.start, passage.end, evidence):
                return reference
        reference = Reference(len(self.references) + 1, passage, evidence)
        self.references.append(reference)
        return reference

    def as_dict(self) -> dict[str, object]:
        return {"title": self.title,
                "sections": [{"heading": s.heading, "references": [r.number for r in s.references]}
                             for s in self.sections],
                "references": [reference.as_dict() for reference in self.references],
                "markdown": render_markdown(self)}


def page_reference(passage: Passage) -> str:
    """``p. 12`` / ``pp. 12–13`` (with the printed label when the file defines one), or ``""``."""
    if passage.page is None:
        return ""
    label = f" (printed {passage.page_label})" if passage.page_label and passage.page_label != str(passage.page) else ""
    if passage.page_end and passage.page_end != passage.page:
        return f"pp. {passage.page}–{passage.page_end}{label}"
    return f"p. {passage.page}{label}"


def format_citation(number: int, passage: Passage, evidence: Spans = ()) -> str:
    """``[1] <title>, <source>, p. 12, chars 120–480`` (pages and section when known); with
    ``evidence`` the characters are those of the quoted sentences (``chars 130–190, 220–260``)."""
    chars = ", ".join(f"{start}–{end}" for start, end in sorted(evidence or ((passage.start, passage.end),)))
    parts = [passage.title, passage.source or passage.doc_id, page_reference(passage),
             f"§ {passage.section}" if passage.section else "", f"chars {chars}"]
    return f"[{number}] " + ", ".join(part for part in parts if part)


def report_for_questions(retriever: Retriever, questions: list[str], k: int = 3,
                         title: str = DEFAULT_TITLE, quote: QuoteKind = "evidence") -> Report:
    """Ask each question and quote its top ``k`` passages (their evidence sentences by default)."""
    report = Report(title)
    for question in questions:
        section = Section(question)
        for hit in retriever.search(question, k=k).hits:
            section.references.append(_cite_hit(report, hit, quote))
        report.sections.append(section)
    return report


def _cite_hit(report: Report, hit: Hit, quote: QuoteKind) -> Reference:
    return report.cite(hit.passage, as_spans(hit.evidence) if quote == "evidence" else ())


def report_for_passages(backend: Backend, passages: list[dict], title: str = DEFAULT_TITLE,
                        quote: QuoteKind = "evidence") -> Report:
    """Quote spans chosen by a person (``doc_id``, ``start``, ``end``, optional ``query``,
    ``evidence`` spans inside the passage and the ``text`` they saw, checked against the store).

    Quotes are read again from the stored document, so they are exact.
    """
    report = Report(title)
    sections: dict[str, Section] = {}
    for passage in passages:
        document = backend.document(passage["doc_id"])
        if document is None:
            raise ReportError(f"unknown document: {passage['doc_id']!r}")
        start, end = passage["start"], passage["end"]
        text = document.text[start:end]
        if passage.get("text") is not None and passage["text"] != text:
            raise StaleQuoteError(_changed(document.id, start, end))
        if not 0 <= start < end <= len(document.text):
            raise ReportError(f"span {start}-{end} is outside document {document.id!r} ({len(document.text)} chars)")
        evidence = as_spans(passage.get("evidence")) if quote == "evidence" else ()
        if any(not start <= a < b <= end for a, b in evidence):
            raise ReportError(f"evidence spans must lie inside the passage {start}-{end}")
        heading = passage.get("query") or "Selected passages"
        section = sections.setdefault(heading, Section(heading))
        chosen = locate(Passage(document.id, -1, start, end, text, detect_language(text)), document)
        section.references.append(report.cite(chosen, evidence))
    report.sections = list(sections.values())
    return report


def verify_quotes(report: Report, backend: Backend) -> Report:
    """The report, once every quote is checked against the stored document text.

    Raises :class:`StaleQuoteError` when a document was deleted or changed since its passage
    was found (a re-ingest between the search and the export), so a report never quotes text
    its citation does not point at.
    """
    documents = {}
    for reference in report.references:
        passage = reference.passage
        if passage.doc_id not in documents:
            documents[passage.doc_id] = backend.document(passage.doc_id)
        document = documents[passage.doc_id]
        if document is None or document.text[passage.start:passage.end] != passage.text:
            raise StaleQuoteError(_changed(passage.doc_id, passage.start, passage.end))
    return report


def _changed(doc_id: str, start: int, end: int) -> str:
    return (f"document {doc_id!r} changed since it was searched: chars {start}–{end} no longer hold "
            "the quoted text; search again")


def _blockquote(text: str) -> str:
    return "\n".join("> " + line if line.strip() else ">" for line in text.strip().splitlines())


def render_markdown(report: Report) -> str:
    """The report as Markdown: sections of numbered quotes, then the references."""
    lines = [f"# {report.title}", ""]
    for number, section in enumerate(report.sections, start=1):
        lines += [f"## {number}. {section.heading}", ""]
        if not section.references:
            lines += ["_No passages found._", ""]
        for reference in section.references:
            lines += [_blockquote(reference.quote) + f" [{reference.number}]", ""]
    lines += ["## References", ""]
    for reference in report.references:
        lines.append(f"{reference.citation} — document `{reference.passage.doc_id}` ({reference.passage.lang.value})")
    return "\n".join(lines).rstrip() + "\n"
