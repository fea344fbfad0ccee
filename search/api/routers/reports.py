"""``POST /report``: Markdown (or JSON) reports of questions or chosen passages.

Each question of a report takes a search slot like ``/search`` (queued fairly with searches)
and may quote at most ``BISEARCH_MAX_REPORT_CHARS`` characters in all.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from search.api.deps import BackendDep, RetrieverDep, SettingsDep, in_search_slot, ingest_root
from search.api.schemas import ReportIn
from search.output.citations import public_report, quoted_chars
from search.output.report import render_markdown, report_for_passages, report_for_questions, verify_quotes

router = APIRouter(tags=["reports"])


@router.post("/report", responses={200: {"content": {"text/markdown": {}, "application/json": {}}}})
async def make_report(body: ReportIn, request: Request, retriever: RetrieverDep, backend: BackendDep,
                      settings: SettingsDep) -> Response:
    """A Markdown report (JSON with ``Accept: application/json``) of questions or chosen passages."""
    if not body.questions and not body.passages:
        raise HTTPException(422, "give `questions` or `passages`")
    check_quote_budget(sum(p.end - p.start for p in body.passages or []), settings.max_report_chars)
    if body.passages:
        report = await in_search_slot(request, report_for_passages, backend,
                                      [p.model_dump() for p in body.passages], body.title, body.quote)
    else:
        report = report_for_questions(await answers(request, retriever, body), body.questions or [], body.k,
                                      body.title, body.quote)
    check_quote_budget(quoted_chars(report), settings.max_report_chars)
    report = await in_search_slot(request, verify_quotes, report, backend)
    report = public_report(report, ingest_root(settings))
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(report.as_dict())
    return PlainTextResponse(render_markdown(report), media_type="text/markdown; charset=utf-8")


class _Answered:
    """The searches of a report, already run (each in its own search slot, queued fairly with /search)."""

    def __init__(self, results: dict):
        self.results = results

    def search(self, question: str, k: int):
        return self.results[question]


async def answers(request: Request, retriever, body: ReportIn) -> _Answered:
    results = {}
    for question in dict.fromkeys(body.questions or []):
        results[question] = await in_search_slot(request, retriever.search, question, body.k)
    return _Answered(results)


def check_quote_budget(chars: int, cap: int) -> None:
    if chars > cap:
        raise HTTPException(422, f"the report would quote {chars} characters; the cap is {cap} "
                                 f"(BISEARCH_MAX_REPORT_CHARS)")
