"""The local backend's HNSW base through a real index and the real model."""

from __future__ import annotations

import shutil

from search.backends.local import LocalBackend
from search.backends.local.vectors import IndexSettings
from search.chunking import Chunker
from search.ingest.pipeline import Ingester
from search.loading import make_document
from search.types import Filter


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
