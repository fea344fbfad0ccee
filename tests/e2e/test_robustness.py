"""Concurrency, crashes and load: queries during writes, SIGKILL mid-ingest, 50 clients."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import httpx

from search.backends.local.store import Store
from search.service import open_retriever
from loadtest import run_load
from conftest import ROOT, index_settings

TOGGLED_TEXT = " ".join(f"Paragraph {i}: jade bangles from Myanmar are graded by colour and translucency."
                        for i in range(40))


def test_queries_during_adds_and_deletes_see_whole_documents(writable_server):
    with httpx.Client(base_url=writable_server.url, timeout=60) as http:
        chunks_of_toggled = http.post("/documents", json={"id": "jade", "text": TOGGLED_TEXT}).json()["chunks"]
        assert chunks_of_toggled > 1
        http.delete("/documents/jade")
    failures: list[str] = []
    seen_counts: set[int] = set()
    stop = threading.Event()

    def reader() -> None:
        with httpx.Client(base_url=writable_server.url, timeout=60) as http:
            while not stop.is_set():
                reply = http.get("/search", params={"q": "jade bangles colour", "k": 100, "doc": "jade"})
                if reply.status_code != 200:
                    failures.append(f"{reply.status_code} {reply.text[:200]}")
                    continue
                results = reply.json()["results"]
                seen_counts.add(len(results))
                failures.extend(f"bad quote in {hit['doc_id']}" for hit in results if hit["quote"] != hit["text"])

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for thread in readers:
        thread.start()
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=writable_server.url, timeout=60) as http:
        for _ in range(3):
            assert http.post("/documents", json={"id": "jade", "text": TOGGLED_TEXT}).status_code == 201
            time.sleep(0.3)
            assert http.delete("/documents/jade").status_code == 204
            time.sleep(0.3)
            assert time.monotonic() < deadline
    stop.set()
    for thread in readers:
        thread.join(timeout=60)
    assert not failures, failures[:3]
    assert seen_counts <= {0, chunks_of_toggled}, f"torn results: saw {seen_counts}, document has {chunks_of_toggled}"


def test_fifty_clients_for_thirty_seconds_get_no_errors(writable_server):
    result = asyncio.run(run_load(writable_server.url, clients=50, seconds=30))
    print(f"\nload: {result}")
    assert result.errors == 0, result.error_samples
    assert result.requests >= 50


def _wait_for_generation(folder, above: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        store = Store(folder / "index.sqlite")
        generation = store.generation()
        store.close()
        if generation > above:
            return
        time.sleep(0.2)
    raise AssertionError("the ingest never committed a batch")


def test_sigkill_mid_ingest_leaves_a_loadable_old_or_new_state(tmp_path, seed_index_dir, embedder):
    folder = tmp_path / "index"
    shutil.copytree(seed_index_dir, folder)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for number in range(48):
        (corpus / f"note{number:02d}.txt").write_text(
            f"Note {number}. " + " ".join(f"Gem lot {number}-{i} was certified in Antwerp." for i in range(30)),
            encoding="utf-8")
    before = Store(folder / "index.sqlite")
    start_generation, start_docs = before.generation(), before.counts()["documents"]
    before.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "search.cli", "ingest", str(corpus), "--index", str(folder), "-q"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_generation(folder, start_generation, process, timeout=240)
        process.send_signal(signal.SIGKILL)  # the second batch is being embedded or written
    finally:
        process.kill()
        process.wait()
    after = Store(folder / "index.sqlite")
    counts = after.counts()
    assert counts["documents"] in (start_docs + 32, start_docs + 48), counts
    for summary in after.documents(limit=100):
        assert summary.chunks > 0, summary
    after.close()
    retriever = open_retriever(index_settings(folder), embedder=embedder)
    view = retriever.backend._current_view()
    assert len(view.base) + len(view.delta) - len(view.tombstones) == counts["chunks"]
    assert retriever.search("Gem lot certified in Antwerp", k=3).hits
