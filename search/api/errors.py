"""The API's user-facing errors: which exception answers which HTTP status, and one-line messages.

HTTP answers them as ``{"detail": message}``; the MCP server returns the same message as a tool
error. Neither ever shows a traceback.
"""

from __future__ import annotations

from fastapi import HTTPException
from pydantic import ValidationError

from search.backends import BackendError, ModelMismatchError
from search.loading import DocumentError
from search.output.report import ReportError, StaleQuoteError
from search.ranking.retriever import QueryError

#: Each user-facing error kind and its HTTP status (a subclass before its base).
ERROR_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (QueryError, 422), (DocumentError, 422), (StaleQuoteError, 409), (ReportError, 422),
    (ModelMismatchError, 409), (BackendError, 503))
#: Everything :func:`user_message` can put in one line for a user.
USER_ERRORS: tuple[type[Exception], ...] = (*(kind for kind, _ in ERROR_STATUS), HTTPException, ValidationError)


def first_problem(error: ValidationError) -> str:
    """``field.path: what is wrong`` for the first problem of a validation error (never the input)."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first['msg']}" if where else first["msg"]


def user_message(error: Exception) -> str:
    """The one-line message a user sees for one of :data:`USER_ERRORS`."""
    if isinstance(error, HTTPException):
        return str(error.detail)
    if isinstance(error, ValidationError):
        return first_problem(error)
    return str(error)
