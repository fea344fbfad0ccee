"""``POST /report``: Markdown (or JSON) reports of questions or chosen passages.

Reports take a search slot like ``/search`` (a report of 50 questions is 50 searches)
and may quote at most ``BISEARCH_MAX_REPORT_CHARS`` characters in all.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from search.api.deps import IndexDep, RetrieverDep, SettingsDep, document_reader, in_search_slot, ingest_root
from search.api.schemas import ReportIn
from search.citations import public_report, quoted_chars
from search.report import Report, render_markdown, report_for_passages, report_for_questions

router = APIRouter(tags=["reports"])


@router.post("/report", responses={200: {"content": {"text/markdown": {}, "application/json": {}}}})
async def make_report(body: ReportIn, request: Request, retriever: RetrieverDep, index: IndexDep,
                      settings: SettingsDep) -> Response:
    """A Markdown report (JSON with ``Accept: application/json``) of questions or chosen passages."""
    if not body.questions and not body.passages:
        raise HTTPException(422, "give `questions` or `passages`")
    check_quote_budget(sum(p.end - p.start for p in body.passages or []), settings.max_report_chars)
    report = await in_search_slot(request, build_report, body, retriever, index)
    check_quote_budget(quoted_chars(report), settings.max_report_chars)
    report = public_report(report, ingest_root(settings))
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(report.as_dict())
    return PlainTextResponse(render_markdown(report), media_type="text/markdown; charset=utf-8")


def build_report(body: ReportIn, retriever, index) -> Report:
    if body.passages:
        return report_for_passages(document_reader(index), [p.model_dump() for p in body.passages], body.title)
    return report_for_questions(retriever, body.questions or [], body.k, body.title)


def check_quote_budget(chars: int, cap: int) -> None:
    if chars > cap:
        raise HTTPException(422, f"the report would quote {chars} characters; the cap is {cap} "
                                 f"(BISEARCH_MAX_REPORT_CHARS)")
