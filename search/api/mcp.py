"""The MCP server: cited search, spans, reports and documents as tools an AI assistant can call.

Two transports, one server (the official ``mcp`` SDK): ``bisearch mcp`` over stdio, and
``bisearch serve`` at ``/mcp`` (streamable HTTP, beside the HTTP API). The tools run the same
code as the HTTP endpoints, under the same rules: searches and reports wait for a search slot,
reports have the same quote budget, queries the same length cap, and ``add_document`` exists
only when ``BISEARCH_API_KEY`` is set (over HTTP it then needs the ``X-API-Key`` header). A
user error comes back as a tool error carrying the HTTP API's one-line message.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, AsyncIterator, Literal, Protocol
from urllib.parse import quote

from mcp.server.mcpserver import Context, MCPServer, ResourceSecurity
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from search import __version__
from search.api.deps import API_KEY_HEADER, check_api_key, in_slot, ingest_root
from search.api.errors import USER_ERRORS, user_message
from search.api.routers.documents import (documents_listing, loaded_from_json, span_of, stored_document,
                                          write_outcome)
from search.api.routers.reports import build_report
from search.api.routers.search import cited_search, search_weight
from search.api.slots import Slots
from search.api.schemas import DocumentIn, PassageIn, Query, ReportIn, SearchIn
from search.ingest.pipeline import Ingester
from search.loading import DocumentError
from search.output.citations import CitedHit, public_source
from search.output.report import render_markdown
from search.ranking.retriever import Retriever
from search.settings import Settings
from search.types import Lang, Mode

MCP_PATH = "/mcp"
DOCUMENT_URI = "bisearch://documents/{doc_id}{?offset}"
RESOURCE_PART_CHARS = 20_000  # characters of document text per resource read
INSTRUCTIONS = """Bilingual (English/Chinese) search over the indexed documents, with exact, cited quotes.
Ask `search` in English or Chinese (用中文或英文提问); a question in one language finds passages in both.
Quote `evidence_quote` with its `evidence_citation` (or `quote` with `citation`): they are the document's
exact characters. `read` shows a cited span in context; `report` writes a Markdown report whose quotes are
re-checked against the stored documents."""
SEARCH_FIELDS, REPORT_FIELDS = SearchIn.model_fields, ReportIn.model_fields


class ServiceState(Protocol):
    """What the tools use: the HTTP app's ``app.state``, or :class:`Service` for stdio."""

    settings: Settings
    retriever: Retriever
    ingester: Ingester
    search_slots: Slots
    write_slots: Slots


@dataclass
class Service:
    """The objects and limits of a stdio server (the HTTP app keeps the same ones in ``app.state``)."""

    settings: Settings
    retriever: Retriever
    ingester: Ingester
    search_slots: Slots
    write_slots: Slots

    @classmethod
    def over(cls, retriever: Retriever, ingester: Ingester, settings: Settings) -> "Service":
        return cls(settings, retriever, ingester, Slots(settings.search_threads), Slots(1))


class FoundPassage(BaseModel):
    """A search hit as an assistant needs it: where it is, its exact quote and citation, its evidence."""

    rank: int
    doc_id: str
    start: int = Field(description="character offset where the quote starts in the document text")
    end: int = Field(description="character offset where the quote ends")
    title: str
    source: str
    lang: Lang
    page: int | None = None
    page_end: int | None = None
    section: str | None = None
    score: float
    quote: str = Field(description="exactly the document's text[start:end]")
    citation: str = Field(description="[rank] title, source, page, chars start–end")
    evidence_quote: str = Field("", description="the sentence(s) that answer the question, exact text")
    evidence_citation: str = Field("", description="the citation of evidence_quote (its own characters)")
    evidence: list[list[int]] = Field([], description="[start, end] offsets of the evidence sentences, best first")
    more_in_doc: int = 0
    also_in: list[str] = []

    @classmethod
    def of(cls, hit: CitedHit) -> "FoundPassage":
        return cls.model_validate(hit.model_dump(include=set(cls.model_fields)))


class Found(BaseModel):
    """The passages found for a query, best first."""

    query: str
    query_lang: Lang
    took_ms: float
    notices: list[str] = Field([], description="what quoted phrases and -exclusions did")
    results: list[FoundPassage]


class BisearchMCP(MCPServer):
    """The SDK's server with the HTTP API's one-line messages for user errors (never a traceback)."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context | None = None):
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as error:
            if isinstance(error.__cause__, USER_ERRORS):
                raise ToolError(user_message(error.__cause__)) from None
            raise


def document_uri(doc_id: str, offset: int = 0) -> str:
    """The resource URI of a document's text from ``offset`` (the id percent-encoded)."""
    return f"bisearch://documents/{quote(doc_id, safe='')}" + (f"?offset={offset}" if offset else "")


def create_mcp(state: ServiceState, part_chars: int = RESOURCE_PART_CHARS) -> BisearchMCP:
    """The MCP server over ``state``: tools ``search``, ``read``, ``report``, ``documents`` (and
    ``add_document`` when an API key is set), and each document's text as a resource, read
    ``part_chars`` characters at a time."""
    server = BisearchMCP("bisearch", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING")
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(annotations=read_only, description=(
        "Find passages that answer a question, asked in English or Chinese (用中文或英文提问): a Chinese "
        "question finds English passages and the reverse. Each result carries `quote` (exactly the document's "
        "text[start:end]) with its `citation` (title, source, page, character range), and `evidence_quote`: the "
        "sentence(s) that answer the question, with their own `evidence_citation`. Quote those in answers; "
        "call `read` with doc_id, start and end to see a quote in context."))
    async def search(
        query: Query,
        k: Annotated[int, SEARCH_FIELDS["k"], Field(description="how many passages (1-100)")] = 10,
        lang: Annotated[Lang | None, SEARCH_FIELDS["lang"],
                        Field(description="only passages in this language: en or zh (default: both)")] = None,
        mode: Annotated[Mode, SEARCH_FIELDS["mode"],
                        Field(description="hybrid (meaning and words, best), dense (meaning) or sparse (words)")]
        = Mode.HYBRID,
        collapse: Annotated[Literal["doc"] | None, SEARCH_FIELDS["collapse"]] = None,
        doc: Annotated[list[str] | None, SEARCH_FIELDS["doc"]] = None,
        offset: Annotated[int, SEARCH_FIELDS["offset"], Field(description="skip this many (the next page)")] = 0,
    ) -> Found:
        body = SearchIn(q=query, k=k, lang=lang, mode=mode, collapse=collapse, doc=doc, offset=offset)
        out = await in_slot(state.search_slots, cited_search, state.retriever, body, state.settings,
                            weight=search_weight(body))
        return Found(query=out.query, query_lang=out.query_lang, took_ms=out.took_ms, notices=out.notices,
                     results=[FoundPassage.of(hit) for hit in out.results])

    @server.tool(annotations=read_only, description=(
        "The exact text of a cited span, the document's text[start:end], with up to `context` characters "
        "either side: check a quote before using it. doc_id, start and end are those of a search result "
        "(or its evidence)."))
    def read(
        doc_id: Annotated[str, Field(min_length=1, max_length=200, description="the document's id")],
        start: Annotated[int, Field(ge=0, le=10**9, description="first character of the span")],
        end: Annotated[int, Field(ge=1, le=10**9, description="character after the span")],
        context: Annotated[int, Field(ge=0, le=5000, description="characters shown either side")] = 200,
    ) -> dict[str, object]:
        document = stored_document(state.retriever.backend, doc_id)
        return span_of(document, start, end, context, ingest_root(state.settings))

    @server.tool(annotations=read_only, description=(
        "A Markdown report with numbered, verified quotes and a reference list (title, source, page, "
        "characters). Give `questions` (each is searched and its top k passages quoted; English or Chinese) "
        "or `passages` chosen from search results (doc_id, start, end; optionally query, evidence and text). "
        "Every quote is re-read from the stored document; a changed document is an error."))
    async def report(
        questions: Annotated[list[Query] | None, REPORT_FIELDS["questions"]] = None,
        passages: Annotated[list[PassageIn] | None, REPORT_FIELDS["passages"]] = None,
        k: Annotated[int, REPORT_FIELDS["k"], Field(description="passages quoted per question (1-10)")] = 3,
        title: Annotated[str, REPORT_FIELDS["title"]] = ReportIn.model_fields["title"].default,
        quote: Annotated[Literal["evidence", "passage"], REPORT_FIELDS["quote"]] = "evidence",
    ) -> str:
        body = ReportIn(questions=questions, passages=passages, k=k, title=title, quote=quote)
        built = await build_report(body, state.retriever, state.settings, state.search_slots)
        return render_markdown(built)

    @server.tool(annotations=read_only, description=(
        "The indexed documents in id order (id, title, source, language, passages), one page at a time, with "
        "the total. A document's full text is the resource `uri` (read in parts of "
        f"{part_chars} characters)."))
    def documents(
        limit: Annotated[int, Field(ge=1, le=500, description="documents per page")] = 50,
        offset: Annotated[int, Field(ge=0, le=10**9, description="skip this many documents")] = 0,
    ) -> dict[str, object]:
        listing = documents_listing(state.retriever.backend, limit, offset, ingest_root(state.settings))
        for summary in listing["documents"]:
            summary["uri"] = document_uri(summary["id"])
        return listing

    @server.resource(DOCUMENT_URI, name="document", mime_type="application/json",
                     security=ResourceSecurity(exempt_params={"doc_id"}), description=(
                         f"A document's stored text (what citations point into), {part_chars} characters "
                         "from `offset` at a time, with its title, source, language and length; `next` is "
                         "the URI of the following part (null at the end). Read-only."))
    def document_text(doc_id: str, offset: str = "0") -> str:
        return document_part(state, doc_id, offset, part_chars).model_dump_json()

    if state.settings.api_key:
        _add_write_tool(server, state)
    return server


class DocumentPart(BaseModel):
    id: str
    title: str
    source: str
    lang: Lang
    chars: int
    offset: int
    end: int
    next: str | None
    text: str


def document_part(state: ServiceState, doc_id: str, offset: str, part_chars: int) -> DocumentPart:
    """``part_chars`` characters of a document's text from ``offset``."""
    if not offset.isdigit() or len(offset) > 10:
        raise ResourceError("offset must be a whole number of characters")
    document = state.retriever.backend.document(doc_id)
    if document is None:
        raise ResourceNotFoundError(f"unknown document: {doc_id!r}")
    start = min(int(offset), len(document.text))
    end = min(start + part_chars, len(document.text))
    return DocumentPart(id=document.id, title=document.title, source=public_source(document.source, ingest_root(
        state.settings)), lang=document.lang, chars=len(document.text), offset=start, end=end,
                        next=document_uri(document.id, end) if end < len(document.text) else None,
                        text=document.text[start:end])


def _add_write_tool(server: BisearchMCP, state: ServiceState) -> None:
    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True),
                 description=(
                     "Add a document from its text, or replace the one with the same id; it is searchable at "
                     f"once. Needs the server's API key (over HTTP, the {API_KEY_HEADER} header)."))
    async def add_document(
        ctx: Context,
        text: Annotated[str, DocumentIn.model_fields["text"]],
        id: Annotated[str | None, DocumentIn.model_fields["id"], Field(description="default: from the text")] = None,
        title: Annotated[str | None, DocumentIn.model_fields["title"]] = None,
        source: Annotated[str | None, DocumentIn.model_fields["source"]] = None,
    ) -> dict[str, object]:
        headers = ctx.headers
        if headers is not None:  # over HTTP; a stdio server was started by whoever holds the key
            check_api_key(state.settings, headers.get(API_KEY_HEADER))
        if len(text.encode("utf-8", "surrogatepass")) > state.settings.max_body_bytes:
            raise DocumentError(f"document text is larger than {state.settings.max_body_bytes} bytes")
        loaded = loaded_from_json(DocumentIn(id=id, title=title, source=source, text=text))
        return await in_slot(state.write_slots, write_outcome, state.ingester, loaded)


@asynccontextmanager
async def serving_over_http(server: BisearchMCP, settings: Settings) -> AsyncIterator[None]:
    """Run the streamable-HTTP session manager of ``server`` (a new one each time the app starts).

    Stateless JSON responses: every request stands alone, so nothing is kept between calls. The
    app's RequestGuard already checks Host, cross-origin writes and body size for ``/mcp``.
    """
    server.streamable_http_app(streamable_http_path=MCP_PATH, stateless_http=True, json_response=True,
                               max_request_body_size=settings.max_body_bytes,
                               transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
    async with server.session_manager.run():
        yield


class HttpEndpoint:
    """The ASGI endpoint at ``/mcp``: POSTs go to the running session manager of ``server``.

    Stateless, it has no stream of its own to offer a GET, nor a session to DELETE: 405 for those.
    """

    def __init__(self, server: BisearchMCP):
        self.server = server

    async def __call__(self, scope, receive, send) -> None:
        if scope["method"] != "POST":
            refusal = JSONResponse({"detail": f"{MCP_PATH} takes MCP messages by POST"}, status_code=405,
                                   headers={"Allow": "POST"})
            return await refusal(scope, receive, send)
        await self.server.session_manager.handle_request(scope, receive, send)
