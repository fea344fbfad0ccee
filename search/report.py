"""Reports for pasting: questions with numbered, exact quotes and a reference list."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from search.backends.base import Backend
from search.language import detect_language
from search.retrieval import Hit, Retriever
from search.types import Lang

DEFAULT_TITLE = "Search report"


class ReportError(ValueError):
    """A report request that cannot be served (unknown document, bad span)."""


@dataclass(frozen=True)
class Reference:
    """A cited span: ``quote == document.text[start:end]``."""

    number: int
    doc_id: str
    title: str
    source: str
    start: int
    end: int
    lang: Lang
    quote: str

    @property
    def citation(self) -> str:
        return format_citation(self.number, self.title, self.source or self.doc_id, self.start, self.end)


@dataclass
class Section:
    heading: str
    references: list[Reference] = field(default_factory=list)


@dataclass
class Report:
    title: str
    sections: list[Section] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)

    def cite(self, doc_id: str, title: str, source: str, start: int, end: int, lang: Lang, quote: str) -> Reference:
        """The reference for a span, numbered on first use and shared afterwards."""
        for reference in self.references:
            if (reference.doc_id, reference.start, reference.end) == (doc_id, start, end):
                return reference
        reference = Reference(len(self.references) + 1, doc_id, title, source, start, end, lang, quote)
        self.references.append(reference)
        return reference

    def as_dict(self) -> dict[str, object]:
        def with_citation(reference: Reference) -> dict[str, object]:
            return {**asdict(reference), "lang": reference.lang.value, "citation": reference.citation}

        return {"title": self.title,
                "sections": [{"heading": s.heading, "references": [r.number for r in s.references]}
                             for s in self.sections],
                "references": [with_citation(r) for r in self.references],
                "markdown": render_markdown(self)}


def format_citation(number: int, title: str, source: str, start: int, end: int) -> str:
    """``[1] <title>, <source>, chars 120–480``."""
    return f"[{number}] {title}, {source}, chars {start}–{end}"


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
    passage = hit.passage
    return report.cite(passage.doc_id, passage.title, passage.source, passage.start, passage.end, passage.lang,
                       passage.text)


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
        section.references.append(report.cite(document.id, document.title, document.source, start, end,
                                              detect_language(quote), quote))
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
            lines += [_blockquote(reference.quote) + f" [{reference.number}]", ""]
    lines += ["## References", ""]
    for reference in report.references:
        lines.append(f"{reference.citation} — document `{reference.doc_id}` ({reference.lang.value})")
    return "\n".join(lines).rstrip() + "\n"
