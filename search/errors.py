"""One error family: every error the product raises on purpose is a :class:`BisearchError` of one
kind, and one table (:data:`ANSWERS`) says what each kind answers: an HTTP status (the API) and an
exit status (the CLI).

An error class of a stage (``QueryError``, ``BackendError``, ...) subclasses the kind it is; when its
kind differs from its stage's usual one, the kind comes first among its bases
(``class StaleQuoteError(Conflict, ReportError)``), so :func:`answer_for` finds it first. The
message is one line, written for the person who has to act on it.
"""

from __future__ import annotations

from dataclasses import dataclass


class BisearchError(Exception):
    """An error the product raises on purpose; its message is one line, meant for the user."""


class InvalidInput(BisearchError, ValueError):
    """The query, document, file, option or setting cannot be used as given: fix it and try again."""


class NotFound(BisearchError, LookupError):
    """What the request names does not exist (a document, an index, a file)."""


class Conflict(BisearchError):
    """The request clashes with what is stored (an index built with another model, a changed quote)."""


class Busy(BisearchError):
    """The server is at a limit it keeps so that everyone is served (its job queue is full): retry
    after a while (an error of this kind may say how long in ``retry_after`` seconds)."""


class Unavailable(BisearchError, RuntimeError):
    """Something the request needs cannot be used now (storage, the model or its process, a cluster):
    the message says what to repair or restart."""


@dataclass(frozen=True)
class Answer:
    """How one kind of error is answered."""

    status: int  # HTTP status of the API's answer
    exit_code: int  # exit status of the ``bisearch`` command


#: The one table: each kind's HTTP status and CLI exit status (a bare BisearchError: 500 and 1).
ANSWERS: dict[type[BisearchError], Answer] = {
    InvalidInput: Answer(422, 2),
    NotFound: Answer(404, 3),
    Conflict: Answer(409, 4),
    Unavailable: Answer(503, 5),
    Busy: Answer(429, 6),
    BisearchError: Answer(500, 1),
}
KINDS: tuple[type[BisearchError], ...] = (InvalidInput, NotFound, Conflict, Unavailable, Busy)


def kind_of(error: type[BaseException] | BaseException) -> type[BisearchError] | None:
    """The kind in :data:`ANSWERS` that answers ``error`` (its first along the class's MRO), or None
    for an exception outside the family."""
    cls = error if isinstance(error, type) else type(error)
    return next((base for base in cls.__mro__ if base in ANSWERS), None)


def answer_for(error: BisearchError) -> Answer:
    """The HTTP status and exit status of an error of the family."""
    kind = kind_of(error)
    return ANSWERS[kind if kind is not None else BisearchError]
