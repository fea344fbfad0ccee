"""Request and response bodies of the HTTP API (pydantic), and the text checks they share."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from search.output.citations import CitedHit, SearchOut
from search.ranking.evidence import MAX_SPANS
from search.output.report import DEFAULT_TITLE, QuoteKind
from search.text.language import has_visible_text
from search.ranking.budget import MAX_EVIDENCE_HITS, MAX_K, MAX_OFFSET as MAX_SEARCH_OFFSET, MAX_QUERY_CHARS
from search.types import Lang, Mode

MAX_DOC_ID_CHARS = 200
MAX_OFFSET = 10**9  # character offsets and paging never go beyond this (SQLite and JSON stay in range)
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET)]

__all__ = ["CitedHit", "SearchOut", "SearchIn", "DocumentIn", "IngestIn", "PassageIn", "ReportIn", "JobOut",
           "has_visible_text", "check_doc_id", "MAX_DOC_ID_CHARS", "MAX_OFFSET"]


def check_doc_id(doc_id: str) -> str:
    """A document id: 1–200 characters, no control/format characters (U+007F, U+200B, U+202E…),
    no line or paragraph separators, no surrounding spaces."""
    if not 1 <= len(doc_id) <= MAX_DOC_ID_CHARS:
        raise ValueError(f"document id must be 1 to {MAX_DOC_ID_CHARS} characters")
    if any(unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") for char in doc_id):
        raise ValueError("document id must not contain control or invisible format characters")
    if doc_id != doc_id.strip() or not has_visible_text(doc_id):
        raise ValueError("document id must be visible text without surrounding spaces")
    return doc_id


def _query_text(value: str) -> str:
    if not has_visible_text(value):
        raise ValueError("query is empty")
    return value


Query = Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS, description="Question, English or Chinese"),
                  AfterValidator(_query_text)]
DocId = Annotated[str, Field(min_length=1, max_length=MAX_DOC_ID_CHARS), AfterValidator(check_doc_id)]


class SearchIn(BaseModel):
    q: Query
    k: int = Field(10, ge=1, le=MAX_K, description="hits per page; with phrases, exclusions or collapse=doc, "
                                                  "k + offset <= 200 (MAX_NARROWED_WINDOW)")
    lang: Lang | None = Field(None, description="Only passages in this language")
    doc: list[Annotated[str, Field(min_length=1, max_length=MAX_DOC_ID_CHARS)]] | None = Field(
        None, max_length=100, description="Only passages of these document ids")
    mode: Mode = Mode.HYBRID
    offset: int = Field(0, ge=0, le=MAX_SEARCH_OFFSET)
    collapse: Literal["doc"] | None = Field(None, description="doc: the best passage per document, "
                                                              "near-identical passages of other documents folded")
    evidence: int = Field(0, ge=0, le=MAX_EVIDENCE_HITS, description="every hit carries its answering sentences (sentence "
                                                       "vectors stored at ingest); N embeds the sentences of the "
                                                       "first N hits now instead (at most 64 sentences in all): "
                                                       "more precise, about 0.5 s per hit on CPU")


class DocumentIn(BaseModel):
    id: DocId | None = None
    title: str | None = Field(None, max_length=500)
    source: str | None = Field(None, max_length=1000)
    text: str = Field(..., min_length=1, description="Longer texts than BISEARCH_JOB_THRESHOLD_CHARS run as a job")


class IngestIn(BaseModel):
    paths: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(..., min_length=1, max_length=100)


class PassageIn(BaseModel):
    doc_id: str = Field(..., min_length=1, max_length=MAX_DOC_ID_CHARS)
    start: int = Field(..., ge=0, le=MAX_OFFSET)
    end: int = Field(..., ge=1, le=MAX_OFFSET)
    query: str | None = Field(None, max_length=MAX_QUERY_CHARS)
    evidence: list[tuple[Offset, Offset]] | None = Field(
        None, max_length=MAX_SPANS, description="the hit's evidence spans (document offsets inside start..end)")
    text: str | None = Field(None, max_length=MAX_OFFSET,
                             description="the passage text as found; the export refuses it (409) if the document changed")


class ReportIn(BaseModel):
    questions: list[Query] | None = Field(None, max_length=50)
    k: int = Field(3, ge=1, le=10)
    passages: list[PassageIn] | None = Field(None, max_length=200)
    title: str = Field(DEFAULT_TITLE, min_length=1, max_length=200)
    quote: QuoteKind = Field("evidence", description="quote each hit's evidence sentences, or the whole passage")


class JobOut(BaseModel):
    """A background write: ``queued`` → ``running`` → ``done`` | ``failed`` | ``cancelled``."""

    id: str
    kind: str
    status: str
    progress: dict[str, int] = {}
    result: dict[str, object] | None = None
    error: str | None = None
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
