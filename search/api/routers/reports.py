"""``POST /report``: Markdown, JSON or Word (.docx) reports of questions or chosen passages.

Each question of a report takes a search slot like ``/search`` (queued fairly with searches)
and may quote at most ``BISEARCH_MAX_REPORT_CHARS`` characters in all. The ``Accept`` header
picks the format: ``text/markdown`` (default), ``application/json`` or the .docx media type.
"""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from search.api.deps import RetrieverDep, SettingsDep, in_slot, ingest_root
from search.api.schemas import ReportIn
from search.output.citations import public_report, quoted_chars
from search.output.report import (Report, ReportError, render_markdown, report_for_passages, report_for_questions,
                                  verify_quotes)
from search.output.report_docx import DOCX_MEDIA_TYPE, render_docx
from search.api.slots import Slots
from search.ranking.budget import plan_search
from search.ranking.retriever import Retriever
from search.settings import Settings

router = APIRouter(tags=["reports"])
REPORT_FORMATS = {"text/markdown": {}, "application/json": {}, DOCX_MEDIA_TYPE: {}}


@router.post("/report", responses={200: {"content": REPORT_FORMATS}})
async def make_report(body: ReportIn, request: Request, retriever: RetrieverDep, settings: SettingsDep) -> Response:
    """A Markdown report of questions or chosen passages (JSON with ``Accept: application/json``,
    a Word file with ``Accept: application/vnd.openxmlformats-officedocument.wordprocessingml.document``)."""
    report = await build_report(body, retriever, settings, request.app.state.search_slots)
    accept = request.headers.get("accept", "")
    if DOCX_MEDIA_TYPE in accept:
        data = await anyio.to_thread.run_sync(render_docx, report)
        return Response(data, media_type=DOCX_MEDIA_TYPE,
                        headers={"Content-Disposition": 'attachment; filename="report.docx"'})
    if "application/json" in accept:
        return JSONResponse(report.as_dict())
    return PlainTextResponse(render_markdown(report), media_type="text/markdown; charset=utf-8")


async def build_report(body: ReportIn, retriever: Retriever, settings: Settings, search_slots: Slots) -> Report:
    """The report ``body`` asks for, every quote re-read from its document (HTTP and MCP).

    Every question is checked against the search limits first (a 422 naming the limit before any
    search runs); each question's search then holds the search slots its cost weighs, and the quote
    check one.
    """
    if not body.questions and not body.passages:
        raise ReportError("give `questions` or `passages`")
    check_quote_budget(sum(p.end - p.start for p in body.passages or []), settings.max_report_chars)
    if body.passages:
        report = await in_slot(search_slots, report_for_passages, retriever.backend,
                               [p.model_dump() for p in body.passages], body.title, body.quote)
    else:
        plans = {question: plan_search(question, body.k) for question in dict.fromkeys(body.questions or [])}
        answers = _Answered({question: await in_slot(search_slots, retriever.search, question, body.k,
                                                     weight=plan.slots) for question, plan in plans.items()})
        report = report_for_questions(answers, body.questions or [], body.k, body.title, body.quote)
    check_quote_budget(quoted_chars(report), settings.max_report_chars)
    report = await in_slot(search_slots, verify_quotes, report, retriever.backend)
    return public_report(report, ingest_root(settings))


class _Answered:
    """The searches of a report, already run (each in its own search slot, queued fairly with /search)."""

    def __init__(self, results: dict):
        self.results = results

    def search(self, question: str, k: int):
        return self.results[question]


def check_quote_budget(chars: int, cap: int) -> None:
    if chars > cap:
        raise ReportError(f"the report would quote {chars} characters; the cap is {cap} (BISEARCH_MAX_REPORT_CHARS)")
