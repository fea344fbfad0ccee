"""HTTP API (FastAPI): search with cited passages, health."""

from __future__ import annotations

from typing import Literal

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from search import __version__
from search.retrieval import MAX_QUERY_CHARS, QueryError, Retriever, SearchResult


class HitOut(BaseModel):
    rank: int
    score: float
    doc_id: str
    title: str
    source: str
    chunk_no: int
    lang: str
    start: int
    end: int
    text: str
    dense_score: float | None = None
    keyword_score: float | None = None


class SearchOut(BaseModel):
    query: str
    query_lang: str
    mode: str
    k: int
    took_ms: float
    results: list[HitOut]


def search_response(result: SearchResult, k: int) -> SearchOut:
    """The JSON shape of a search result."""
    return SearchOut(query=result.query, query_lang=result.query_lang, mode=result.mode, k=k,
                     took_ms=result.took_ms,
                     results=[HitOut(**{key: value for key, value in hit.as_dict().items() if key != "chunk_id"})
                              for hit in result.hits])


def create_app(retriever: Retriever) -> FastAPI:
    """The API over an opened retriever (one model and index per process)."""
    app = FastAPI(title="bisearch", version=__version__,
                  description="Bilingual (English/Chinese) semantic search with cited passages.")
    app.state.retriever = retriever

    @app.exception_handler(QueryError)
    async def query_error(request: Request, error: QueryError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(error)})

    @app.get("/health")
    def health() -> dict[str, object]:
        """Liveness and index size."""
        return {"status": "ok", **retriever.index.stats()}

    @app.get("/search", response_model=SearchOut)
    def search_get(
        q: str = Query(..., min_length=1, max_length=MAX_QUERY_CHARS, description="Question, English or Chinese"),
        k: int = Query(10, ge=1, le=100),
        lang: Literal["en", "zh"] | None = Query(None, description="Only passages in this language"),
        doc: list[str] | None = Query(None, description="Only passages of these document ids"),
        mode: Literal["hybrid", "dense", "sparse"] = "hybrid",
        offset: int = Query(0, ge=0, le=1000),
    ) -> SearchOut:
        """Ranked passages for ``q`` with their document, offsets and text."""
        if not q.strip():
            raise HTTPException(status_code=422, detail="query is empty")
        return search_response(retriever.search(q, k=k, lang=lang, doc_ids=doc, mode=mode, offset=offset), k)

    return app
