"""Open the pieces of the service together: model, index and retriever."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from search.embedding import Embedder, ModelInfo
from search.indexing import DEFAULT_CHUNK_TOKENS, IngestOutcome, SearchIndex
from search.loading import DocumentError, discover_files, read_document
from search.model_store import DEFAULT_MODEL_NAME
from search.retrieval import Retriever

DEFAULT_INDEX_DIR = Path(os.environ.get("BISEARCH_INDEX", "index"))
INGEST_BATCH_FILES = 32
log = logging.getLogger(__name__)


@dataclass
class IngestSummary:
    """What an ingest run did, file by file."""

    outcomes: list[IngestOutcome] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def chunks_added(self) -> int:
        return sum(outcome.chunks for outcome in self.outcomes)

    def as_dict(self) -> dict[str, object]:
        return {"files": len(self.outcomes) + len(self.failed), "added": self.count("added"),
                "replaced": self.count("replaced"), "unchanged": self.count("unchanged"),
                "failed": len(self.failed), "chunks_added": self.chunks_added, "errors": self.failed}


_native_dimensions: dict[str, int] = {}  # model -> full vector size, once loaded untruncated


def load_embedder(model: str | None = None, chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
                  dimension: int | None = None, quantize: bool = False) -> Embedder:
    """One loaded model per (model, chunk size, dimension, quantisation) and process.

    Asking for the model's full size reuses the untruncated model already loaded.
    """
    name = model or os.environ.get("BISEARCH_MODEL") or DEFAULT_MODEL_NAME
    if dimension is not None and dimension == _native_dimensions.get(name):
        dimension = None
    embedder = _cached_embedder(name, chunk_tokens, dimension, quantize)
    if dimension is None:
        _native_dimensions[name] = embedder.info.dimension
    return embedder


@lru_cache(maxsize=4)
def _cached_embedder(model: str, chunk_tokens: int, dimension: int | None, quantize: bool) -> Embedder:
    return Embedder(model, max_tokens=chunk_tokens, dimension=dimension, quantize=quantize)


def _recorded_model(index_dir: Path) -> ModelInfo | None:
    """The model an existing index was built with (None for a new index)."""
    index = SearchIndex(index_dir)
    try:
        return index.model_info
    finally:
        index.store.close()


def open_retriever(index_dir: Path = DEFAULT_INDEX_DIR, model: str | None = None,
                   embedder: Embedder | None = None, chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
                   dimension: int | None = None, quantize: bool = False) -> Retriever:
    """Load the model (unless given) and open the index at ``index_dir``.

    ``dimension`` truncates vectors for a new index; an existing index keeps the
    dimension it was built with.
    """
    if embedder is None:
        recorded = _recorded_model(index_dir)
        embedder = load_embedder(model, chunk_tokens, dimension or (recorded.dimension if recorded else None),
                                 quantize)
    return Retriever(SearchIndex(index_dir, embedder, chunk_tokens), embedder)


def _other_file_with_id(index: SearchIndex, doc_id: str, path: Path) -> str | None:
    """The source of the stored document ``doc_id`` when it is another file that still exists.

    Re-ingesting the same file (or one whose old source is gone: moved, renamed) replaces it;
    a second file that merely shares the name must not silently overwrite the first.
    """
    stored = index.store.document(doc_id)
    if stored is None or not stored.source or not os.path.isfile(stored.source) or not os.path.exists(path):
        return None
    return None if os.path.samefile(stored.source, path) else stored.source


def ingest_paths(index: SearchIndex, paths: list[Path], progress: bool = False,
                 batch_files: int = INGEST_BATCH_FILES, root: Path | None = None) -> IngestSummary:
    """Ingest files and folders; unreadable files are reported and skipped, never half-ingested.

    With ``root``, files reached through symlinks that point outside it are ignored.
    """
    from tqdm import tqdm

    summary = IngestSummary()
    files = discover_files(paths, root)
    missing = [str(path) for path in paths if not os.path.exists(path)]
    summary.failed.extend(f"{name}: no such file or folder" for name in missing)
    batch = []
    bar = tqdm(total=len(files), unit="file", disable=not progress)
    first_file: dict[str, Path] = {}
    for position, (path, doc_id) in enumerate(files, start=1):
        if first_file.setdefault(doc_id, path) != path:
            summary.failed.append(f"{path}: same document id {doc_id!r} as {first_file[doc_id]}; rename one of them")
        elif owner := _other_file_with_id(index, doc_id, path):
            summary.failed.append(f"{path}: document id {doc_id!r} already holds {owner}; "
                                  f"rename the file or delete that document first")
        elif os.path.exists(path):
            try:
                batch.append(read_document(path, doc_id))
            except (DocumentError, OSError) as error:
                summary.failed.append(str(error))
        if batch and (len(batch) >= batch_files or position == len(files)):
            summary.outcomes.extend(index.add_documents(batch))
            bar.update(len(batch))
            batch = []
    bar.update(len(files) - bar.n)
    bar.close()
    return summary
