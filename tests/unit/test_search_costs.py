"""Every search has a cost ceiling, checked before any work, and weighs search slots by cost (issue 27.6,
27.7, 27.11 and the general fix). Runs over a local backend with fake vectors (no model)."""

from __future__ import annotations

import threading
import time
import tracemalloc

import anyio
import numpy as np
import pytest

from fakes import FAKE_MODEL, FakeEmbedder, prepared
from search.api.slots import Slots
from search.backends.local import LocalBackend
from search.ranking import budget
from search.ranking.budget import QueryError, plan_search
from search.ranking.collapse import fold_duplicates
from search.ranking.retriever import Retriever


# -- limits, checked before any work ----------------------------------------------------------------
def test_330_copies_of_a_phrase_are_refused_naming_the_limit():
    """27.6: 330 copies of "软件包" took 15 s on a 30k-passage index and slowed a plain query to 14 s."""
    with pytest.raises(QueryError, match=r"at most 16 quoted phrases and -exclusions \(limit MAX_TERMS; this one holds 330\)"):
        plan_search(" ".join(['"软件包"'] * 330))
    with pytest.raises(QueryError, match="MAX_TERMS; this one holds 660"):
        plan_search("package " + " ".join(["-z"] * 660), k=100, offset=1000)


def test_long_phrases_and_deep_narrowed_windows_are_refused():
    with pytest.raises(QueryError, match=r"at most 100 characters \(limit MAX_TERM_CHARS; one holds 120\)"):
        plan_search('"' + "软" * 120 + '"')
    for narrowing in ({"collapse": True}, {"query": "package -z"}, {"query": '"software package"'}):
        query = narrowing.get("query", "software package")
        with pytest.raises(QueryError, match=r"k \+ offset must be at most 200 .*MAX_NARROWED_WINDOW; this asks for 1100"):
            plan_search(query, k=100, offset=1000, collapse=narrowing.get("collapse", False))
    assert plan_search("software package", k=100, offset=1000).pool == 4400  # a plain deep page stays allowed
    assert plan_search("package -z", k=100, offset=100).wanted == 200


def test_the_plan_weighs_a_search_by_its_work():
    assert plan_search("gold").slots == 1
    assert plan_search('"gold" -silver').slots == 1
    assert plan_search("gold", k=100, offset=1000).slots == 11
    assert plan_search("gold", k=100, offset=100, collapse=True).slots == 8
    assert plan_search("gold", evidence=10).slots == 1 + 10 * budget.SLOTS_PER_EVIDENCE_HIT
    assert plan_search("软件包 " * 330).slots == 1 + 1319 // budget.QUERY_CHARS_PER_SLOT  # the model's time


# -- phrases and exclusions read without the store's lock -----------------------------------------------
@pytest.fixture
def backend(tmp_path):
    backend = LocalBackend(tmp_path)
    backend.record_model(FAKE_MODEL)
    backend.write([prepared("en", ["The software package is built with debhelper.", "Gold prices rose."]),
                   prepared("zh", ["软件包由 debhelper 构建。", "黄金价格上涨。"])])
    yield backend
    backend.close()


def test_phrase_and_exclusion_checks_run_while_a_write_holds_the_store_lock(backend):
    """27.6: the checks ran under the store's lock, so one hostile query held up every search."""
    retriever = Retriever(backend, FakeEmbedder())
    found: list = []
    backend.store.lock.acquire()  # a long write in progress
    try:
        search = threading.Thread(target=lambda: found.append(retriever.search('"软件包" "software package" -gold',
                                                                                 k=5, collapse=True)))
        search.start()
        search.join(10)
        assert not search.is_alive(), "the search waited for the store's lock"
    finally:
        backend.store.lock.release()
    assert {hit.passage.doc_id for hit in found[0].hits} == {"en", "zh"}


# -- 27.7: collapse never builds a square matrix -----------------------------------------------------------
def test_folding_duplicates_costs_passages_times_kept_groups_not_a_square_matrix():
    """27.7: ``collapse=doc`` with k=100&offset=1000 on 20k documents took 43 s and 1.9 GB (a square
    similarity matrix and a Python loop over every pair)."""
    count, dimension = 6000, 32
    vectors = np.random.default_rng(7).standard_normal((count, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    doc_ids, texts = [f"d{n}" for n in range(count)], [f"passage {n}" for n in range(count)]
    tracemalloc.start()
    started = time.process_time()
    try:
        kept = fold_duplicates(doc_ids, texts, vectors, limit=50)
        seconds, peak = time.process_time() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [group.index for group in kept] == list(range(50))
    assert peak < count * count * 4 / 10, f"{peak:,} bytes: a square matrix is {count * count * 4:,}"
    assert seconds < 5


def test_folding_with_a_limit_keeps_the_same_first_groups():
    vectors = np.eye(4, dtype=np.float32)[[0, 0, 1, 2, 1, 3]]
    texts = ["jade bangles from myanmar"] * 6
    doc_ids = ["a", "b", "c", "d", "e", "f"]
    full = fold_duplicates(doc_ids, texts, vectors)
    assert [(group.index, group.also_in) for group in full] == [(0, ["b"]), (2, ["e"]), (3, []), (5, [])]
    assert [(group.index, group.also_in) for group in fold_duplicates(doc_ids, texts, vectors, limit=2)] == [
        (0, ["b"]), (2, ["e"])]


# -- 27.11: evidence embeds a bounded number of sentences ---------------------------------------------------
class CountingEmbedder(FakeEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.sentences = 0

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        self.sentences += len(texts)
        return super().encode_documents(texts)


def test_evidence_embeds_at_most_the_sentence_budget(tmp_path):
    """27.11: evidence=10 over passages of many short sentences cost 30-36 s of CPU per request."""
    backend = LocalBackend(tmp_path)
    backend.record_model(FAKE_MODEL)
    many = [" ".join(f"Jade {word}." for word in "abcdefghijklmnopqrstuvwxyz"[:20] + "ABCDEFGHIJKLMNOPQRST"[:n])
            for n in range(10)]
    backend.write([prepared("many", many, with_sentences=True)])
    embedder = CountingEmbedder()
    hits = Retriever(backend, embedder).search("jade", k=10, evidence=10).hits
    assert len(hits) == 10 and 0 < embedder.sentences <= budget.MAX_EVIDENCE_SENTENCES
    assert all(hit.evidence for hit in hits)  # the hits past the budget keep their stored evidence
    backend.close()


# -- search slots weighed by cost ---------------------------------------------------------------------
def test_search_slots_are_weighed_and_served_in_order():
    async def scenario() -> list[str]:
        slots, order = Slots(4), []
        first = await slots.acquire(3)

        async def waiter(name: str, weight: int) -> None:
            held = await slots.acquire(weight)
            order.append(name)
            await anyio.sleep(0.01)
            slots.release(held)

        async with anyio.create_task_group() as group:
            group.start_soon(waiter, "heavy", 4)
            await anyio.sleep(0.01)
            group.start_soon(waiter, "light", 1)  # fits now, but waits its turn behind the heavy one
            await anyio.sleep(0.05)
            assert order == [] and slots.borrowed_tokens == 3
            slots.release(first)
        assert slots.borrowed_tokens == 0 and slots.weight(100) == 4 and slots.weight(0) == 1
        return order

    assert anyio.run(scenario) == ["heavy", "light"]


def test_a_cancelled_waiter_leaves_the_queue():
    async def scenario() -> int:
        slots = Slots(2)
        held = await slots.acquire(2)
        with anyio.move_on_after(0.05):
            await slots.acquire(1)
        slots.release(held)
        assert slots.borrowed_tokens == 0
        return await slots.acquire(2)

    assert anyio.run(scenario) == 2
