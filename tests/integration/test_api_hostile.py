"""Hostile input and hostile neighbours (issues 17 and 27) and the API review items (issue 12 §5).

Each test names the finding it guards. The job tests run over a private index with a
slow fake embedder (sleeps, no CPU), so timing is deterministic and cheap.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import os
import threading
import time
from urllib.parse import quote

import httpx
import numpy as np
import pytest

from conftest import LiveServer, server_settings
from search.api import create_app
from search.api import deps as api_deps
from search.api.routers import ingest as ingest_router
from search.backends.local import LocalBackend
from search.chunking import Chunker
from search.ingest.pipeline import Ingester
from search.ranking.retriever import Retriever
from search.types import ModelInfo
from search.settings import Settings

SEED_EN = "000_be3e8d9fcddfd8b1"
LONG_TEXT = " ".join(f"Sentence {i} tells how jade bangles from Myanmar are graded by colour." for i in range(600))


@pytest.fixture(scope="module")
def client(writable_server):
    with httpx.Client(base_url=writable_server.url, timeout=60) as http:
        yield http


def wait_for_job(client, url: str, until=("done", "failed", "cancelled"), timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(url).json()
        if job["status"] in until:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {url} never reached {until}: {job}")


# -- issue 12 §5 ----------------------------------------------------------------------------
def test_ids_ending_in_span_are_fetchable(client):
    for doc_id in ("x/span", "sub/span"):
        assert client.post("/documents", json={"id": doc_id, "text": "Opal from Coober Pedy."}).status_code == 201
        reply = client.get(f"/documents/{doc_id}")
        assert reply.status_code == 200 and reply.json()["id"] == doc_id, reply.text
        span = client.get(f"/spans/{doc_id}", params={"start": 0, "end": 4}).json()
        assert span["quote"] == "Opal"
        assert client.delete(f"/documents/{doc_id}").status_code == 204


def test_non_numeric_content_length_is_400(writable_server):
    connection = http.client.HTTPConnection("127.0.0.1", writable_server.port, timeout=10)
    connection.putrequest("POST", "/search")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", "abc")
    connection.endheaders()
    assert connection.getresponse().status == 400  # uvicorn refuses it first
    connection.close()
    reply = asyncio.run(_asgi_post(writable_server.app, "/search", b"{}", {"Content-Length": "abc"}))
    assert reply.status_code == 400 and "Content-Length" in reply.json()["detail"]  # any server: 400, not 413


async def _asgi_post(app, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        return await client.post(path, content=body, headers={"Content-Type": "application/json", **headers})


# -- issue 17.2: reports ---------------------------------------------------------------------
def test_report_quotes_are_capped_with_a_422_naming_the_cap(client):
    length = client.get(f"/documents/{SEED_EN}").json()["chars"]
    passages = [{"doc_id": SEED_EN, "start": i, "end": length} for i in range(200)]
    reply = client.post("/report", json={"passages": passages})
    assert reply.status_code == 422 and "BISEARCH_MAX_REPORT_CHARS" in reply.json()["detail"], reply.text
    assert len(reply.content) < 1000


class SlotSpy:
    """A retriever that records, at each search, how many search slots the app has lent out."""

    def __init__(self, inner):
        self.inner, self.backend, self.embedder = inner, inner.backend, inner.embedder
        self.app = None
        self.borrowed: list[float] = []

    def search(self, *args, **kwargs):
        self.borrowed.append(self.app.state.search_slots.borrowed_tokens)
        return self.inner.search(*args, **kwargs)


def spied_app(retriever) -> tuple[object, SlotSpy]:
    spy = SlotSpy(retriever)
    spy.app = create_app(spy, Settings())
    return spy.app, spy


def test_report_searches_hold_a_search_slot(seed_retriever):
    app, spy = spied_app(seed_retriever)
    with LiveServer(app) as server:
        reply = httpx.post(f"{server.url}/report", json={"questions": ["gold", "珍珠"], "k": 1}, timeout=60)
    assert reply.status_code == 200 and spy.borrowed == [1, 1], (reply.text, spy.borrowed)


# -- issue 17.3: malformed JSON --------------------------------------------------------------
# -- issue 17.4: other web pages, other hosts, keys -------------------------------------------
def test_host_header_must_be_allowed(writable_server):
    evil = httpx.get(f"{writable_server.url}/health", headers={"Host": "evil.example"})
    assert evil.status_code == 400 and "Host" in evil.json()["detail"]
    assert httpx.get(f"{writable_server.url}/health", headers={"Host": f"localhost:{writable_server.port}"}).status_code == 200
    app = create_app(writable_server.app.state.retriever, Settings(allowed_hosts="search.example"))
    with LiveServer(app) as server:
        assert httpx.get(f"{server.url}/health", headers={"Host": "search.example"}).status_code == 200
        assert httpx.get(f"{server.url}/health").status_code == 400


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"}, {"Origin": "null"},
                                     {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}])
def test_cross_origin_writes_are_refused(client, headers):
    planted = client.post("/documents", files={"file": ("planted.txt", b"Buy now.")}, headers=headers)
    assert planted.status_code == 403, planted.text
    assert client.get("/documents/planted").status_code == 404
    assert client.delete(f"/documents/{SEED_EN}", headers=headers).status_code == 403


def test_same_origin_writes_are_allowed(client, writable_server):
    origin = {"Origin": writable_server.url, "Sec-Fetch-Site": "same-origin"}
    assert client.post("/documents", json={"id": "same", "text": "Pearls."}, headers=origin).status_code == 201
    assert client.delete("/documents/same", headers=origin).status_code == 204


def test_api_key_is_compared_in_constant_time_and_declared_in_openapi(client, writable_server, monkeypatch):
    calls = []
    monkeypatch.setattr(api_deps.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or a == b)
    with server_settings(writable_server, api_key="k3y"):
        assert client.post("/documents", json={"text": "Nope."}, headers={"X-API-Key": "bad"}).status_code == 401
    assert calls == [(b"bad", b"k3y")]
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["APIKeyHeader"] == {
        "type": "apiKey", "in": "header", "name": "X-API-Key", "description": schema["components"][
            "securitySchemes"]["APIKeyHeader"]["description"]}
    assert schema["paths"]["/documents"]["post"]["security"] == [{"APIKeyHeader": []}]
    assert "security" not in schema["paths"]["/search"]["get"]


# -- issue 17.6: smaller ones ------------------------------------------------------------------
def test_health_and_citations_show_no_server_paths(client):
    health = client.get("/health").json()
    assert not os.path.isabs(health["index"]) and "/" not in health["index"]
    client.post("/documents", json={"id": "quartz", "source": "/srv/private/ledgers/quartz.txt",
                                    "text": "Rose quartz exports from Madagascar doubled."})
    hit = client.post("/search", json={"q": "rose quartz Madagascar", "doc": ["quartz"]}).json()["results"][0]
    assert hit["source"] == "quartz.txt" and "/srv" not in hit["citation"]
    assert client.get("/documents/quartz").json()["source"] == "quartz.txt"
    report = client.post("/report", json={"passages": [{"doc_id": "quartz", "start": 0, "end": 10}]})
    assert "/srv" not in report.text
    assert client.delete("/documents/quartz").status_code == 204


def test_fifo_under_the_ingest_root_is_not_read(client, writable_server, tmp_path):
    root = tmp_path / "root"
    (root / "folder").mkdir(parents=True)
    os.mkfifo(root / "pipe.txt")
    os.mkfifo(root / "folder" / "pipe.txt")
    (root / "folder" / "real.txt").write_text("Garnet from Tanzania.", encoding="utf-8")
    with server_settings(writable_server, ingest_root=root):
        direct = client.post("/ingest", json={"paths": ["pipe.txt"]}, timeout=10)
        assert direct.status_code == 422 and "regular" in direct.json()["detail"]
        job = wait_for_job(client, client.post("/ingest", json={"paths": ["folder"]}, timeout=10).json()["url"])
        assert job["status"] == "done" and job["result"]["added"] == 1, job


def test_large_files_under_the_ingest_root_are_refused(writable_server, client, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "big.txt").write_text("Tourmaline. " * 200, encoding="utf-8")
    with server_settings(writable_server, ingest_root=root, max_file_bytes=1000):
        summary = client.post("/ingest", json={"paths": ["big.txt"]}).json()
    assert summary["failed"] == 1 and "big.txt: 2,400 bytes, over the file size limit of 1,000 bytes" in summary["errors"][0], summary


def test_files_deleted_during_an_ingest_are_reported_failed(tmp_path, tokenizer, monkeypatch):
    import search.ingest.pipeline

    root = tmp_path / "root"
    root.mkdir()
    (root / "kept.txt").write_text("Kept.", encoding="utf-8")
    (root / "gone.txt").write_text("Gone.", encoding="utf-8")
    found = search.ingest.pipeline.discover_files([root], root)
    (root / "gone.txt").unlink()  # after discovery, before reading
    monkeypatch.setattr(search.ingest.pipeline, "discover_files", lambda paths, root: found)
    ingester = Ingester(LocalBackend(tmp_path / "index"), SlowEmbedder(tokenizer, delay=0), Chunker(tokenizer))
    summary = ingester.ingest_paths([root], root=root).as_dict()
    assert summary["files"] == 2 and summary["added"] == 1 and summary["failed"] == 1
    assert summary["errors"] == ["gone.txt: deleted during the ingest"]


# -- issue 17.5: large writes are jobs -------------------------------------------------------
class SlowEmbedder:
    """Vectors from a hash, ``delay`` seconds per passage (sleeping, so it costs no CPU)."""

    def __init__(self, tokenizer, delay: float):
        self.tokenizer, self.delay = tokenizer, delay
        self.info = ModelInfo("slow-fake", 8, "", "")

    def encode_documents(self, texts, batch_size: int = 16, progress: bool = False) -> np.ndarray:
        time.sleep(self.delay * len(texts))
        vectors = np.stack([np.random.default_rng(abs(hash(text)) % 2**32).normal(size=8) for text in texts]
                           ) if texts else np.zeros((0, 8))
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)

    def encode_passages(self, texts, batch_size: int = 16, progress: bool = False, titles=None):
        return self.encode_documents(texts), [None] * len(texts)  # no sentence vectors

    def encode_query(self, text: str) -> np.ndarray:
        vector = np.random.default_rng(abs(hash(text)) % 2**32).normal(size=8)
        return (vector / np.linalg.norm(vector)).astype(np.float32)


def slow_retriever(folder, embedder) -> Retriever:
    backend = LocalBackend(folder)
    backend.record_model(embedder.info)
    return Retriever(backend, embedder)


@pytest.fixture
def slow_server(tmp_path, tokenizer):
    retriever = slow_retriever(tmp_path / "slow-index", SlowEmbedder(tokenizer, delay=0.05))
    settings = Settings(job_threshold_chars=5000, ingest_root=tmp_path / "root")
    (tmp_path / "root").mkdir()
    with LiveServer(create_app(retriever, settings)) as server:
        yield server


def test_long_document_is_a_job_and_searches_answer_meanwhile(slow_server):
    with httpx.Client(base_url=slow_server.url, timeout=30) as client:
        reply = client.post("/documents", json={"id": "jade", "text": LONG_TEXT})
        assert reply.status_code == 202 and reply.headers["location"] == reply.json()["url"], reply.text
        wait_for_job(client, reply.json()["url"], until=("running",))
        took = []
        for _ in range(5):
            started = time.monotonic()
            assert client.get("/search", params={"q": "jade"}).status_code == 200
            took.append(time.monotonic() - started)
        job = wait_for_job(client, reply.json()["url"])
        assert job["status"] == "done" and job["result"]["id"] == "jade" and job["result"]["chunks"] > 8, job
        assert max(took) < 1.0, took
        assert client.get("/documents/jade").status_code == 200
        assert client.get("/jobs/nope").status_code == 404


def test_cancelled_document_job_rolls_back(slow_server):
    with httpx.Client(base_url=slow_server.url, timeout=30) as client:
        url = client.post("/documents", json={"id": "jade", "text": LONG_TEXT}).json()["url"]
        wait_for_job(client, url, until=("running",))
        assert client.delete(url).status_code == 202
        job = wait_for_job(client, url, timeout=10)
        assert job["status"] == "cancelled", job
        assert client.get("/documents/jade").status_code == 404


def test_cancelled_ingest_keeps_committed_batches(slow_server, tmp_path, monkeypatch):
    monkeypatch.setattr(ingest_router, "JOB_BATCH_FILES", 2)
    for number in range(12):
        (tmp_path / "root" / f"note{number:02d}.txt").write_text(
            " ".join(f"Lot {number}-{i} of garnets was certified." for i in range(60)), encoding="utf-8")
    with httpx.Client(base_url=slow_server.url, timeout=30) as client:
        url = client.post("/ingest", json={"paths": ["."]}).json()["url"]
        deadline = time.monotonic() + 60
        while client.get(url).json()["progress"].get("files_done", 0) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        client.delete(url)
        job = wait_for_job(client, url)
        stored = client.get("/documents").json()["total"]
    assert job["status"] == "cancelled", job
    assert 2 <= stored < 12 and stored % 2 == 0, stored  # whole batches only


def test_shutdown_cancels_a_running_job(tmp_path, tokenizer):
    retriever = slow_retriever(tmp_path / "index", SlowEmbedder(tokenizer, delay=0.2))
    app = create_app(retriever, Settings(job_threshold_chars=5000))
    server = LiveServer(app).__enter__()
    url = httpx.post(f"{server.url}/documents", json={"id": "jade", "text": LONG_TEXT}, timeout=30).json()["url"]
    wait_for_job(httpx, f"{server.url}{url}", until=("running",))
    started = time.monotonic()
    server.__exit__(None, None, None)
    assert not server.thread.is_alive() and time.monotonic() - started < 8
    assert app.state.jobs.get(url.rsplit("/", 1)[1]).status == "cancelled"
    assert retriever.backend.document("jade") is None


# -- issue 27: hostile ids on Milvus, backend calls off the event loop --------------------------
CRAFTED_ID = "z') OR ('1'='1"


def milvus_app(path, tokenizer):
    """The app over a Milvus Lite file with a hash embedder (no model)."""
    pytest.importorskip("pymilvus")
    from search.backends.milvus import MilvusBackend

    embedder = SlowEmbedder(tokenizer, delay=0)
    backend = MilvusBackend(str(path))
    backend.record_model(embedder.info)
    return create_app(Retriever(backend, embedder), Settings())


def test_crafted_id_deletes_no_other_document_on_milvus(tmp_path, tokenizer):
    """27.1: ``z') OR ('1'='1`` was spliced into Milvus Lite's SQL and deleted every other document."""
    app = milvus_app(tmp_path / "milvus.db", tokenizer)
    try:
        with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
            for doc_id, text in (("gold", "Gold prices rose."), ("pearl", "Pearls are white."),
                                 (CRAFTED_ID, "x")):
                reply = client.post("/documents", json={"id": doc_id, "text": text})
                assert reply.status_code == 201, reply.text
            assert client.get(f"/documents/{quote(CRAFTED_ID, safe='')}").json()["text"] == "x"
    finally:
        app.state.retriever.backend.close()
    reopened = milvus_app(tmp_path / "milvus.db", tokenizer)  # Milvus Lite applies its deletes on reopen
    try:
        backend = reopened.state.retriever.backend
        assert [summary.id for summary in backend.documents()] == ["gold", "pearl", CRAFTED_ID]
        assert backend.document("gold").text == "Gold prices rose."
    finally:
        reopened.state.retriever.backend.close()


def test_health_answers_after_a_quote_id_on_milvus(tmp_path, tokenizer):
    """27.2: an id with ``"`` that sorts last sent the documents scan into a loop on the event loop."""
    app = milvus_app(tmp_path / "milvus.db", tokenizer)
    try:
        with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=5) as client:
            assert client.post("/documents", json={"id": "gold", "text": "Gold prices rose."}).status_code == 201
            assert client.post("/documents", json={"id": 'zz"', "text": "Jade is green."}).status_code == 201
            health = client.get("/health")
            assert health.status_code == 200 and health.json()["documents"] == 2
            assert [doc["id"] for doc in client.get("/documents").json()["documents"]] == ["gold", 'zz"']
    finally:
        app.state.retriever.backend.close()


def test_health_reads_the_backend_off_the_event_loop_and_outside_search_slots(tmp_path, tokenizer, monkeypatch):
    """27.2: a slow ``backend.stats()`` must neither block other requests nor take a search slot."""
    retriever = slow_retriever(tmp_path / "index", SlowEmbedder(tokenizer, delay=0))
    entered, release, stats = threading.Event(), threading.Event(), retriever.backend.stats

    def slow_stats() -> dict[str, object]:
        entered.set()
        release.wait(10)
        return stats()

    monkeypatch.setattr(retriever.backend, "stats", slow_stats)
    with LiveServer(create_app(retriever, Settings(search_threads=1))) as server:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            health = pool.submit(httpx.get, f"{server.url}/health", timeout=15)
            assert entered.wait(5)
            try:
                assert httpx.get(f"{server.url}/jobs/nope", timeout=3).status_code == 404
                assert httpx.get(f"{server.url}/search", params={"q": "jade"}, timeout=3).status_code == 200
            finally:
                release.set()
            assert health.result().status_code == 200


# -- issue 27: cost ceilings over HTTP, weighted slots --------------------------------------------------
def test_costly_searches_are_422_naming_the_limit_before_any_work(client):
    """27.6 and 27.7: 330 phrases, 660 exclusions with k=100&offset=1000, collapse=doc with k=100&offset=1000."""
    for params, limit in (({"q": " ".join(['"软件包"'] * 330)}, "MAX_TERMS"),
                          ({"q": "package " + " ".join(["-z"] * 660), "k": 100, "offset": 1000}, "MAX_TERMS"),
                          ({"q": "package -z", "k": 100, "offset": 1000}, "MAX_NARROWED_WINDOW"),
                          ({"q": "gold", "k": 100, "offset": 1000, "collapse": "doc"}, "MAX_NARROWED_WINDOW")):
        for reply in (client.get("/search", params=params), client.post("/search", json=params)):
            assert reply.status_code == 422 and limit in reply.json()["detail"], reply.text
    report = client.post("/report", json={"questions": ["gold", " ".join(['"软件包"'] * 30)]})
    assert report.status_code == 422 and "MAX_TERMS" in report.json()["detail"]
    assert client.get("/search", params={"q": "gold", "k": 100, "offset": 1000}).status_code == 200


def test_expensive_searches_hold_slots_in_proportion_to_their_cost(seed_retriever):
    app, spy = spied_app(seed_retriever)
    held = spy.borrowed
    with LiveServer(app) as server:
        assert httpx.get(f"{server.url}/search", params={"q": "gold"}, timeout=60).status_code == 200
        assert httpx.get(f"{server.url}/search", params={"q": "gold", "k": 100, "offset": 1000}, timeout=60).status_code == 200
        assert httpx.get(f"{server.url}/search", params={"q": "gold", "evidence": 2}, timeout=120).status_code == 200
    assert held == [1, 11, 7], held


# -- 27.13: deeply nested JSON ---------------------------------------------------------------------------
@pytest.mark.parametrize("content_type", ["application/json", None, "application/merge-patch+json"])
@pytest.mark.parametrize("path", ["/search", "/documents", "/report", "/ingest"])
def test_deeply_nested_json_is_422_not_500(client, path, content_type):
    """27.13: ``[`` x 1000 + ``]`` x 1000 on any POST raised RecursionError in RequestGuard (500)."""
    headers = {"content-type": content_type} if content_type else {}
    reply = client.post(path, content=b"[" * 1000 + b"]" * 1000, headers=headers)
    assert reply.status_code in (415, 422) and "detail" in reply.json(), reply.text  # 415: /documents wants a type
    if content_type or path != "/documents":
        assert reply.status_code == 422 and "nested too deeply" in reply.json()["detail"], reply.text


# -- 27.12: a bounded job queue; finished jobs let go of the text ------------------------------------------
def test_the_job_queue_is_bounded_and_finished_jobs_keep_no_text(tmp_path, tokenizer):
    retriever = slow_retriever(tmp_path / "index", SlowEmbedder(tokenizer, delay=0.05))
    app = create_app(retriever, Settings(job_threshold_chars=5000, max_queued_jobs=2))
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        urls = [client.post("/documents", json={"id": f"jade{n}", "text": LONG_TEXT}).json()["url"] for n in range(2)]
        refused = client.post("/documents", json={"id": "jade2", "text": LONG_TEXT})
        assert refused.status_code == 429 and refused.headers["retry-after"] == "10", refused.text
        assert "max_queued_jobs" in refused.json()["detail"]
        queued = client.delete(urls[1]).json()
        assert queued["status"] == "cancelled", queued  # a queued job is cancelled at once
        client.delete(urls[0])
        assert wait_for_job(client, urls[0])["status"] == "cancelled"
        assert client.post("/documents", json={"id": "jade3", "text": LONG_TEXT}).status_code == 202
        for job_id in (url.rsplit("/", 1)[1] for url in urls):
            assert app.state.jobs.get(job_id).run is None  # the closure holding the text is let go


# -- 27.15 to 27.17: ids ending in /file, server paths, headers of kept files -----------------------------
def test_ids_ending_in_file_are_fetchable(client):
    """27.15: ``GET /documents/x/file`` was the original file of ``x``, never the document ``x/file``."""
    assert client.post("/documents", json={"id": "x/file", "text": "Malachite from Congo."}).status_code == 201
    reply = client.get("/documents/x/file")
    assert reply.status_code == 200 and reply.json()["id"] == "x/file", reply.text
    assert client.get("/files/x/file").status_code == 404  # a text document keeps no file
    assert client.delete("/documents/x/file").status_code == 204


def test_backend_errors_name_the_index_without_its_server_path(tmp_path):
    from search.api.app import without_server_paths
    from search.backends.local.store import damaged

    backend = LocalBackend(tmp_path / "secret" / "idx")
    try:
        message = without_server_paths(str(damaged(backend.store.path, ValueError("file is not a database"))), backend)
    finally:
        backend.close()
    assert str(tmp_path) not in message and message.startswith("idx/index.sqlite is not a readable index database")


def test_milvus_health_shows_no_server_path(tmp_path, tokenizer):
    """27.16: /health returned the Milvus Lite file's absolute path as ``uri``."""
    app = milvus_app(tmp_path / "milvus.db", tokenizer)
    try:
        with LiveServer(app) as server:
            health = httpx.get(f"{server.url}/health", timeout=30).json()
        assert health["uri"] == "milvus.db" and str(tmp_path) not in str(health), health
    finally:
        app.state.retriever.backend.close()
