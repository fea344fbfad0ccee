"""One error family (search/errors.py): every error class of the package is of one kind, one table
answers each kind over HTTP and on the command line, and a dead model process is a 503 that says
what to do. No model is loaded here."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sqlite3

import httpx
import pytest
from fastapi.testclient import TestClient

import search
from fakes import FAKE_MODEL, FakeEmbedder, prepared
from search.api import create_app
from search.api.jobs import JobCancelled
from search.backends import BackendError, DocumentRefused, ModelMismatchError
from search.backends.local import DB_NAME, LocalBackend
from search.backends.local.vectors import VectorIndexError
from search.cli import build_parser, main
from search.errors import ANSWERS, KINDS, BisearchError, Busy, Conflict, InvalidInput, NotFound, Unavailable, kind_of
from search.loading import SUPPORTED_SUFFIXES
from search.model.engine import ModelSpec
from search.model.process import EngineProcess, ModelProcessError
from search.output.report import ReportError, StaleQuoteError
from search.ranking.retriever import QueryError, Retriever
from search.settings import Settings

#: Exceptions that are signals between two parts of the product, never shown to anyone.
SIGNALS = {JobCancelled}


def package_exceptions() -> set[type[BaseException]]:
    """Every exception class defined in a module of ``search``."""
    found: set[type[BaseException]] = set()
    for info in pkgutil.walk_packages(search.__path__, "search."):
        module = importlib.import_module(info.name)
        found |= {value for _, value in inspect.getmembers(module, inspect.isclass)
                  if issubclass(value, BaseException) and value.__module__ == module.__name__}
    return found


def test_every_error_class_of_the_package_is_of_one_kind():
    errors = package_exceptions() - SIGNALS - {BisearchError}  # the root: a class raises its kind
    assert {QueryError, BackendError, ModelProcessError, StaleQuoteError} <= errors
    assert {cls.__name__: kind_of(cls) for cls in errors if kind_of(cls) not in KINDS} == {}


def test_the_table_gives_each_kind_its_own_status_and_exit_code():
    assert {kind: (answer.status, answer.exit_code) for kind, answer in ANSWERS.items()} == {
        InvalidInput: (422, 2), NotFound: (404, 3), Conflict: (409, 4), Unavailable: (503, 5), Busy: (429, 6),
        BisearchError: (500, 1)}
    assert set(ANSWERS) == {*KINDS, BisearchError}


@pytest.mark.parametrize("error, kind, also", [
    (StaleQuoteError, Conflict, ReportError), (ModelMismatchError, Conflict, BackendError),
    (VectorIndexError, Unavailable, BackendError), (ModelProcessError, Unavailable, RuntimeError),
    (DocumentRefused, InvalidInput, ValueError), (QueryError, InvalidInput, ValueError),
])
def test_a_class_answers_as_its_kind_and_stays_what_it_was(error, kind, also):
    assert kind_of(error) is kind and issubclass(error, also)


# -- the API -----------------------------------------------------------------------------------
class FailingEmbedder(FakeEmbedder):
    """Every query fails with ``error`` (the model's failure, as a search meets it)."""

    tokenizer = None  # the app's chunker is never used here

    def __init__(self, error: Exception):
        super().__init__()
        self.error = error

    def encode_query(self, text: str):
        raise self.error


def search_status(tmp_path, embedder) -> httpx.Response:
    backend = LocalBackend(tmp_path / "index")
    backend.record_model(FAKE_MODEL)
    backend.write([prepared("gold", ["Gold prices rose."])])
    try:
        app = create_app(Retriever(backend, embedder), Settings(index=tmp_path / "index"))
        with TestClient(app, base_url="http://127.0.0.1") as client:
            return client.get("/search", params={"q": "gold"})
    finally:
        backend.close()


@pytest.mark.parametrize("kind", KINDS)
def test_the_api_answers_each_kind_with_its_status_and_message(tmp_path, kind):
    reply = search_status(tmp_path, FailingEmbedder(kind(f"a {kind.__name__} problem")))
    assert (reply.status_code, reply.json()) == (ANSWERS[kind].status, {"detail": f"a {kind.__name__} problem"})


class ProcessEmbedder(FailingEmbedder):
    """Queries go to a real model process (:class:`EngineProcess`), as in ``bisearch serve``."""

    def __init__(self, process: EngineProcess):
        super().__init__(RuntimeError("unused"))
        self.process = process

    def encode_query(self, text: str):
        return self.process.encode_queries([text])[0]


def test_a_dead_model_process_is_a_503_that_says_what_to_do(tmp_path):
    process = EngineProcess(ModelSpec("never/loaded", str(tmp_path / "no-model")))
    process._process.kill()  # gone before it loaded anything: as after the out-of-memory killer
    process._process.join(timeout=30)
    try:
        reply = search_status(tmp_path, ProcessEmbedder(process))
    finally:
        process.close()
    detail = reply.json()["detail"]
    assert reply.status_code == 503 and "model process stopped" in detail and "killed by signal 9" in detail
    assert "restart the server (`bisearch serve`)" in detail and "\n" not in detail


# -- the command line --------------------------------------------------------------------------
def local_index(folder) -> str:
    backend = LocalBackend(folder)
    backend.record_model(FAKE_MODEL)
    backend.write([prepared("gold", ["Gold prices rose."])])
    backend.close()
    return str(folder)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("bisearch: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_cli_exit_codes_follow_the_table(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BISEARCH_API_KEY", raising=False)
    index = local_index(tmp_path / "index")
    assert main(["stats", "--index", str(tmp_path / "typo")]) == ANSWERS[NotFound].exit_code
    assert "no index at" in one_line_error(capsys)
    assert main(["delete", "nope", "--index", index]) == ANSWERS[NotFound].exit_code
    assert "no such document: nope" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.txt"), "--index", index]) == ANSWERS[NotFound].exit_code
    assert "missing.txt: No such file or directory" in one_line_error(capsys)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    assert main(["report", str(tmp_path / "latin1.txt"), "--index", index]) == ANSWERS[InvalidInput].exit_code
    assert "not valid UTF-8" in one_line_error(capsys)
    assert main(["serve", "--host", "0.0.0.0", "--index", index]) == ANSWERS[InvalidInput].exit_code
    assert "BISEARCH_API_KEY" in one_line_error(capsys)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / DB_NAME).write_bytes(b"not a database" * 100)
    assert main(["stats", "--index", str(tmp_path / "broken")]) == ANSWERS[Unavailable].exit_code
    assert "not a readable index database" in one_line_error(capsys)


@pytest.mark.parametrize("fault", [ValueError("a bug"), OSError(28, "No space left on device"), sqlite3.Error("x")])
def test_cli_does_not_hide_a_fault_outside_the_family(tmp_path, monkeypatch, fault):
    """Only the family and OSErrors about a path the command was given are one-line messages."""
    def failing(args):
        raise fault

    monkeypatch.setattr("search.cli.cmd_stats", failing)
    with pytest.raises(type(fault)):
        main(["stats", "--index", str(tmp_path)])


def test_ingest_help_names_every_format(capsys):
    build_parser().print_help()
    listed = capsys.readouterr().out.split("add files (", 1)[1].split(")", 1)[0].split()
    assert sorted(listed) == sorted(SUPPORTED_SUFFIXES)
