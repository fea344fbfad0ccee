"""What handlers get from ``app.state`` (settings, retriever, backend, ingester, jobs) and the API-key check."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader

from search.api.jobs import Jobs
from search.api.slots import Slots
from search.backends.base import Backend
from search.ingest.pipeline import Ingester
from search.ranking.retriever import Retriever
from search.settings import Settings

API_KEY_HEADER = "X-API-Key"
api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                              description="Required on write endpoints when BISEARCH_API_KEY is set")


# -- app.state ---------------------------------------------------------------------------
# The dependencies are ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread, a
# thread hop per dependency and request (0.3–0.7 ms of a served search's 3.2–3.4 ms of server CPU).
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_retriever(request: Request) -> Retriever:
    return request.app.state.retriever


async def get_backend(request: Request) -> Backend:
    """The storage the API reads and writes (any :class:`~search.backends.base.Backend`)."""
    return request.app.state.retriever.backend


async def get_ingester(request: Request) -> Ingester:
    """Writes: read → chunk → embed → ``backend.write`` (cancellable inside a job)."""
    return request.app.state.ingester


async def get_jobs(request: Request) -> Jobs:
    return request.app.state.jobs


def check_api_key(settings: Settings, key: str | None) -> None:
    """Writes need ``X-API-Key`` when ``BISEARCH_API_KEY`` is set (constant-time compare); 401 otherwise."""
    expected = settings.api_key
    if expected and not hmac.compare_digest((key or "").encode("utf-8", "surrogatepass"),
                                            expected.encode("utf-8", "surrogatepass")):
        raise HTTPException(status_code=401, detail=f"missing or wrong {API_KEY_HEADER} header")


async def require_api_key(settings: Annotated[Settings, Depends(get_settings)],
                          key: Annotated[str | None, Security(api_key_header)] = None) -> None:
    """Write endpoints need ``X-API-Key`` when ``BISEARCH_API_KEY`` is set."""
    check_api_key(settings, key)


async def in_slot(slots: Slots, function, *args, weight: int = 1):
    """Run a blocking call in a worker thread once ``weight`` of ``slots`` are free (waiting on the
    event loop, holding no thread)."""
    return await slots.run(weight, function, *args)


async def in_search_slot(request: Request, function, *args, weight: int = 1):
    """Run a search-like call (search, report) holding ``weight`` of the ``search_threads`` slots (a
    search's plan says how many: :attr:`search.ranking.budget.SearchPlan.slots`)."""
    return await in_slot(request.app.state.search_slots, function, *args, weight=weight)


async def in_parse_slot(request: Request, function, *args):
    """Read an uploaded file (a child process does the work; the thread only waits) in one of the
    ``parse_processes`` slots: the rest wait on the event loop, holding no thread of the shared pool."""
    return await in_slot(request.app.state.parse_slots, function, *args)


async def in_write_slot(request: Request, function, *args):
    """Run a small write; writes take turns so they never crowd out searches."""
    return await in_slot(request.app.state.write_slots, function, *args)


def accepted(job) -> JSONResponse:
    """``202`` for a write that runs as a background job."""
    url = f"/jobs/{job.id}"
    return JSONResponse(status_code=202, content={"job_id": job.id, "status": job.status, "url": url},
                        headers={"Location": url})


SettingsDep = Annotated[Settings, Depends(get_settings)]
RetrieverDep = Annotated[Retriever, Depends(get_retriever)]
BackendDep = Annotated[Backend, Depends(get_backend)]
IngesterDep = Annotated[Ingester, Depends(get_ingester)]
JobsDep = Annotated[Jobs, Depends(get_jobs)]
WriteAccess = [Depends(require_api_key)]


def ingest_root(settings: Settings) -> Path | None:
    return settings.ingest_root.resolve() if settings.ingest_root else None
