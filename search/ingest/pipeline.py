"""Documents into a backend: read → chunk → embed → keyword tokens → ``backend.write``.

The backend only stores; everything that needs the model or the tokenizer happens here.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np

from search.backends.base import Backend, DocumentRefused, PreparedDocument
from search.backends.codec import check_doc_id
from search.chunking import Chunker
from search.chunking.locate import locate, passage_title
from search.model.embedder import Embedder
from search.text.language import keyword_tokens
from search.loading import DocumentError, LoadedFile, LoadLimits, discover_files
from search.loading.isolated import load_isolated
from search.types import Document, ModelInfo, Passage

INGEST_BATCH_FILES = 32
EMBED_SLICE = 32  # passages embedded between two cancellation checks
Status = Literal["added", "replaced", "unchanged"]


@dataclass(frozen=True)
class IngestOutcome:
    doc_id: str
    status: Status
    chunks: int


@dataclass
class IngestSummary:
    """What an ingest run did, file by file."""

    outcomes: list[IngestOutcome] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    ocr_seconds: list[float] = field(default_factory=list)  # one entry per page read by OCR

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def chunks_added(self) -> int:
        return sum(outcome.chunks for outcome in self.outcomes)

    def as_dict(self) -> dict[str, object]:
        return {"files": len(self.outcomes) + len(self.failed), "added": self.count("added"),
                "replaced": self.count("replaced"), "unchanged": self.count("unchanged"),
                "failed": len(self.failed), "chunks_added": self.chunks_added, "errors": self.failed,
                "ocr_pages": len(self.ocr_seconds), "ocr_seconds_per_page": self.ocr_seconds_per_page}

    @property
    def ocr_seconds_per_page(self) -> float | None:
        """Mean OCR time of the pages OCR read (None when it read none)."""
        return round(sum(self.ocr_seconds) / len(self.ocr_seconds), 2) if self.ocr_seconds else None


class Ingester:
    """Prepares documents with one model and writes them through one backend."""

    def __init__(self, backend: Backend, embedder: Embedder, chunker: Chunker, limits: LoadLimits = LoadLimits(),
                 should_stop: Callable[[], None] = lambda: None, passage_titles: bool = True):
        """``should_stop`` is called between embedding slices and batches; it raises to cancel a run
        (what earlier batches committed stays; the running batch never reaches its transaction).

        ``passage_titles``: a new index embeds its passages with their titles (see
        :func:`search.chunking.passage_title`); an existing index keeps the way it records, so one
        index never mixes the two."""
        self.backend = backend
        self.embedder = embedder
        self.chunker = chunker
        self.limits = limits
        self.should_stop = should_stop
        self.passage_titles = index_model(backend, embedder.info, passage_titles).passage_titles

    def prepare(self, documents: Sequence[Document], files: dict[str, bytes] | None = None,
                progress: bool = False) -> list[PreparedDocument]:
        """Chunk, embed and tokenise documents (one encode call for all their passages, which also
        gives each passage's sentence vectors for evidence spans)."""
        chunked = [chunk_document(self.chunker, document, (files or {}).get(document.id), self.should_stop)
                   for document in documents]
        return embed_chunked(self.embedder, chunked, self.should_stop, progress, self.passage_titles)

    def add(self, documents: Sequence[Document], files: dict[str, bytes] | None = None,
            progress: bool = False) -> list[IngestOutcome]:
        """Add new documents, replace changed ones, skip unchanged ones; one atomic write.

        ``files`` holds the original bytes (PDF, DOCX) by document id, kept and served with it.

        When one batch holds the same id twice, the last one wins.
        """
        unique = list({document.id: document for document in documents}.values())
        known = {document.id: self.backend.document_hash(document.id) for document in unique}
        changed = [document for document in unique if known[document.id] != document.sha256]
        prepared = self.prepare(changed, files, progress)
        if prepared:
            self.backend.write(prepared)
        sizes = {item.document.id: len(item.passages) for item in prepared}
        return [IngestOutcome(document.id, outcome_status(known[document.id], document), sizes.get(document.id, 0))
                for document in unique]

    def ingest_paths(self, paths: list[Path], progress: bool = False, batch_files: int = INGEST_BATCH_FILES,
                     root: Path | None = None, on_file: Callable[[int, int], None] | None = None,
                     limits: LoadLimits | None = None) -> IngestSummary:
        """Ingest files and folders; unreadable files are reported and skipped, never half-ingested.

        Each file is read in a child process under ``limits`` (:mod:`search.loading.isolated`): a file
        that breaks a limit, or a reader, fails alone with one reason; ``should_stop`` cancels a read.

        With ``root`` (server-side ingest), files reached through symlinks that point outside it
        are ignored, and files are named (sources, messages) by their path inside the root.
        ``on_file(done, total)`` follows the progress; ``limits`` overrides the ingester's own.
        """
        from tqdm import tqdm

        summary = IngestSummary()
        files = discover_files(paths, root)
        summary.failed.extend(f"{path}: no such file or folder" for path in paths if not os.path.exists(path))
        batch: list[LoadedFile] = []
        bar = tqdm(total=len(files), unit="file", disable=not progress)
        pages = _page_bar(progress)
        first_file: dict[str, Path] = {}
        for position, (path, doc_id) in enumerate(files, start=1):
            name = _name(path, root)
            refused = file_refusal(self.backend, path, doc_id, root, first_file)
            loaded = refused or load_one(path, doc_id, name, limits or self.limits, pages, self.should_stop)
            if isinstance(loaded, str):
                summary.failed.append(loaded)
            else:
                batch.append(loaded)
                summary.ocr_seconds.extend(loaded.ocr_seconds)
            if batch and (len(batch) >= batch_files or position == len(files)):
                files_kept = {item.document.id: item.original for item in batch if item.original is not None}
                summary.outcomes.extend(self.add([item.document for item in batch], files_kept))
                bar.update(len(batch))
                batch = []
            if on_file:
                on_file(position, len(files))
        bar.update(len(files) - bar.n)
        bar.close()
        return summary


def file_refusal(backend: Backend, path: Path, doc_id: str, root: Path | None,
                 first_file: dict[str, Path]) -> str | None:
    """Why ``path`` is not ingested as ``doc_id`` (an id no backend can store, or one that another
    file of this run or of the index holds), or None. ``first_file`` remembers the run's ids (filled here)."""
    name = _name(path, root)
    try:
        check_doc_id(doc_id)
    except DocumentRefused as error:
        return f"{name}: {error}"
    if first_file.setdefault(doc_id, path) != path:
        return f"{name}: same document id {doc_id!r} as {_name(first_file[doc_id], root)}; rename one of them"
    if owner := _other_file_with_id(backend, doc_id, path, root):
        return f"{name}: document id {doc_id!r} already holds {owner}; rename the file or delete that document first"
    return None


def _other_file_with_id(backend: Backend, doc_id: str, path: Path, root: Path | None) -> str | None:
    """The source of the stored document ``doc_id`` when it is another file that still exists.

    Re-ingesting the same file (or one whose old source is gone: moved, renamed) replaces it;
    a second file that merely shares the name must not silently overwrite the first.
    """
    stored = backend.document(doc_id) if backend.document_hash(doc_id) else None
    if stored is None or not stored.source:
        return None
    other = Path(stored.source) if root is None or os.path.isabs(stored.source) else root / stored.source
    try:
        return None if not other.is_file() or os.path.samefile(other, path) else stored.source
    except OSError:
        return None


@dataclass(frozen=True)
class ChunkedDocument:
    """A document cut into located passages with their keyword tokens: all of it but the vectors
    (no model needed, only its tokenizer)."""

    document: Document
    passages: tuple[Passage, ...]
    tokens: tuple[tuple[str, ...], ...]
    original: bytes | None = None


def chunk_document(chunker: Chunker, document: Document, original: bytes | None = None,
                   should_stop: Callable[[], None] = lambda: None) -> ChunkedDocument:
    """The document's passages (pages and sections located) and their keyword tokens; ``should_stop``
    is called every few sentences (it raises to cancel)."""
    passages = tuple(locate(passage, document)
                     for passage in chunker.chunk(document.text, document.id, should_stop=should_stop))
    return ChunkedDocument(document, passages, tuple(tuple(keyword_tokens(p.text)) for p in passages), original)


def index_model(backend: Backend, info: ModelInfo, passage_titles: bool) -> ModelInfo:
    """The model the index records, after recording ``info`` (with ``passage_titles``) in a new one;
    raises :class:`~search.backends.ModelMismatchError` for another model or size."""
    backend.record_model(replace(info, passage_titles=passage_titles))
    return backend.model()


def embed_chunked(embedder: Embedder, chunked: Sequence[ChunkedDocument], should_stop: Callable[[], None] = lambda: None,
                  progress: bool = False, passage_titles: bool = True) -> list[PreparedDocument]:
    """Chunked documents with their passage and sentence vectors: one encode call for all their
    passages, in slices with a ``should_stop`` check between them. ``passage_titles``: each passage
    is embedded with its title (:func:`search.chunking.passage_title`), else ``title: none``."""
    texts = [passage.text for item in chunked for passage in item.passages]
    titles = [passage_title(passage, not item.document.title_guessed) for item in chunked for passage in item.passages
              ] if passage_titles else None
    parts, sentences = [embedder.encode_documents([], progress=False)], []
    for start in range(0, len(texts), EMBED_SLICE):
        should_stop()
        vectors, found = embedder.encode_passages(texts[start:start + EMBED_SLICE], progress=progress,
                                                  titles=None if titles is None else titles[start:start + EMBED_SLICE])
        parts.append(vectors)
        sentences += found
    should_stop()
    vectors, prepared, row = np.concatenate(parts), [], 0
    for item in chunked:
        end = row + len(item.passages)
        prepared.append(PreparedDocument(item.document, item.passages, item.tokens, vectors[row:end], item.original,
                                         tuple(sentences[row:end])))
        row = end
    return prepared


def load_one(path: Path, doc_id: str, name: str, limits: LoadLimits, pages=None,
             should_stop: Callable[[], None] | None = None) -> LoadedFile | str:
    """One file read into a document (in a child process, under ``limits``), or the one-line reason it
    was not."""
    try:
        return load_isolated(path, doc_id, name=name, limits=limits, progress=pages, should_stop=should_stop)
    except FileNotFoundError:
        return f"{name}: deleted during the ingest"
    except DocumentError as error:
        return str(error)
    except OSError as error:
        return f"{name}: {error.strerror or type(error).__name__}"


def outcome_status(known: str | None, document: Document) -> Status:
    """added (new id), replaced (changed text) or unchanged (same SHA-256 as stored)."""
    if known is None:
        return "added"
    return "unchanged" if known == document.sha256 else "replaced"


def _name(path: Path, root: Path | None) -> str:
    """How messages and sources call a file: its path inside ``root`` (server side), else as given."""
    if root is not None and path.resolve().is_relative_to(root.resolve()):
        return path.resolve().relative_to(root.resolve()).as_posix()
    return path.name if root is not None else str(path)


def _page_bar(progress: bool):
    """A per-page progress callback for paged files (PDF, TIFF), or None: the bar shows once a file
    has taken a second (a long PDF, pages read by OCR)."""
    if not progress:
        return None
    from tqdm import tqdm

    bars: dict[str, object] = {}

    def update(done: int, total: int) -> None:
        bar = bars.get("bar")
        if bar is None or bar.total != total or done == 1:
            if bar is not None:
                bar.close()
            bar = bars["bar"] = tqdm(total=total, unit="page", leave=False, delay=1.0)
        bar.update(done - bar.n)
        if done == total:
            bar.close()

    return update
