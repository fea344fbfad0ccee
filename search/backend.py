"""The interface a storage/search backend offers the retriever, API and reports.

:class:`search.indexing.SearchIndex` (SQLite + FTS5 + FAISS on one machine) is the one
implementation here. A distributed backend (OpenSearch/Elasticsearch k-NN with a Chinese
analyser, Qdrant or Milvus in cluster mode) plugs in by offering the same methods; see
``docs/SCALING.md``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Iterable, Protocol, runtime_checkable

import numpy as np

from search.loading import Document


@runtime_checkable
class PassageStore(Protocol):
    """Documents and passages with their text, offsets, keyword index and vectors."""

    def document(self, doc_id: str): ...
    def list_documents(self, limit: int = 50, offset: int = 0) -> list[dict]: ...
    def counts(self) -> dict[str, int]: ...
    def chunks_by_id(self, ids: Iterable[int]) -> dict: ...
    def chunk_ids(self, script: str | None = None, doc_ids: tuple[str, ...] | None = None) -> np.ndarray: ...
    def vectors_of(self, ids: list[int]) -> dict[int, np.ndarray]: ...
    def keyword_search(self, tokens: list[str], limit: int, script: str | None = None,
                       doc_ids: tuple[str, ...] | None = None) -> list[tuple[int, float]]: ...


@runtime_checkable
class SearchBackend(Protocol):
    """What :class:`search.retrieval.Retriever` and :mod:`search.api` need from an index."""

    store: PassageStore
    lock: AbstractContextManager

    def dense_search(self, query: np.ndarray, k: int,
                     allowed: np.ndarray | None = None) -> list[tuple[int, float]]: ...
    def add_documents(self, documents: Iterable[Document], progress: bool = False) -> list: ...
    def delete_document(self, doc_id: str) -> bool: ...
    def stats(self) -> dict[str, object]: ...
