"""The search page and the health check."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from search.api.deps import BackendDep
from search.output.citations import public_source

STATIC_DIR = Path(__file__).resolve().parent.parent.parent / "static"
router = APIRouter()


@router.get("/", include_in_schema=False)
def search_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")


@router.get("/health", tags=["service"])
def health(backend: BackendDep) -> dict[str, object]:
    """Liveness and index size (the index folder or Milvus Lite file by name only, never its server
    path). A plain ``def``: the backend is read in a thread of the shared pool, never on the event
    loop, and without a search slot (searches wait for theirs on the event loop), so it never queues
    behind searches."""
    stats = backend.stats()
    for key in ("index", "uri"):  # local folder; Milvus Lite file (a server's http:// address is kept)
        if isinstance(stats.get(key), str):
            stats[key] = public_source(stats[key]) or stats[key]
    return {"status": "ok", **stats}
