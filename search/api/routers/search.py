"""Cited search: ``GET /search`` (query string) and ``POST /search`` (JSON body)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from search.api.deps import RetrieverDep, SettingsDep, in_search_slot, ingest_root
from search.api.schemas import SearchIn, SearchOut
from search.output.citations import search_response
from search.ranking.budget import plan_search
from search.ranking.retriever import Retriever
from search.settings import Settings

router = APIRouter(tags=["search"])


def cited_search(retriever: Retriever, body: SearchIn, settings: Settings) -> SearchOut:
    """The search ``body`` asks for, every hit with its quote and citation (HTTP and MCP)."""
    result = retriever.search(body.q, k=body.k, lang=body.lang.value if body.lang else None, doc_ids=body.doc,
                              mode=body.mode.value, offset=body.offset, collapse=body.collapse == "doc",
                              evidence=body.evidence)
    return search_response(result, body.k, body.offset, root=ingest_root(settings))


def run_search(retriever: Retriever, body: SearchIn, settings: Settings) -> Response:
    """The search as a JSON response, serialised once on the search thread (``SearchOut`` built
    from trusted values: FastAPI's second validation pass would only cost time)."""
    return Response(cited_search(retriever, body, settings).model_dump_json(), media_type="application/json")


def search_weight(body: SearchIn) -> int:
    """The search slots ``body`` weighs, once checked against every cost limit (HTTP and MCP): over
    one, a :class:`~search.ranking.budget.QueryError` (422) names it before any work is done."""
    return plan_search(body.q, body.k, body.mode, body.offset, body.collapse == "doc", body.evidence).slots


async def planned_search(request: Request, retriever: Retriever, body: SearchIn, settings: Settings) -> Response:
    """The search run holding the search slots its cost weighs."""
    return await in_search_slot(request, run_search, retriever, body, settings, weight=search_weight(body))


@router.get("/search", response_model=SearchOut)
async def search_get(params: Annotated[SearchIn, Query()], request: Request, retriever: RetrieverDep,
                     settings: SettingsDep) -> Response:
    """Ranked passages for ``q`` with document, offsets, exact quote, highlights and citation."""
    return await planned_search(request, retriever, params, settings)


@router.post("/search", response_model=SearchOut)
async def search_post(body: SearchIn, request: Request, retriever: RetrieverDep, settings: SettingsDep) -> Response:
    """The same search with a JSON body (``doc`` may be a list)."""
    return await planned_search(request, retriever, body, settings)
