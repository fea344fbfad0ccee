"""The local backend: SQLite (the truth, FTS5 BM25) + FAISS (base snapshot + delta)."""

from search.backends.local.backend import DB_NAME, LocalBackend

__all__ = ["DB_NAME", "LocalBackend"]
