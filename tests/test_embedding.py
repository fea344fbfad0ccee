"""The real model: prompts, unit vectors, Matryoshka truncation, one shared load."""

from __future__ import annotations

import numpy as np

from search.engine import load_embedder
from search.settings import Settings


def test_queries_and_passages_use_the_models_own_prompts(embedder):
    assert embedder.info.query_prompt.startswith("task: search result")
    assert embedder.info.document_prompt.startswith("title: none")
    query = embedder.encode_query("黄金价格")
    passages = embedder.encode_documents(["Gold prices rose.", "Pearls are white."])
    assert query.shape == (embedder.info.dimension,) and passages.shape == (2, embedder.info.dimension)
    assert np.allclose(np.linalg.norm(passages, axis=1), 1, atol=1e-4)
    assert float(passages[0] @ query) > float(passages[1] @ query)  # across languages


def test_the_full_size_reuses_the_loaded_model(embedder):
    assert load_embedder(Settings(), dimension=embedder.info.dimension) is embedder
