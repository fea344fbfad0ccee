"""Fixtures of the integration and e2e tests: one real model per test session, a real index of
seeds/, live servers. Unit tests use none of them (their fakes are in fakes.py)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn

from search.api import create_app, server_config
from search.model.embedder import load_tokenizer
from search.service import load_embedder, open_ingester, open_retriever
from search.ranking.retriever import Retriever
from search.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


@pytest.fixture(scope="session")
def embedder():
    """The real default model, loaded once."""
    return load_embedder(Settings())


@pytest.fixture(scope="session")
def tokenizer():
    """The default model's tokenizer alone, no model loaded (unit tests use ``fakes.FakeTokenizer``)."""
    settings = Settings()
    return load_tokenizer(settings.model, settings.model_dir)


@pytest.fixture(scope="session")
def torch_embedder():
    """The same model on torch in fp32: the reference of the runtime tests."""
    return load_embedder(Settings(runtime="torch", precision="fp32"))


@pytest.fixture(scope="session")
def onnx_embedder():
    """The same model on ONNX Runtime fp32, queries and passages: the export's checked reference."""
    return load_embedder(Settings(runtime="onnx", precision="fp32"))


@pytest.fixture(scope="session")
def seed_index_dir(tmp_path_factory, embedder) -> Path:
    """A real index of seeds/, built once (tests copy it before writing)."""
    folder = tmp_path_factory.mktemp("seed-index")
    ingester = open_ingester(index_settings(folder), embedder=embedder)
    summary = ingester.ingest_paths([SEEDS])
    assert summary.count("added") == 2 and not summary.failed
    ingester.backend.close()
    return folder


@pytest.fixture(scope="session")
def seed_retriever(seed_index_dir, embedder) -> Retriever:
    """Read-only retriever over the seed index."""
    return open_retriever(index_settings(seed_index_dir), embedder=embedder)


@pytest.fixture
def fresh_index_dir(tmp_path, seed_index_dir) -> Path:
    """A private, writable copy of the seed index."""
    target = tmp_path / "index"
    shutil.copytree(seed_index_dir, target)
    return target


def index_settings(folder: Path, **values) -> Settings:
    """Settings for a local index in ``folder`` (the environment's other settings kept)."""
    return Settings().with_overrides(index=folder, **values)


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "hostile_load: bounded (~20 s) hostile-load test of the live server")


#: This file's fixtures that load the model or its tokenizer, build a real index or start a server.
REAL_FIXTURES = ("embedder", "tokenizer", "seed_index_dir", "seed_retriever", "fresh_index_dir", "live_server",
                 "writable_server")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    """tests/unit is fakes only: a unit test that uses one of :data:`REAL_FIXTURES` fails before
    any of them is set up."""
    if ROOT / "tests" / "unit" not in Path(str(item.fspath)).parents:
        return
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    real = [name for name in REAL_FIXTURES if name in definitions and definitions[name][-1].func.__module__ == __name__]
    if real:
        pytest.fail(f"tests/unit uses fakes only, but this test asks for {', '.join(real)}: move it to tests/integration",
                    pytrace=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """A real uvicorn server on 127.0.0.1 in a background thread."""

    def __init__(self, app) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(server_config(app, port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def server_settings(server: LiveServer, **values):
    """Run a block with some settings of a live server changed (API key, ingest root, caps...)."""
    before = server.app.state.settings
    server.app.state.settings = before.with_overrides(**values)
    try:
        yield server.app.state.settings
    finally:
        server.app.state.settings = before


@pytest.fixture(scope="session")
def live_server(seed_retriever):
    """The real app over the seed index, served over HTTP on 127.0.0.1."""
    with LiveServer(create_app(seed_retriever, index_settings(seed_retriever.backend.folder))) as server:
        yield server


@pytest.fixture(scope="module")
def writable_server(request, tmp_path_factory, seed_index_dir, embedder):
    """A real server over this test module's private copy of the seed index (for writes)."""
    folder = tmp_path_factory.mktemp(request.module.__name__) / "index"
    shutil.copytree(seed_index_dir, folder)
    settings = index_settings(folder)
    with LiveServer(create_app(open_retriever(settings, embedder=embedder), settings)) as server:
        yield server
