"""The API's errors as one line for a user: HTTP answers them as ``{"detail": message}``, the MCP
server returns the same message as a tool error. Neither ever shows a traceback.

Which status each error of the family answers is :data:`search.errors.ANSWERS`.
"""

from __future__ import annotations

from fastapi import HTTPException
from pydantic import ValidationError

from search.errors import BisearchError

#: Everything :func:`user_message` can put in one line for a user.
USER_ERRORS: tuple[type[Exception], ...] = (BisearchError, HTTPException, ValidationError)


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
