"""The model in a process of its own, so the server's Python never holds up a forward pass.

Every torch operation needs the GIL to start and to finish. In the server, request handling
(FastAPI, retrieval, JSON) holds the GIL in stretches of a few milliseconds, and each time the
model thread waits for it, the forward pass waits too. Measured on this 2-core machine
(query batches of 32 through :class:`~search.model.engine.ModelEngine`, medians of 12 alternating
runs): 38.6 queries/s alone, 34.0 with Python work of 13% of a core on another thread of the
same process, 38.2 with the same work in another process. ``bisearch serve`` therefore runs the
:class:`~search.model.engine.ModelEngine` here and talks to it over a pipe (a batch of 32 query
vectors is 96 KB); the Embedder's model thread is the only caller, so calls never interleave.

The child ignores Ctrl-C (the server decides when it stops) and exits when the pipe closes,
also when the server is killed.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from typing import Any

from search.errors import Unavailable
from search.model.engine import ModelSpec
from search.model.runtime import open_engine

#: What the parent may call (ModelEngine methods).
CALLS = frozenset({"describe", "encode_queries", "encode_documents", "encode_with_sentences"})


class ModelProcessError(Unavailable):
    """The model process failed to load the model, failed a call, or stopped (the message says what to do)."""


RESTART = "restart the server (`bisearch serve`)"


class EngineProcess:
    """A :class:`ModelEngine` in a child process, called like one."""

    def __init__(self, spec: ModelSpec):
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch state copied
        self._connection, child_end = context.Pipe()
        self._process = context.Process(target=serve, args=(child_end, spec), name="bisearch-model", daemon=True)
        self._process.start()
        child_end.close()
        self._lock = threading.Lock()

    def _call(self, method: str, *args: Any) -> Any:
        with self._lock:
            try:
                self._connection.send((method, args))
                ok, value = self._connection.recv()
            except (EOFError, OSError) as error:
                self._process.join(timeout=1)  # reaped, so its exit code is known
                raise ModelProcessError(stopped_message(self._process.exitcode)) from error
        if not ok:
            raise ModelProcessError(value)
        return value

    def describe(self):
        return self._call("describe")

    def encode_queries(self, texts: list[str]):
        return self._call("encode_queries", texts)

    def encode_documents(self, texts: list[str], batch_size: int, prompts: list[str] | None = None):
        return self._call("encode_documents", texts, batch_size, prompts)

    def encode_with_sentences(self, texts: list[str], prompts: list[str] | None = None):
        return self._call("encode_with_sentences", texts, prompts)

    def close(self) -> None:
        """Ask the child to stop; terminate it if it does not within 10 s."""
        with self._lock:
            try:
                self._connection.send(None)
            except OSError:
                pass
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(timeout=10)
            self._connection.close()


def stopped_message(exitcode: int | None) -> str:
    """What a call hears once the model process is gone: why, if known, and what to do."""
    if exitcode is not None and exitcode < 0:
        how = f"killed by signal {-exitcode}" + (" (often the out-of-memory killer)" if exitcode == -9 else "")
    else:
        how = f"exit code {exitcode}"
    return f"the model process stopped ({how}); searches and writes need it: {RESTART}"


def serve(connection, spec: ModelSpec) -> None:
    """The child: load the model, then answer calls until the pipe closes or says stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        engine, failure = open_engine(spec), None
    except Exception as error:  # reported to every call, so the parent raises it where it waits
        engine, failure = None, (f"loading the model failed: {type(error).__name__}: {_one_line(error)}; "
                                 f"check --model / BISEARCH_MODEL and {RESTART}")
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        method, args = message
        if failure or method not in CALLS:
            connection.send((False, failure or f"unknown call {method!r}"))
            continue
        try:
            connection.send((True, getattr(engine, method)(*args)))
        except Exception as error:
            connection.send((False, f"the model failed: {type(error).__name__}: {_one_line(error)}"))


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
