"""The model in its own process (``bisearch serve``): the same vectors as in-process, clear failures."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from benchmark import ServerProcess
from search.model.embedder import Embedder
from search.model.process import ModelProcessError

QUERIES = ["水贝珠宝的生产周期比全球平均快多少？", "How much faster are Shuibei lead times?", "gold"]
PASSAGES = ["Gold prices rose. Silver fell sharply in May.", "淡水珍珠产自诸暨。价格今年上涨了20%。"]


@pytest.fixture(scope="module")
def process_embedder():
    embedder = Embedder(model_process=True)
    yield embedder
    embedder.close()


def test_the_model_process_gives_the_in_process_vectors(process_embedder, embedder):
    assert process_embedder.info == embedder.info and process_embedder.max_seq_length == embedder.max_seq_length
    assert np.allclose(process_embedder.encode_queries(QUERIES * 4), embedder.encode_queries(QUERIES * 4), atol=1e-5)
    vectors, sentences = process_embedder.encode_passages(PASSAGES)
    expected, expected_sentences = embedder.encode_passages(PASSAGES)
    assert np.allclose(vectors, expected, atol=1e-5)
    for got, want in zip(sentences, expected_sentences):
        assert np.array_equal(got.spans, want.spans)
        assert np.allclose(got.vectors.astype(np.float32), want.vectors.astype(np.float32), atol=2e-3)
    assert np.allclose(process_embedder.encode_documents(PASSAGES), embedder.encode_documents(PASSAGES), atol=1e-5)
    assert process_embedder.tokenizer("gold")["input_ids"] == embedder.tokenizer("gold")["input_ids"]
    assert (process_embedder.runtime, process_embedder.runtime_reason) == (embedder.runtime, embedder.runtime_reason)


def test_a_model_that_cannot_load_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelProcessError, match="loading the model failed"):
        Embedder(str(tmp_path), model_process=True)


def test_a_killed_model_process_is_a_clear_error_and_close_still_works():
    embedder = Embedder(model_process=True)
    process = embedder.engine._process
    process.kill()
    process.join(timeout=30)
    with pytest.raises(ModelProcessError, match="stopped"):
        embedder.encode_query("gold")
    embedder.close()
    assert not process.is_alive()


def test_close_stops_the_model_process(process_embedder):
    other = Embedder(model_process=True)
    process = other.engine._process
    other.close()
    assert process.exitcode == 0


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(child) for child in (task / "children").read_text().split()}
    return found


def test_bisearch_serve_runs_the_model_in_its_own_process_and_stops_it(seed_index_dir):
    """As users run it: a `bisearch serve` process answers from its model process; stopping it stops both."""
    with ServerProcess(seed_index_dir) as server:
        children = _children(server.process.pid)
        assert children, "no model process"
        hits = httpx.get(server.url + "/search", params={"q": "水贝珠宝的生产周期比全球平均快多少？", "k": 3},
                         timeout=60).json()["results"]
        assert hits and any("30% faster" in hit["text"] for hit in hits) and hits[0]["evidence"]
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{child}").exists() for child in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(Path(f"/proc/{child}").exists() for child in children), "the model process outlived the server"
