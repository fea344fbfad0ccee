"""Vector index kinds: exact, HNSW and IVF-PQ with exact re-scoring, chosen by size."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from search.backends.local import LocalBackend
from search.backends.local.vectors import (AllowedIds, IndexSettings, SnapshotInfo, VectorIndex, VectorIndexError, ivf_lists,
                                     pq_subquantizers)
from search.chunking import Chunker
from search.ingest.pipeline import Ingester
from search.loading import make_document
from search.types import Filter

DIMENSION = 64
COUNT = 20_000


def clustered_vectors(count: int, dimension: int, seed: int = 0) -> np.ndarray:
    """Normalised vectors around random topic centres, shaped like real embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(count // 100, dimension))
    vectors = centres[rng.integers(0, len(centres), count)] + 0.6 * rng.normal(size=(count, dimension))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus() -> tuple[np.ndarray, np.ndarray]:
    return np.arange(COUNT, dtype=np.int64) * 7 + 1, clustered_vectors(COUNT, DIMENSION)


def build(corpus, **settings) -> VectorIndex:
    ids, vectors = corpus

    def batches():
        for start in range(0, len(ids), 4096):
            yield ids[start:start + 4096], vectors[start:start + 4096]

    return VectorIndex.build(DIMENSION, batches, len(ids), IndexSettings(**settings))


def exact_lookup(corpus):
    ids, vectors = corpus
    position = {int(passage_id): row for row, passage_id in enumerate(ids)}
    return lambda wanted: {i: vectors[position[i]] for i in wanted if i in position}


def recall_at_10(index: VectorIndex, corpus, exact=None, queries: int = 50) -> float:
    ids, vectors = corpus
    truth = build(corpus, kind="flat")
    rng = np.random.default_rng(1)
    hits = 0
    for row in rng.choice(len(ids), queries, replace=False):
        query = vectors[row] + 0.05 * rng.normal(size=DIMENSION).astype(np.float32)
        expected = {i for i, _ in truth.search(query, 10)}
        hits += len(expected & {i for i, _ in index.search(query, 10, exact=exact)})
    return hits / (10 * queries)


def test_kind_follows_size_and_settings():
    auto = IndexSettings(exact_limit=50_000)
    assert auto.kind_for(100) == "flat" and auto.kind_for(49_999) == "flat"
    assert auto.kind_for(50_000) == "ivfpq"
    assert IndexSettings(kind="hnsw").kind_for(5_000) == "flat"  # too small to be worth approximating
    assert IndexSettings(kind="hnsw").kind_for(20_000) == "hnsw"
    with pytest.raises(VectorIndexError, match="unknown index kind"):
        IndexSettings(kind="annoy")
    assert pq_subquantizers(768, 1 / 4) == 192 and pq_subquantizers(256, 1 / 8) == 32
    assert ivf_lists(1_000_000) == 4000 and ivf_lists(20_000) == 512


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_approximate_kinds_keep_recall_against_exact_search(corpus, kind):
    index = build(corpus, kind=kind)
    assert index.kind == kind and len(index) == COUNT
    assert recall_at_10(index, corpus, exact=exact_lookup(corpus)) >= 0.95


def test_ivfpq_rescoring_returns_true_cosines(corpus):
    ids, vectors = corpus
    index = build(corpus, kind="ivfpq")
    hits = index.search(vectors[3], 5, exact=exact_lookup(corpus))
    assert hits[0][0] == ids[3] and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    for passage_id, score in hits:
        assert score == pytest.approx(float(vectors[(passage_id - 1) // 7] @ vectors[3]), abs=1e-5)
    assert [score for _, score in hits] == sorted((score for _, score in hits), reverse=True)


def test_small_filter_is_exact_on_approximate_kinds(corpus):
    ids, vectors = corpus
    allowed = ids[::997]
    exact = exact_lookup(corpus)
    for kind in ("hnsw", "ivfpq"):
        hits = build(corpus, kind=kind).search(vectors[0], 5, allowed=AllowedIds(allowed), exact=exact)
        expected = sorted(allowed, key=lambda i: -float(exact([int(i)])[int(i)] @ vectors[0]))[:5]
        assert [i for i, _ in hits] == [int(i) for i in expected]


def test_save_load_keeps_the_kind_and_the_description(corpus, tmp_path):
    ivf = build(corpus, kind="ivfpq")
    info = SnapshotInfo(generation=3, max_id=int(corpus[0][-1]), count=COUNT, id_sum=int(corpus[0].sum()))
    loaded, described = VectorIndex.load(ivf.save(tmp_path, info), DIMENSION, IndexSettings(kind="ivfpq"))
    assert loaded.kind == "ivfpq" and len(loaded) == COUNT and described == info


def test_local_backend_with_hnsw_matches_exact(tmp_path, seed_index_dir, embedder):
    """Through the real index: an HNSW base (forced) gives the exact index's answers, with a delta."""
    folder = tmp_path / "index"
    shutil.copytree(seed_index_dir, folder)
    flat = LocalBackend(folder)
    hnsw = LocalBackend(folder, IndexSettings(kind="hnsw", min_approximate=0))
    ingester = Ingester(hnsw, embedder, Chunker(embedder.tokenizer))
    ingester.add([make_document("jade", "Jade is graded by colour and translucency.")])
    assert hnsw.delete("jade")
    query = embedder.encode_query("生产周期比全球平均快多少")
    assert hnsw._current_view().base.kind == "hnsw"  # the flat snapshot was rebuilt for the new settings
    assert [i for i, _ in hnsw.dense_search(query, 5, Filter())] == [i for i, _ in flat.dense_search(query, 5, Filter())]
