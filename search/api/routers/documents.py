"""Documents: add (JSON or upload; long ones as a job), list, read, cited spans, delete.

A document id may contain ``/`` and end in anything (``sub/span``): the document is
``/documents/{id}`` and a span of it ``/spans/{id}?start=&end=``, so no id shadows a route.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import ValidationError

from search.api.deps import (IndexDep, JobsDep, SettingsDep, WriteAccess, accepted, delete_document, in_write_slot,
                             ingest_root, list_documents, read_document, write_documents)
from search.api.schemas import MAX_OFFSET, DocumentIn, check_doc_id, has_visible_text
from search.citations import public_source
from search.loading import SUPPORTED_SUFFIXES, Document, DocumentError, decode_text, make_document

router = APIRouter(tags=["documents"])
UPLOAD_SCHEMA = {"type": "object", "required": ["file"], "properties": {
    "file": {"type": "string", "format": "binary"}, "id": {"type": "string", "maxLength": 200},
    "title": {"type": "string"}}}
DOCUMENT_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": DocumentIn.model_json_schema()},
    "multipart/form-data": {"schema": UPLOAD_SCHEMA}}}}


@router.get("/documents")
def documents_page(index: IndexDep, settings: SettingsDep, limit: int = Query(50, ge=1, le=500),
                   offset: int = Query(0, ge=0, le=MAX_OFFSET)) -> dict[str, object]:
    """Documents in id order, paged."""
    total, page = list_documents(index, limit, offset)
    root = ingest_root(settings)
    return {"total": total, "limit": limit, "offset": offset,
            "documents": [{**summary, "source": public_source(summary["source"], root)} for summary in page]}


@router.post("/documents", status_code=201, dependencies=WriteAccess, openapi_extra=DOCUMENT_BODY,
             responses={202: {"description": "a long document, indexed as a background job"}})
async def add_document(request: Request, index: IndexDep, jobs: JobsDep, settings: SettingsDep):
    """Add or replace a document from JSON ``{id?, title?, source?, text}`` or a file upload."""
    document = await document_from_request(request)
    if len(document.text) > settings.job_threshold_chars:
        return accepted(jobs.submit("document", lambda job: write_outcome(index, document)))
    return await in_write_slot(request, write_outcome, index, document)


def write_outcome(index, document: Document) -> dict[str, object]:
    outcome = write_documents(index, [document])[0]
    return {"id": outcome.doc_id, "status": outcome.status, "chunks": outcome.chunks,
            "title": document.title, "chars": len(document.text)}


@router.get("/documents/{doc_id:path}")
def get_document(doc_id: str, index: IndexDep, settings: SettingsDep) -> dict[str, object]:
    """One document with its full stored text (the text citations point into)."""
    document = stored_document(index, doc_id)
    return {"id": document.id, "title": document.title, "source": public_source(document.source, ingest_root(settings)),
            "lang": document.lang, "chars": len(document.text), "sha256": document.sha256, "text": document.text}


@router.get("/spans/{doc_id:path}")
def get_span(doc_id: str, index: IndexDep, settings: SettingsDep, start: int = Query(..., ge=0, le=MAX_OFFSET),
             end: int = Query(..., ge=0, le=MAX_OFFSET), context: int = Query(200, ge=0, le=5000)) -> dict[str, object]:
    """The cited span ``text[start:end]`` of a document with up to ``context`` characters either side."""
    document = stored_document(index, doc_id)
    text = document.text
    if not start < end <= len(text):
        raise HTTPException(422, f"span must satisfy 0 <= start < end <= {len(text)} (the document's length)")
    before, after = max(0, start - context), min(len(text), end + context)
    return {"doc_id": document.id, "title": document.title, "source": public_source(document.source, ingest_root(settings)),
            "start": start, "end": end, "quote": text[start:end], "before": text[before:start],
            "after": text[end:after], "context_start": before, "context_end": after}


@router.delete("/documents/{doc_id:path}", status_code=204, dependencies=WriteAccess)
def remove_document(doc_id: str, index: IndexDep) -> Response:
    """Remove a document, its passages, vectors and keyword entries in one step."""
    if not delete_document(index, doc_id):
        raise HTTPException(404, f"unknown document: {doc_id!r}")
    return Response(status_code=204)


def stored_document(index, doc_id: str):
    document = read_document(index, doc_id)
    if document is None:
        raise HTTPException(404, f"unknown document: {doc_id!r}")
    return document


def document_id(doc_id: str | None, text: str) -> str:
    """A given id (checked like the JSON field) or one derived from the text's hash."""
    if doc_id is None:
        return "doc-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    try:
        return check_doc_id(doc_id)
    except ValueError as problem:
        raise DocumentError(str(problem)) from None


def visible(document: Document) -> Document:
    if not has_visible_text(document.text):
        raise DocumentError(f"{document.source or document.id}: no text to index (only spaces or invisible characters)")
    return document


async def document_from_request(request: Request) -> Document:
    """Parse a JSON document or a multipart upload into a :class:`Document`."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return visible(await _uploaded_document(request))
    if not content_type.startswith("application/json"):
        raise HTTPException(415, "send application/json or multipart/form-data")
    try:
        body = DocumentIn.model_validate_json(await request.body())
    except ValidationError as problem:
        first = problem.errors()[0]
        raise HTTPException(422, f"{'.'.join(str(part) for part in first['loc'])}: {first['msg']}") from None
    doc_id = document_id(body.id, body.text)
    return visible(make_document(doc_id, body.text, title=body.title, source=body.source or f"api:{doc_id}"))


async def _uploaded_document(request: Request) -> Document:
    form = await request.form()
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise HTTPException(422, "multipart upload needs a `file` field")
    name = Path(upload.filename or "upload.txt").name
    suffix = Path(name).suffix.lower() or ".txt"
    if suffix not in SUPPORTED_SUFFIXES:
        raise HTTPException(415, f"{name}: unsupported file type")
    text = decode_text(await upload.read(), name)
    given_id, title = form.get("id"), form.get("title")
    doc_id = document_id(given_id if isinstance(given_id, str) else Path(name).stem, text)
    return make_document(doc_id, text, title=title if isinstance(title, str) else None, source=name,
                         is_html=suffix in (".html", ".htm"))
