"""HTTP API (FastAPI): cited search, documents, spans, reports and the search page."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from urllib.parse import quote
from typing import Annotated

import anyio
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field, field_validator

from search import __version__
from search.backends import BackendError, ModelMismatchError
from search.chunking import Chunker
from search.ingest import Ingester
from search.language import highlight_spans, highlight_terms
from search.loading import SUPPORTED_SUFFIXES, DocumentError, LoadedFile, LoadLimits, make_document, read_bytes
from search.report import (DEFAULT_TITLE, ReportError, format_citation, render_markdown, report_for_passages,
                           report_for_questions)
from search.retrieval import MAX_QUERY_CHARS, QueryError, Retriever, SearchResult
from search.settings import Settings
from search.types import Lang, Mode

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_DOC_ID_CHARS = 200
MAX_OFFSET = 10**9  # character offsets and paging never go beyond this (SQLite and JSON stay in range)
API_KEY_HEADER = "X-API-Key"
SEARCH_THREADS = 4  # searches running at once; the rest wait on the event loop (the model takes turns anyway)


# -- request and response models ---------------------------------------------------
class SearchIn(BaseModel):
    q: str = Field(..., min_length=1, max_length=MAX_QUERY_CHARS, description="Question, English or Chinese")
    k: int = Field(10, ge=1, le=100)
    lang: Lang | None = Field(None, description="Only passages in this language")
    doc: list[Annotated[str, Field(min_length=1, max_length=MAX_DOC_ID_CHARS)]] | None = Field(
        None, max_length=100, description="Only passages of these document ids")
    mode: Mode = Mode.HYBRID
    offset: int = Field(0, ge=0, le=1000)

    @field_validator("q")
    @classmethod
    def not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query is empty")
        return value


class CitedHit(BaseModel):
    """A hit as the API returns it, with its exact quote, highlights and ready citation."""

    rank: int
    score: float
    doc_id: str
    title: str
    source: str
    chunk_no: int
    id: int | None
    lang: Lang
    mixed: bool
    start: int
    end: int
    text: str
    page: int | None = None
    page_end: int | None = None
    page_label: str | None = None
    section: str | None = None
    dense_score: float | None = None
    keyword_score: float | None = None
    quote: str = ""  # exactly document.text[start:end]
    highlights: list[tuple[int, int]] = []  # [start, end) of query words in text
    citation: str = ""


class SearchOut(BaseModel):
    query: str
    query_lang: Lang
    mode: Mode
    k: int
    offset: int
    took_ms: float
    results: list[CitedHit]


class DocumentIn(BaseModel):
    id: str | None = Field(None, min_length=1, max_length=MAX_DOC_ID_CHARS)
    title: str | None = Field(None, max_length=500)
    source: str | None = Field(None, max_length=1000)
    text: str = Field(..., min_length=1)


class IngestIn(BaseModel):
    paths: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(..., min_length=1, max_length=100)


class PassageIn(BaseModel):
    doc_id: str = Field(..., min_length=1, max_length=MAX_DOC_ID_CHARS)
    start: int = Field(..., ge=0, le=MAX_OFFSET)
    end: int = Field(..., ge=1, le=MAX_OFFSET)
    query: str | None = Field(None, max_length=MAX_QUERY_CHARS)


class ReportIn(BaseModel):
    questions: list[Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS)]] | None = Field(
        None, max_length=50)
    k: int = Field(3, ge=1, le=10)
    passages: list[PassageIn] | None = Field(None, max_length=200)
    title: str = Field(DEFAULT_TITLE, min_length=1, max_length=200)


def search_response(result: SearchResult, k: int, offset: int = 0) -> SearchOut:
    """The JSON shape of a search result: every hit with its quote, highlights and citation."""
    terms = highlight_terms(result.tokens)
    results = [
        CitedHit(**hit.as_dict(), quote=hit.passage.text, highlights=highlight_spans(hit.passage.text, terms),
                 citation=format_citation(hit.rank, hit.passage))
        for hit in result.hits
    ]
    return SearchOut(query=result.query, query_lang=result.query_lang, mode=result.mode, k=k, offset=offset,
                     took_ms=result.took_ms, results=results)


# -- middleware and errors ------------------------------------------------------------
class BodySizeLimit:
    """Reject request bodies over ``limit`` bytes with 413, declared or streamed."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await _too_large(self.limit)(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await _too_large(self.limit)(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(status_code=413, content={"detail": f"request body is larger than {limit} bytes"})


def _install_error_handlers(app: FastAPI) -> None:
    def handler(status: int):
        async def respond(request: Request, error: Exception) -> JSONResponse:
            return JSONResponse(status_code=status, content={"detail": str(error)})
        return respond

    app.add_exception_handler(QueryError, handler(422))
    app.add_exception_handler(DocumentError, handler(422))
    app.add_exception_handler(ReportError, handler(422))
    app.add_exception_handler(ModelMismatchError, handler(409))
    app.add_exception_handler(BackendError, handler(503))


def require_api_key(request: Request) -> None:
    """Write endpoints need ``X-API-Key`` when ``BISEARCH_API_KEY`` is set."""
    expected = request.app.state.settings.api_key
    if expected and request.headers.get(API_KEY_HEADER) != expected:
        raise HTTPException(status_code=401, detail=f"missing or wrong {API_KEY_HEADER} header")


def _document_id(doc_id: str | None, text: str) -> str:
    """A given id (validated) or one derived from the text's hash."""
    if doc_id is None:
        return "doc-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    if not doc_id.strip() or any(ord(char) < 32 for char in doc_id) or doc_id != doc_id.strip():
        raise DocumentError("document id must be non-blank printable text without surrounding spaces")
    return doc_id


def server_config(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info"):
    """uvicorn settings for the service (long keep-alive: clients queue behind the model)."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_keep_alive=120)


# -- the app -----------------------------------------------------------------------------
def create_app(retriever: Retriever, settings: Settings | None = None) -> FastAPI:
    """The API over an opened retriever (one model and index per process)."""
    settings = settings or Settings()
    app = FastAPI(title="bisearch", version=__version__,
                  description="Bilingual (English/Chinese) semantic search with cited passages.")
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    _install_error_handlers(app)
    backend = retriever.backend
    ingester = Ingester(backend, retriever.embedder, Chunker(retriever.embedder.tokenizer, settings.chunk_tokens))
    app.state.retriever = retriever
    app.state.settings = settings

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")

    @app.get("/health")
    def health() -> dict[str, object]:
        """Liveness and index size."""
        return {"status": "ok", **backend.stats()}

    def run_search(request: SearchIn) -> SearchOut:
        result = retriever.search(request.q, k=request.k, lang=request.lang, doc_ids=request.doc,
                                  mode=request.mode, offset=request.offset)
        return search_response(result, request.k, request.offset)

    # Searches wait for the model on the event loop, not in the shared thread pool, so a queue of
    # searches never starves /health, the page or document requests of threads.
    search_slots = anyio.CapacityLimiter(settings.search_threads)

    @app.get("/search", response_model=SearchOut)
    async def search_get(request: Annotated[SearchIn, Query()]) -> SearchOut:
        """Ranked passages for ``q`` with document, offsets, exact quote, highlights and citation."""
        return await anyio.to_thread.run_sync(run_search, request, limiter=search_slots)

    @app.post("/search", response_model=SearchOut)
    async def search_post(request: SearchIn) -> SearchOut:
        """The same search with a JSON body."""
        return await anyio.to_thread.run_sync(run_search, request, limiter=search_slots)

    @app.get("/documents")
    def list_documents(limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=MAX_OFFSET)) -> dict[str, object]:
        """Documents in id order, paged."""
        return {"total": backend.stats()["documents"], "limit": limit, "offset": offset,
                "documents": [{**vars(summary), "lang": summary.lang.value} for summary in backend.documents(limit, offset)]}

    @app.post("/documents", status_code=201, dependencies=[Depends(require_api_key)], openapi_extra={
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": DocumentIn.model_json_schema()},
            "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                "file": {"type": "string", "format": "binary"}, "id": {"type": "string"},
                "title": {"type": "string"}}}}}}})
    async def add_document(request: Request) -> dict[str, object]:
        """Add or replace a document from JSON ``{id?, title?, source?, text}`` or a file upload."""
        loaded = await _document_from_request(request, app.state.settings)
        document = loaded.document
        files = {document.id: loaded.original} if loaded.original is not None else None
        outcome = (await run_in_threadpool(ingester.add, [document], files))[0]
        return {"id": outcome.doc_id, "status": outcome.status, "chunks": outcome.chunks,
                "title": document.title, "chars": len(document.text)}

    def stored_document(doc_id: str):
        document = backend.document(doc_id)
        if document is None:
            raise HTTPException(status_code=404, detail=f"unknown document: {doc_id!r}")
        return document

    @app.get("/documents/{doc_id:path}/span")
    def document_span(doc_id: str, start: int = Query(..., ge=0, le=MAX_OFFSET), end: int = Query(..., ge=0, le=MAX_OFFSET),
                      context: int = Query(200, ge=0, le=5000)) -> dict[str, object]:
        """The cited span ``text[start:end]`` with up to ``context`` characters either side."""
        document = stored_document(doc_id)
        if not start < end <= len(document.text):
            raise HTTPException(status_code=422, detail=f"span must satisfy 0 <= start < end <= "
                                                        f"{len(document.text)} (the document's length)")
        before_start, after_end = max(0, start - context), min(len(document.text), end + context)
        return {"doc_id": document.id, "title": document.title, "source": document.source,
                "start": start, "end": end, "quote": document.text[start:end],
                "before": document.text[before_start:start], "after": document.text[end:after_end],
                "context_start": before_start, "context_end": after_end}

    @app.get("/documents/{doc_id:path}/file")
    def document_file(doc_id: str) -> Response:
        """The original file (PDF, DOCX) a document was read from; link pages with ``#page=N``."""
        document = stored_document(doc_id)
        data = backend.file(doc_id)
        if data is None:
            raise HTTPException(status_code=404, detail=f"document {doc_id!r} has no original file (it was text)")
        name = Path(document.source).name or "document"
        return Response(data, media_type=document.media_type,
                        headers={"Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}"})

    @app.get("/documents/{doc_id:path}")
    def get_document(doc_id: str) -> dict[str, object]:
        """One document with its full stored text (the text citations point into)."""
        document = stored_document(doc_id)
        return {"id": document.id, "title": document.title, "source": document.source, "lang": document.lang.value,
                "media_type": document.media_type, "pages": len(document.pages) or None,
                "chars": len(document.text), "sha256": document.sha256, "text": document.text}

    @app.delete("/documents/{doc_id:path}", status_code=204, dependencies=[Depends(require_api_key)])
    def delete_document(doc_id: str) -> Response:
        """Remove a document, its chunks, vectors and keyword entries in one step."""
        if not backend.delete(doc_id):
            raise HTTPException(status_code=404, detail=f"unknown document: {doc_id!r}")
        return Response(status_code=204)

    @app.post("/ingest", dependencies=[Depends(require_api_key)])
    def ingest(body: IngestIn) -> dict[str, object]:
        """Ingest files or folders on the server, only inside ``BISEARCH_INGEST_ROOT``."""
        root = app.state.settings.ingest_root
        paths = [_inside_ingest_root(path, root) for path in body.paths]
        return ingester.ingest_paths(paths, root=root).as_dict()

    @app.post("/report", responses={200: {"content": {"text/markdown": {}, "application/json": {}}}})
    def make_report(body: ReportIn, request: Request) -> Response:
        """A Markdown report (JSON with ``Accept: application/json``) of questions or chosen passages."""
        if not body.questions and not body.passages:
            raise HTTPException(status_code=422, detail="give `questions` or `passages`")
        if body.passages:
            report = report_for_passages(backend, [p.model_dump() for p in body.passages], body.title)
        else:
            if any(not question.strip() for question in body.questions or []):
                raise HTTPException(status_code=422, detail="questions must not be blank")
            report = report_for_questions(retriever, body.questions or [], body.k, body.title)
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(report.as_dict())
        return PlainTextResponse(render_markdown(report), media_type="text/markdown; charset=utf-8")

    return app


def _inside_ingest_root(path: str, root_setting: Path | None) -> Path:
    """Resolve ``path`` under the ingest root; refuse anything that escapes it."""
    if not root_setting:
        raise HTTPException(status_code=403, detail="ingest over HTTP is disabled: set BISEARCH_INGEST_ROOT")
    root = Path(root_setting).resolve()
    if "\x00" in path:
        raise HTTPException(status_code=422, detail="path contains a NUL byte")
    try:
        resolved = (root / path).resolve()
    except (OSError, RuntimeError) as error:  # e.g. a name too long for the file system, a symlink loop
        raise HTTPException(status_code=422, detail=f"cannot use path {path[:200]!r}: {error}") from error
    if not resolved.is_relative_to(root):
        raise HTTPException(status_code=403, detail=f"{path!r} is outside the ingest root")
    if not os.path.exists(resolved):
        raise HTTPException(status_code=404, detail=f"{path!r} does not exist under the ingest root")
    return resolved


async def _document_from_request(request: Request, settings: Settings) -> LoadedFile:
    """Parse a JSON document or a multipart file upload (any supported format) into a document."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPException(status_code=422, detail="multipart upload needs a `file` field")
        name = upload.filename or "upload.txt"
        suffix = Path(name).suffix.lower() or ".txt"
        if suffix not in SUPPORTED_SUFFIXES:
            raise HTTPException(status_code=415, detail=f"{name}: unsupported file type")
        data = await upload.read()
        doc_id = form.get("id") if isinstance(form.get("id"), str) else Path(name).stem
        title = form.get("title") if isinstance(form.get("title"), str) else None
        doc_id = _document_id(doc_id, hashlib.sha256(data).hexdigest())
        limits = LoadLimits.from_settings(settings)
        file_name = name if Path(name).suffix else name + suffix
        return await run_in_threadpool(lambda: read_bytes(data, file_name, doc_id, title=title, source=name,
                                                          limits=limits))
    if content_type.startswith("application/json"):
        try:
            body = DocumentIn.model_validate_json(await request.body())
        except ValueError as error:
            raise HTTPException(status_code=422, detail=_first_error(error)) from None
        doc_id = _document_id(body.id, body.text)
        return LoadedFile(make_document(doc_id, body.text, title=body.title, source=body.source or f"api:{doc_id}"))
    raise HTTPException(status_code=415, detail="send application/json or multipart/form-data")


def _first_error(error: ValueError) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(part) for part in first.get('loc', ()))}: {first.get('msg')}"
    return str(error)
