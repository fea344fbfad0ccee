"""Query micro-batching with a fake encoder (no model): calls, batch sizes, threads, errors, cache."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from search.model.batching import QueryBatcher, query_key


class FakeEncoder:
    """Vector of a text = a few numbers derived from it; records every call.

    ``gate`` (when set) holds each call until the test releases it, so a test can queue
    queries behind a running call without timing anything.
    """

    def __init__(self, gate: bool = False, fail_on: str | None = None):
        self.calls: list[list[str]] = []
        self.gate = threading.Event() if gate else None
        self.started = threading.Event()
        self.fail_on = fail_on

    @staticmethod
    def vector(text: str) -> np.ndarray:
        return np.array([len(text), sum(map(ord, text)) % 997, hash(text) % 101], dtype=np.float32)

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        self.started.set()
        if self.gate is not None:
            self.gate.wait(timeout=30)
        if self.fail_on is not None and self.fail_on in texts:
            raise ValueError(f"cannot encode {self.fail_on!r}")
        return np.stack([self.vector(text) for text in texts])


@pytest.fixture
def make_batcher():
    made: list[QueryBatcher] = []

    def make(encoder, **options) -> QueryBatcher:
        made.append(QueryBatcher(encoder, **options))
        return made[-1]

    yield make
    for batcher in made:
        batcher.close()


def queue_behind_running_call(batcher: QueryBatcher, encoder: FakeEncoder, texts: list[str]):
    """Start one call that blocks, queue ``texts`` behind it, return all futures."""
    first = batcher.submit("first")
    assert encoder.started.wait(timeout=30)
    return first, [batcher.submit(text) for text in texts]


def test_lone_query_is_one_call_of_one(make_batcher):
    encoder = FakeEncoder()
    batcher = make_batcher(encoder)
    vector = batcher.encode("hello world")
    assert encoder.calls == [["hello world"]]
    np.testing.assert_array_equal(vector, FakeEncoder.vector("hello world"))


def run_queued(make_batcher, texts: list[str], max_batch: int):
    """``texts`` queued behind a running call, then released: ``(encoder, first future, results)``."""
    encoder = FakeEncoder(gate=True)
    batcher = make_batcher(encoder, max_batch=max_batch, gather_ms=0)
    first, futures = queue_behind_running_call(batcher, encoder, texts)
    encoder.gate.set()
    return encoder, first, [future.result(timeout=30) for future in futures]


def test_queries_waiting_together_share_one_call(make_batcher):
    texts = [f"query {n}" for n in range(20)]
    encoder, first, results = run_queued(make_batcher, texts, max_batch=32)
    assert first.result(timeout=30) is not None
    assert encoder.calls == [["first"], texts]  # the 20 queued ones: ONE call
    for text, vector in zip(texts, results):
        np.testing.assert_array_equal(vector, FakeEncoder.vector(text))


def test_batch_size_limit_splits_the_queue(make_batcher):
    texts = [f"q{n}" for n in range(20)]
    encoder, _, _ = run_queued(make_batcher, texts, max_batch=8)
    assert [len(call) for call in encoder.calls] == [1, 8, 8, 4]
    assert [text for call in encoder.calls[1:] for text in call] == texts  # arrival order kept


def test_token_budget_splits_the_queue(make_batcher):
    encoder = FakeEncoder(gate=True)
    # every text costs 10 tokens; 30 padded tokens per call -> 3 texts per call
    batcher = make_batcher(encoder, max_batch=32, max_tokens=30, count_tokens=lambda text: 10, gather_ms=0)
    _, futures = queue_behind_running_call(batcher, encoder, [f"q{n}" for n in range(7)])
    encoder.gate.set()
    for future in futures:
        future.result(timeout=30)
    assert [len(call) for call in encoder.calls] == [1, 3, 3, 1]


def test_an_over_budget_query_still_goes_alone(make_batcher):
    encoder = FakeEncoder()
    batcher = make_batcher(encoder, max_tokens=5, count_tokens=lambda text: 100)
    batcher.encode("very long")
    assert encoder.calls == [["very long"]]


def test_many_threads_all_get_their_own_vector(make_batcher):
    encoder = FakeEncoder()
    batcher = make_batcher(encoder, max_batch=16, gather_ms=2)
    texts = [f"thread query {n}" for n in range(200)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(batcher.encode, texts))
    for text, vector in zip(texts, results):
        np.testing.assert_array_equal(vector, FakeEncoder.vector(text))
    assert sum(len(call) for call in encoder.calls) == len(texts)  # each encoded once
    assert max(len(call) for call in encoder.calls) <= 16
    assert list(batcher.stats.batch_sizes) == [len(call) for call in encoder.calls]


def test_encode_many_batches_and_keeps_order(make_batcher):
    encoder = FakeEncoder()
    batcher = make_batcher(encoder, max_batch=4)
    texts = [f"t{n}" for n in range(10)]
    vectors = batcher.encode_many(texts)
    assert vectors.shape == (10, 3)
    np.testing.assert_array_equal(vectors, np.stack([FakeEncoder.vector(text) for text in texts]))
    assert all(len(call) <= 4 for call in encoder.calls) and len(encoder.calls) < 10


def test_error_reaches_every_caller_of_the_batch_and_the_thread_survives(make_batcher):
    encoder = FakeEncoder(gate=True, fail_on="bad")
    batcher = make_batcher(encoder, gather_ms=0)
    _, futures = queue_behind_running_call(batcher, encoder, ["good", "bad", "also good"])
    encoder.gate.set()
    for future in futures:
        with pytest.raises(ValueError, match="cannot encode 'bad'"):
            future.result(timeout=30)
    encoder.fail_on = None
    np.testing.assert_array_equal(batcher.encode("good"), FakeEncoder.vector("good"))  # not cached as failed


def test_wrong_row_count_is_an_error_for_callers():
    batcher = QueryBatcher(lambda texts: np.zeros((len(texts) + 1, 3)))
    try:
        with pytest.raises(RuntimeError, match="shape"):
            batcher.encode("x")
    finally:
        batcher.close()


def test_cache_answers_repeats_by_normalised_text(make_batcher):
    encoder = FakeEncoder()
    batcher = make_batcher(encoder, cache_size=2)
    first = batcher.encode("  gold   price ")
    again = batcher.encode("gold price")
    assert encoder.calls == [["gold price"]] and batcher.stats.cache_hits == 1
    np.testing.assert_array_equal(first, again)
    assert not again.flags.writeable  # shared through the cache: nobody may change it
    batcher.encode("a"), batcher.encode("b")  # evicts "gold price" (LRU of 2)
    batcher.encode("gold price")
    assert encoder.calls[-1] == ["gold price"]


def test_cache_can_be_off(make_batcher):
    encoder = FakeEncoder()
    batcher = make_batcher(encoder, cache_size=0)
    batcher.encode("same"), batcher.encode("same")
    assert len(encoder.calls) == 2


def test_same_text_waiting_twice_is_encoded_once(make_batcher):
    encoder = FakeEncoder(gate=True)
    batcher = make_batcher(encoder, gather_ms=0, cache_size=0)
    _, futures = queue_behind_running_call(batcher, encoder, ["dup", "dup", "other"])
    encoder.gate.set()
    results = [future.result(timeout=30) for future in futures]
    assert encoder.calls[1] == ["dup", "other"]
    np.testing.assert_array_equal(results[0], results[1])


def test_query_key_normalises():
    assert query_key(" a \n b\t") == "a b"
    assert query_key("e\u0301") == "\u00e9"  # NFC


def test_closed_batcher_refuses_and_finishes_queued_work():
    encoder = FakeEncoder(gate=True)
    batcher = QueryBatcher(encoder, gather_ms=0)
    _, futures = queue_behind_running_call(batcher, encoder, ["queued"])
    encoder.gate.set()
    batcher.close()
    assert futures[0].result(timeout=30) is not None
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit("late")


def test_tasks_run_on_the_model_thread_after_waiting_queries(make_batcher):
    encoder = FakeEncoder(gate=True)
    batcher = make_batcher(encoder, gather_ms=0)
    first, futures = queue_behind_running_call(batcher, encoder, ["queued query"])
    order: list[str] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        task = pool.submit(batcher.run, lambda: order.append(threading.current_thread().name) or "done")
        encoder.gate.set()
        assert task.result(timeout=30) == "done"
    assert order == ["bisearch-query"]  # the thread that encodes the queries
    assert encoder.calls == [["first"], ["queued query"]]  # the query queued first went first
    with pytest.raises(ZeroDivisionError):  # a task's error reaches its caller; the thread lives on
        batcher.run(lambda: 1 / 0)
    assert batcher.encode("after") is not None
    assert batcher.run(lambda: batcher.run(lambda: "nested")) == "nested"  # no deadlock from inside
