"""The FastAPI application: middleware, error handlers, routers, limiters and the job queue."""

from __future__ import annotations

import json
import math
import os
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from search import __version__
from search.api.jobs import Jobs
from search.api.slots import Slots
from search.api.routers import documents, ingest, jobs, page, reports
from search.api.routers import search as search_router
from search.api.jobs import check_cancelled
from search.api.mcp import MCP_PATH, HttpEndpoint, create_mcp, serving_over_http
from search.chunking import Chunker
from search.errors import BisearchError, answer_for
from search.ingest.pipeline import Ingester
from search.loading import LoadLimits
from search.output.citations import public_source
from search.ranking.retriever import Retriever
from search.settings import Settings

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
SAFE_METHODS = (b"GET", b"HEAD", b"OPTIONS")
DESCRIPTION = """Bilingual (English/Chinese) semantic search with cited passages.

Write endpoints need the `X-API-Key` header when the server has `BISEARCH_API_KEY`
(use **Authorize** here). Large writes answer `202` with a job to poll at `/jobs/{id}`."""


class SafeJSONResponse(JSONResponse):
    """JSON that any input can be echoed into: ASCII escapes, no NaN."""

    def render(self, content: object) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, default=str).encode("ascii")


def error(status: int, detail: str, headers: dict[str, str] | None = None) -> SafeJSONResponse:
    return SafeJSONResponse(status_code=status, content={"detail": detail}, headers=headers)


# -- middleware (pure ASGI) ---------------------------------------------------------------
class RequestGuard:
    """Host allow-list (DNS rebinding), cross-origin writes refused, body size limit, strict JSON.

    * ``Host`` must be one of ``allowed`` (port ignored), else 400.
    * A write (not GET/HEAD/OPTIONS) from a browser page of another origin is 403: by
      ``Sec-Fetch-Site`` (cross-site / same-site) or an ``Origin`` whose host differs from ``Host``.
    * A body over ``limit`` bytes is 413 (declared or streamed); a non-numeric ``Content-Length`` 400.
    * A JSON body (as FastAPI reads one: no content type, ``application/json``, ``application/*+json``)
      nested too deeply, with a lone surrogate or a NaN / Infinity / out-of-range number is 422.
    """

    def __init__(self, app, settings: Settings):
        self.app, self.limit = app, settings.max_body_bytes
        names = settings.allowed_hosts.split(",") if settings.allowed_hosts else [*LOOPBACK_NAMES, settings.host]
        self.allowed = {name.strip().strip("[]").lower() for name in names if name.strip()}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers", []))
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            return await refusal(scope, receive, send)
        body = await self._read_body(receive, headers)
        if isinstance(body, JSONResponse):
            return await body(scope, receive, send)
        if body and parsed_as_json(headers.get(b"content-type")):
            problem = json_problem(body)
            if problem:
                return await error(422, problem)(scope, receive, send)
        await self.app(scope, _replay(body, receive), send)

    def _refusal(self, scope, headers: dict[bytes, bytes]) -> JSONResponse | None:
        host = headers.get(b"host", b"").decode("latin-1")
        if "*" not in self.allowed and _hostname(host) not in self.allowed:
            return error(400, f"Host header {host[:100]!r} is not served here (allowed: BISEARCH_ALLOWED_HOSTS)")
        if scope["method"].encode() not in SAFE_METHODS:
            site = headers.get(b"sec-fetch-site", b"").decode("latin-1").lower()
            origin = headers.get(b"origin", b"").decode("latin-1")
            if site not in ("", "same-origin", "none") or (origin and urlsplit(origin).netloc.lower() != host.lower()):
                return error(403, "cross-origin writes are refused")
        declared = headers.get(b"content-length")
        if declared is not None and not declared.isdigit():
            return error(400, "Content-Length must be a number of bytes")
        if declared is not None and int(declared) > self.limit:
            return _too_large(self.limit)
        return None

    async def _read_body(self, receive, headers) -> bytes | JSONResponse:
        """The whole body (bodies are small: at most ``limit`` bytes)."""
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return _too_large(self.limit)
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)


def parsed_as_json(content_type: bytes | None) -> bool:
    """True for the bodies FastAPI reads as JSON: no content type, ``application/json`` or ``application/*+json``."""
    if not content_type:
        return True
    kind = content_type.split(b";")[0].strip().lower()
    return kind == b"application/json" or (kind.startswith(b"application/") and kind.endswith(b"+json"))


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # http.disconnect, when the client leaves
    return replay


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:host.find("]")].lower() if "]" in host else host.lower()
    return host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()


def _too_large(limit: int) -> JSONResponse:
    return error(413, f"request body is larger than {limit} bytes")


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def json_problem(body: bytes) -> str | None:
    """Why a JSON body cannot be accepted (nested too deeply, lone surrogate, NaN, Infinity, 1e400), or None.

    Bodies that are not JSON at all are left to the endpoint's own 422.
    """
    try:
        value = json.loads(body, parse_constant=_reject_constant, parse_float=_finite)
    except RecursionError:  # ``[`` x 1000: the decoder recurses once per level
        return "JSON nested too deeply (arrays or objects inside each other about a thousand levels deep)"
    except ValueError as problem:
        if isinstance(problem, json.JSONDecodeError):
            return None
        return str(problem)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "text contains a lone surrogate (\\ud800-\\udfff), which is not a character"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


# -- errors -------------------------------------------------------------------------------
async def validation_error(request: Request, problem: RequestValidationError) -> JSONResponse:
    """422 with where and what, never echoing the input (it may not be encodable)."""
    detail = [{"type": item.get("type"), "loc": [str(part) for part in item.get("loc", ())], "msg": item.get("msg")}
              for item in problem.errors()]
    return SafeJSONResponse(status_code=422, content={"detail": detail})


async def family_error(request: Request, problem: BisearchError) -> JSONResponse:
    """Every error of the family, answered with its kind's status (:data:`search.errors.ANSWERS`),
    naming the index by name only (the server's folders stay private, as in ``/health``); a
    :class:`~search.errors.Busy` one says when to retry."""
    retry_after = getattr(problem, "retry_after", None)
    return error(answer_for(problem).status, without_server_paths(str(problem), request.app.state.retriever.backend),
                 headers={"Retry-After": str(retry_after)} if retry_after is not None else None)


def without_server_paths(message: str, backend) -> str:
    """``message`` with the backend's location (an index folder, a Milvus Lite file) shown by name only."""
    location = str(getattr(backend, "location", "") or "")
    for form in {location, str(Path(location).resolve())} if location else ():
        if os.path.isabs(form):
            message = message.replace(form, public_source(form) or form)
    return message


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(BisearchError, family_error)


# -- the app ------------------------------------------------------------------------------
@asynccontextmanager
async def lifespan(app: FastAPI):
    async with serving_over_http(app.state.mcp, app.state.settings):
        yield
    await anyio.to_thread.run_sync(app.state.jobs.shutdown)  # running batch rolled back, committed ones kept


def create_app(retriever: Retriever, settings: Settings | None = None, ingester: Ingester | None = None) -> FastAPI:
    """The API over an opened retriever (one model and index per process).

    Writes go through ``ingester`` (default: one over the retriever's backend and embedder,
    chunking with the embedder's tokenizer), so the API can run on any embedder, a fake one
    included; the ingester must write to the retriever's backend. Its ``should_stop`` becomes
    the job check, so a cancelled job stops between batches.
    """
    settings = settings or Settings()
    if ingester is None:
        ingester = Ingester(retriever.backend, retriever.embedder,
                            Chunker(retriever.embedder.tokenizer, settings.chunk_tokens),
                            LoadLimits.from_settings(settings), passage_titles=settings.passage_titles)
    elif ingester.backend is not retriever.backend:
        raise ValueError("the ingester must write to the backend the retriever reads")
    ingester.should_stop = check_cancelled
    app = FastAPI(title="bisearch", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.add_middleware(RequestGuard, settings=settings)
    install_error_handlers(app)
    app.state.settings, app.state.retriever, app.state.jobs = settings, retriever, Jobs(settings.max_queued_jobs)
    app.state.ingester = ingester
    # Searches (and reports) wait for a slot on the event loop, not in the shared thread pool, so a
    # queue of them never starves /health, the page or document requests of threads; writes take turns.
    app.state.search_slots = Slots(settings.search_threads)
    app.state.write_slots = Slots(1)
    app.state.parse_slots = Slots(settings.parse_processes)
    for module in (page, search_router, documents, reports, ingest, jobs):
        app.include_router(module.router)
    app.state.mcp = create_mcp(app.state)  # the same tools for AI assistants, at /mcp
    app.add_route(MCP_PATH, HttpEndpoint(app.state.mcp), include_in_schema=False)
    return app


def server_config(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info"):
    """uvicorn settings for the service (long keep-alive: clients queue behind the model)."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_keep_alive=120)
