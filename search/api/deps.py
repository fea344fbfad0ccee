"""What handlers get from ``app.state`` (settings, retriever, index, jobs) and the API-key check.

Storage seam: every read or write of the index by the API goes through the small
functions under "storage access" below, so moving to the storage ``Backend`` protocol
(``search/backends/base.py``) changes only them.
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Annotated, Any

import anyio
import numpy as np
from fastapi import Depends, HTTPException, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader

from search.api.jobs import Jobs, check_cancelled, in_job
from search.retrieval import Retriever
from search.settings import Settings

API_KEY_HEADER = "X-API-Key"
CANCEL_EVERY_TEXTS = 8  # a job checks for cancellation after embedding this many passages
api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                              description="Required on write endpoints when BISEARCH_API_KEY is set")


# -- app.state ---------------------------------------------------------------------------
def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_retriever(request: Request) -> Retriever:
    return request.app.state.retriever


def get_index(request: Request) -> Any:
    """The storage the API reads and writes (today ``SearchIndex``; a ``Backend`` later)."""
    return request.app.state.retriever.index


def get_jobs(request: Request) -> Jobs:
    return request.app.state.jobs


def require_api_key(settings: Annotated[Settings, Depends(get_settings)],
                    key: Annotated[str | None, Security(api_key_header)] = None) -> None:
    """Write endpoints need ``X-API-Key`` when ``BISEARCH_API_KEY`` is set (constant-time compare)."""
    expected = settings.api_key
    if expected and not hmac.compare_digest((key or "").encode("utf-8", "surrogatepass"),
                                            expected.encode("utf-8", "surrogatepass")):
        raise HTTPException(status_code=401, detail=f"missing or wrong {API_KEY_HEADER} header")


async def in_search_slot(request: Request, function, *args):
    """Run a search-like call (search, report) in one of the ``search_threads`` slots."""
    return await anyio.to_thread.run_sync(function, *args, limiter=request.app.state.search_slots)


async def in_write_slot(request: Request, function, *args):
    """Run a small write; writes take turns so they never crowd out searches."""
    return await anyio.to_thread.run_sync(function, *args, limiter=request.app.state.write_slots)


def accepted(job) -> JSONResponse:
    """``202`` for a write that runs as a background job."""
    url = f"/jobs/{job.id}"
    return JSONResponse(status_code=202, content={"job_id": job.id, "status": job.status, "url": url},
                        headers={"Location": url})


SettingsDep = Annotated[Settings, Depends(get_settings)]
RetrieverDep = Annotated[Retriever, Depends(get_retriever)]
IndexDep = Annotated[Any, Depends(get_index)]
JobsDep = Annotated[Jobs, Depends(get_jobs)]
WriteAccess = [Depends(require_api_key)]


# -- storage access (the only places the API touches the index or its store) --------------
def read_document(index: Any, doc_id: str):
    """One stored document (``id, title, source, text, lang, sha256``) or None.  Backend: ``document()``."""
    return index.store.document(doc_id)


def list_documents(index: Any, limit: int, offset: int) -> tuple[int, list[dict]]:
    """``(total, page of summaries)``.  Backend: ``stats()["documents"]`` and ``documents()``."""
    return index.store.counts()["documents"], index.store.list_documents(limit, offset)


def index_stats(index: Any) -> dict[str, object]:
    """Counts, model and generation.  Backend: ``stats()``."""
    return index.stats()


def delete_document(index: Any, doc_id: str) -> bool:
    """Backend: ``delete()``."""
    return index.delete_document(doc_id)


def write_documents(index: Any, documents: list) -> list:
    """Chunk, embed and store documents in one all-or-nothing write; inside a job, cancellable
    between embedding batches.  New layout: ``search.ingest`` (embedding) + ``backend.write()``."""
    _install_cancel_points(index)
    return index.add_documents(documents)


def document_reader(index: Any):
    """Something with ``.document(doc_id)`` for reports of chosen passages.  Backend: the backend itself."""
    return index.store


class _CancellableEmbedder:
    """The index's embedder, embedding job texts in small slices with a cancellation check between them."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def encode_documents(self, texts: list[str], *args, **kwargs) -> np.ndarray:
        if not in_job() or len(texts) <= CANCEL_EVERY_TEXTS:
            check_cancelled()
            return self._inner.encode_documents(texts, *args, **kwargs)
        parts = []
        for start in range(0, len(texts), CANCEL_EVERY_TEXTS):
            check_cancelled()
            parts.append(self._inner.encode_documents(texts[start:start + CANCEL_EVERY_TEXTS], *args, **kwargs))
        check_cancelled()
        return np.concatenate(parts)


def _install_cancel_points(index: Any) -> None:
    embedder = getattr(index, "embedder", None)
    if embedder is not None and not isinstance(embedder, _CancellableEmbedder):
        index.embedder = _CancellableEmbedder(embedder)


def ingest_root(settings: Settings) -> Path | None:
    return settings.ingest_root.resolve() if settings.ingest_root else None
