"""Open the pieces of the service together from one Settings: model, backend, retriever, ingester."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from search.backends import Backend, open_backend
from search.chunking import Chunker
from search.embedding import Embedder
from search.ingest import Ingester
from search.loading import LoadLimits
from search.retrieval import Retriever
from search.settings import Settings

_native_dimensions: dict[str, int] = {}  # model -> full vector size, once loaded untruncated


def load_embedder(settings: Settings, dimension: int | None = None) -> Embedder:
    """One loaded model per (model, chunk size, dimension, runtime options) and process.

    Asking for the model's full size reuses the untruncated model already loaded.
    """
    dimension = dimension or settings.dim
    if dimension is not None and dimension == _native_dimensions.get(settings.model):
        dimension = None
    embedder = _cached_embedder(settings.model, settings.chunk_tokens, dimension, settings.int8, settings.device,
                                settings.model_dir)
    if dimension is None:
        _native_dimensions[settings.model] = embedder.info.dimension
    return embedder


@lru_cache(maxsize=4)
def _cached_embedder(model: str, chunk_tokens: int, dimension: int | None, quantize: bool, device: str | None,
                     model_dir: Path | None) -> Embedder:
    return Embedder(model, device=device, max_tokens=chunk_tokens, dimension=dimension, quantize=quantize,
                    model_dir=model_dir)


def embedder_for(backend: Backend, settings: Settings) -> Embedder:
    """The model for an index: an existing index keeps the vector size it was built with."""
    recorded = backend.model()
    embedder = load_embedder(settings, settings.dim or (recorded.dimension if recorded else None))
    return embedder


def open_retriever(settings: Settings, embedder: Embedder | None = None) -> Retriever:
    """The backend and model of ``settings`` as a retriever (the model is checked against the index)."""
    backend = open_backend(settings)
    embedder = embedder or embedder_for(backend, settings)
    recorded = backend.model()
    if recorded is not None:
        backend.record_model(embedder.info)  # raises on a different model or size
    return Retriever(backend, embedder)


def open_ingester(settings: Settings, embedder: Embedder | None = None,
                  backend: Backend | None = None) -> Ingester:
    """An ingester over ``backend`` (default: the one ``settings`` names)."""
    backend = backend or open_backend(settings)
    embedder = embedder or embedder_for(backend, settings)
    return Ingester(backend, embedder, Chunker(embedder.tokenizer, settings.chunk_tokens),
                    LoadLimits.from_settings(settings))
