"""Open the pieces of the service together from one Settings: model, backend, retriever, ingester."""

from __future__ import annotations

from functools import lru_cache

from search.backends import Backend, open_backend
from search.chunking import Chunker
from search.model.embedder import Embedder
from search.ingest.pipeline import Ingester
from search.loading import LoadLimits
from search.ranking.retriever import Retriever
from search.settings import Settings

#: The settings that make one loaded model differ from another (the cache key of ``load_embedder``).
EMBEDDER_SETTINGS = ("model", "model_dir", "dim", "int8", "device", "chunk_tokens", "runtime", "precision",
                     "query_batch", "query_gather_ms", "query_cache", "model_process")
_native_dimensions: dict[str, int] = {}  # model -> full vector size, once loaded untruncated


def load_embedder(settings: Settings, dimension: int | None = None) -> Embedder:
    """One loaded model per (model, size, runtime options) and process.

    Asking for the model's full size reuses the untruncated model already loaded.
    """
    dimension = dimension or settings.dim
    if dimension is not None and dimension == _native_dimensions.get(settings.model):
        dimension = None
    embedder = _cached_embedder(tuple((name, dimension if name == "dim" else getattr(settings, name))
                                      for name in EMBEDDER_SETTINGS))
    if dimension is None:
        _native_dimensions[settings.model] = embedder.info.dimension
    return embedder


@lru_cache(maxsize=4)
def _cached_embedder(key: tuple[tuple[str, object], ...]) -> Embedder:
    return Embedder.from_settings(Settings.model_construct(**dict(key)))


def embedder_for(backend: Backend, settings: Settings) -> Embedder:
    """The model for an index: an existing index keeps the vector size it was built with."""
    recorded = backend.model()
    return load_embedder(settings, settings.dim or (recorded.dimension if recorded else None))


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
                    LoadLimits.from_settings(settings), passage_titles=settings.passage_titles)
