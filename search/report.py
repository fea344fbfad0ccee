"""Reports for pasting: questions with numbered, exact quotes and a reference list."""

from __future__ import annotations

from dataclasses import dataclass, field

from search.backends.base import Backend
from search.language import detect_language
from search.retrieval import Hit, Retriever
from search.ingest import locate
from search.types import Passage

DEFAULT_TITLE = "Search report"


class ReportError(ValueError):
    """A report request that cannot be served (unknown document, bad span)."""


@dataclass(frozen=True)
class Reference:
    """A numbered, cited span: ``passage.text == document.text[passage.start:passage.end]``."""

    number: int
    passage: Passage

    @property
    def citation(self) -> str:
        return format_citation(self.number, self.passage)

    def as_dict(self) -> dict[str, object]:
        return {"number": self.number, **self.passage.as_dict(), "quote": self.passage.text,
                "citation": self.citation}


@dataclass
class Section:
    heading: str
    references: list[Reference] = field(default_factory=list)


@dataclass
class Report:
    title: str
    sections: list[Section] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)

    def cite(self, passage: Passage) -> Reference:
        """The reference for a span, numbered on first use and shared afterwards."""
        for reference in self.references:
            if (reference.passage.doc_id, reference.passage.start, reference.passage.end) == (
                    passage.doc_id, passage.start, passage.end):
                return reference
        reference = Reference(len(self.references) + 1, passage)
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


def format_citation(number: int, passage: Passage) -> str:
    """``[1] <title>, <source>, p. 12, chars 120–480`` (pages and section when known)."""
    parts = [passage.title, passage.source or passage.doc_id, page_reference(passage),
             f"§ {passage.section}" if passage.section else "", f"chars {passage.start}–{passage.end}"]
    return f"[{number}] " + ", ".join(part for part in parts if part)


def report_for_questions(retriever: Retriever, questions: list[str], k: int = 3,
                         title: str = DEFAULT_TITLE) -> Report:
    """Ask each question and quote its top ``k`` passages."""
    report = Report(title)
    for question in questions:
        section = Section(question)
        for hit in retriever.search(question, k=k).hits:
            section.references.append(_cite_hit(report, hit))
        report.sections.append(section)
    return report


def _cite_hit(report: Report, hit: Hit) -> Reference:
    return report.cite(hit.passage)


def report_for_passages(backend: Backend, passages: list[dict], title: str = DEFAULT_TITLE) -> Report:
    """Quote spans chosen by a person (``doc_id``, ``start``, ``end``, optional ``query``).

    Quotes are read again from the stored document, so they are exact.
    """
    report = Report(title)
    sections: dict[str, Section] = {}
    for passage in passages:
        document = backend.document(passage["doc_id"])
        if document is None:
            raise ReportError(f"unknown document: {passage['doc_id']!r}")
        start, end = passage["start"], passage["end"]
        if not 0 <= start < end <= len(document.text):
            raise ReportError(f"span {start}-{end} is outside document {document.id!r} ({len(document.text)} chars)")
        quote = document.text[start:end]
        heading = passage.get("query") or "Selected passages"
        section = sections.setdefault(heading, Section(heading))
        chosen = locate(Passage(document.id, -1, start, end, quote, detect_language(quote)), document)
        section.references.append(report.cite(chosen))
    report.sections = list(sections.values())
    return report


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
            lines += [_blockquote(reference.passage.text) + f" [{reference.number}]", ""]
    lines += ["## References", ""]
    for reference in report.references:
        lines.append(f"{reference.citation} — document `{reference.passage.doc_id}` ({reference.passage.lang.value})")
    return "\n".join(lines).rstrip() + "\n"
