"""Storage backends behind one protocol (:mod:`search.backends.base`), chosen by settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from search.backends.base import (Backend, BackendError, DocumentRefused, Fields, ModelMismatchError, PreparedDocument,
                                  Row)
from search.errors import InvalidInput

if TYPE_CHECKING:
    from search.settings import Settings

__all__ = ["Backend", "BackendError", "DocumentRefused", "Fields", "ModelMismatchError", "PreparedDocument", "Row",
           "open_backend", "index_exists"]


def open_backend(settings: "Settings") -> Backend:
    """The backend ``settings.backend`` names: ``local`` (folder ``settings.index``) or ``milvus``."""
    if settings.backend == "milvus":
        from search.backends.milvus import MilvusBackend

        if not settings.milvus_uri:
            raise InvalidInput("the milvus backend needs --milvus-uri (or BISEARCH_MILVUS_URI)")
        return MilvusBackend(settings.milvus_uri)
    from search.backends.local import LocalBackend
    from search.backends.local.vectors import IndexSettings

    return LocalBackend(settings.index, IndexSettings.from_settings(settings))


def index_exists(settings: "Settings") -> bool:
    """Whether a local index is already there (read commands refuse to create an empty one)."""
    from search.backends.local import DB_NAME

    return settings.backend != "local" or (settings.index / DB_NAME).is_file()
