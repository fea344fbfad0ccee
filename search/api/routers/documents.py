"""Documents: add (JSON or upload; long ones as a job), list, read, cited spans, delete.

A document id may contain ``/`` and end in anything (``sub/span``, ``x/file``): the document
is ``/documents/{id}``, a span of it ``/spans/{id}?start=&end=`` and its original file
``/files/{id}``, so no id shadows a route.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from search.api.deps import (BackendDep, IngesterDep, JobsDep, SettingsDep, WriteAccess, accepted, in_parse_slot,
                             in_write_slot, ingest_root)
from search.api.errors import first_problem
from search.api.schemas import MAX_OFFSET, DocumentIn, check_doc_id
from search.backends.base import Backend
from search.output.citations import public_source
from search.ingest.pipeline import Ingester
from search.loading import SUPPORTED_SUFFIXES, DocumentError, LoadedFile, LoadLimits, make_document
from search.loading.isolated import read_isolated
from search.types import Document

router = APIRouter(tags=["documents"])
UPLOAD_SCHEMA = {"type": "object", "required": ["file"], "properties": {
    "file": {"type": "string", "format": "binary"}, "id": {"type": "string", "maxLength": 200},
    "title": {"type": "string"}}}
DOCUMENT_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": DocumentIn.model_json_schema()},
    "multipart/form-data": {"schema": UPLOAD_SCHEMA}}}}


@router.get("/documents")
def documents_page(backend: BackendDep, settings: SettingsDep, limit: int = Query(50, ge=1, le=500),
                   offset: int = Query(0, ge=0, le=MAX_OFFSET)) -> dict[str, object]:
    """Documents in id order, paged."""
    return documents_listing(backend, limit, offset, ingest_root(settings))


def documents_listing(backend: Backend, limit: int, offset: int, root: Path | None) -> dict[str, object]:
    """One page of the documents in id order, with the total (HTTP and MCP)."""
    return {"total": backend.count(), "limit": limit, "offset": offset,
            "documents": [{**vars(summary), "lang": summary.lang.value, "source": public_source(summary.source, root)}
                          for summary in backend.documents(limit, offset)]}


@router.post("/documents", status_code=201, dependencies=WriteAccess, openapi_extra=DOCUMENT_BODY,
             responses={202: {"description": "a long document, indexed as a background job"}})
async def add_document(request: Request, ingester: IngesterDep, jobs: JobsDep, settings: SettingsDep):
    """Add or replace a document from JSON ``{id?, title?, source?, text}`` or a file upload
    (.txt .md .html .pdf .docx, or an image read by OCR: .png .jpg .jpeg .tif .tiff .webp; PDF, DOCX and
    image files are kept and served at ``/files/{id}``)."""
    loaded = await loaded_from_request(request, settings)
    if len(loaded.document.text) > settings.job_threshold_chars:
        return accepted(jobs.submit("document", lambda job: write_outcome(ingester, loaded)))
    return await in_write_slot(request, write_outcome, ingester, loaded)


def write_outcome(ingester: Ingester, loaded: LoadedFile) -> dict[str, object]:
    document = loaded.document
    files = {document.id: loaded.original} if loaded.original is not None else None
    outcome = ingester.add([document], files)[0]
    return {"id": outcome.doc_id, "status": outcome.status, "chunks": outcome.chunks,
            "title": document.title, "chars": len(document.text), "pages": len(document.pages) or None}


#: A kept file is someone's upload served from the API's own origin: no content sniffing (a PDF with an
#: HTML prologue stays a PDF) and a sandbox (no script of the file runs with the origin's rights).
FILE_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}


@router.get("/files/{doc_id:path}")
def get_file(doc_id: str, backend: BackendDep) -> Response:
    """The original file (PDF, DOCX, image) a document was read from; ``#page=N`` opens a PDF at a page."""
    document = stored_document(backend, doc_id)
    data = backend.file(doc_id)
    if data is None:
        raise HTTPException(404, f"document {doc_id!r} has no original file (it was read from text)")
    name = Path(document.source).name or "document"
    return Response(data, media_type=document.media_type,
                    headers={"Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}", **FILE_HEADERS})


@router.get("/documents/{doc_id:path}")
def get_document(doc_id: str, backend: BackendDep, settings: SettingsDep) -> dict[str, object]:
    """One document with its full stored text (the text citations point into), its page starts and, for
    scans, the pages read by OCR and where each OCR line stands (``box``: fractions of the page, top left)."""
    document = stored_document(backend, doc_id)
    return {"id": document.id, "title": document.title, "source": public_source(document.source, ingest_root(settings)),
            "lang": document.lang, "media_type": document.media_type, "pages": list(document.pages),
            "page_labels": list(document.page_labels), "chars": len(document.text), "sha256": document.sha256,
            "ocr_pages": list(document.ocr_pages),
            "ocr_lines": [{"start": line.start, "end": line.end, "page": line.page, "box": list(line.box)}
                          for line in document.ocr_lines],
            "text": document.text}


@router.get("/spans/{doc_id:path}")
def get_span(doc_id: str, backend: BackendDep, settings: SettingsDep, start: int = Query(..., ge=0, le=MAX_OFFSET),
             end: int = Query(..., ge=0, le=MAX_OFFSET), context: int = Query(200, ge=0, le=5000)) -> dict[str, object]:
    """The cited span ``text[start:end]`` of a document with up to ``context`` characters either side."""
    return span_of(stored_document(backend, doc_id), start, end, context, ingest_root(settings))


def span_of(document: Document, start: int, end: int, context: int, root: Path | None) -> dict[str, object]:
    """``document.text[start:end]`` with up to ``context`` characters either side (HTTP and MCP)."""
    text = document.text
    if not start < end <= len(text):
        raise HTTPException(422, f"span must satisfy 0 <= start < end <= {len(text)} (the document's length)")
    before, after = max(0, start - context), min(len(text), end + context)
    return {"doc_id": document.id, "title": document.title, "source": public_source(document.source, root),
            "start": start, "end": end, "quote": text[start:end], "before": text[before:start],
            "after": text[end:after], "context_start": before, "context_end": after}


@router.delete("/documents/{doc_id:path}", status_code=204, dependencies=WriteAccess)
def remove_document(doc_id: str, backend: BackendDep) -> Response:
    """Remove a document, its passages, vectors and keyword entries in one step."""
    if not backend.delete(doc_id):
        raise HTTPException(404, f"unknown document: {doc_id!r}")
    return Response(status_code=204)


def stored_document(backend: Backend, doc_id: str) -> Document:
    """The stored document ``doc_id``; 404 when there is none."""
    document = backend.document(doc_id)
    if document is None:
        raise HTTPException(404, f"unknown document: {doc_id!r}")
    return document


def document_id(doc_id: str | None, content: bytes) -> str:
    """A given id (checked like the JSON field) or one derived from the content's hash."""
    if doc_id is None:
        return "doc-" + hashlib.sha256(content).hexdigest()[:16]
    try:
        return check_doc_id(doc_id)
    except ValueError as problem:
        raise DocumentError(str(problem)) from None


async def loaded_from_request(request: Request, settings) -> LoadedFile:
    """Parse a JSON document or a multipart upload (any supported format) into a document."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return await _uploaded(request, settings)
    if not content_type.startswith("application/json"):
        raise HTTPException(415, "send application/json or multipart/form-data")
    return await run_in_threadpool(json_document, await request.body())  # megabytes: never on the event loop


def json_document(raw: bytes) -> LoadedFile:
    """A document from a JSON body ``{id?, title?, source?, text}``."""
    try:
        body = DocumentIn.model_validate_json(raw)
    except ValidationError as problem:
        raise HTTPException(422, first_problem(problem)) from None
    return loaded_from_json(body)


def loaded_from_json(body: DocumentIn) -> LoadedFile:
    """A document given as JSON text (HTTP and MCP): its id given or derived from the text."""
    doc_id = document_id(body.id, body.text.encode("utf-8", "surrogatepass"))
    return LoadedFile(make_document(doc_id, body.text, title=body.title, source=body.source or f"api:{doc_id}"))


async def _uploaded(request: Request, settings) -> LoadedFile:
    form = await request.form()
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise HTTPException(422, "multipart upload needs a `file` field")
    name = Path(upload.filename or "upload.txt").name
    suffix = Path(name).suffix.lower()
    if (suffix or ".txt") not in SUPPORTED_SUFFIXES:
        raise HTTPException(415, f"{name}: unsupported file type (use {', '.join(SUPPORTED_SUFFIXES)})")
    data = await upload.read()
    given_id, title = form.get("id"), form.get("title")
    doc_id = document_id(given_id if isinstance(given_id, str) else Path(name).stem, data)
    read = functools.partial(read_isolated, data, name if suffix else name + ".txt", doc_id,
                             title=title if isinstance(title, str) else None, source=name,
                             limits=LoadLimits.from_settings(settings))
    return await in_parse_slot(request, read)
