"""Documents into a backend: read → chunk → embed → keyword tokens → ``backend.write``.

The backend only stores; everything that needs the model or the tokenizer happens here.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Sequence

from search.backends.base import Backend, PreparedDocument
from search.chunking import Chunker
from search.embedding import Embedder
from search.language import keyword_tokens
from search.loading import DocumentError, LoadedFile, LoadLimits, discover_files, load_file
from search.types import Document, Passage

INGEST_BATCH_FILES = 32
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

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def chunks_added(self) -> int:
        return sum(outcome.chunks for outcome in self.outcomes)

    def as_dict(self) -> dict[str, object]:
        return {"files": len(self.outcomes) + len(self.failed), "added": self.count("added"),
                "replaced": self.count("replaced"), "unchanged": self.count("unchanged"),
                "failed": len(self.failed), "chunks_added": self.chunks_added, "errors": self.failed}


def locate(passage: Passage, document: Document) -> Passage:
    """The passage with its page range (paged documents) and nearest heading (sectioned ones)."""
    located = passage
    if document.pages:
        first = bisect_right(document.pages, passage.start)
        last = bisect_right(document.pages, passage.end - 1)
        label = document.page_labels[first - 1] if len(document.page_labels) >= first else None
        located = replace(located, page=first, page_end=last, page_label=label)
    if document.sections:
        starts = [start for start, _ in document.sections]
        index = bisect_right(starts, passage.start) - 1
        if index >= 0:
            located = replace(located, section=document.sections[index][1])
    return replace(located, title=document.title, source=document.source)


class Ingester:
    """Prepares documents with one model and writes them through one backend."""

    def __init__(self, backend: Backend, embedder: Embedder, chunker: Chunker, limits: LoadLimits = LoadLimits()):
        self.backend = backend
        self.embedder = embedder
        self.chunker = chunker
        self.limits = limits
        backend.record_model(embedder.info)

    def prepare(self, documents: Sequence[Document], files: dict[str, bytes] | None = None,
                progress: bool = False) -> list[PreparedDocument]:
        """Chunk, embed and tokenise documents (one encode call for all their passages)."""
        passages = [[locate(p, d) for p in self.chunker.chunk(d.text, d.id)] for d in documents]
        flat = [passage.text for group in passages for passage in group]
        vectors = self.embedder.encode_documents(flat, progress=progress)
        prepared, row = [], 0
        for document, group in zip(documents, passages):
            tokens = tuple(tuple(keyword_tokens(passage.text)) for passage in group)
            prepared.append(PreparedDocument(document, tuple(group), tokens, vectors[row:row + len(group)],
                                             (files or {}).get(document.id)))
            row += len(group)
        return prepared

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
        return [IngestOutcome(document.id, _status(known[document.id], document), sizes.get(document.id, 0))
                for document in unique]

    def ingest_paths(self, paths: list[Path], progress: bool = False, batch_files: int = INGEST_BATCH_FILES,
                     root: Path | None = None) -> IngestSummary:
        """Ingest files and folders; unreadable files are reported and skipped, never half-ingested.

        With ``root``, files reached through symlinks that point outside it are ignored.
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
            if first_file.setdefault(doc_id, path) != path:
                summary.failed.append(f"{path}: same document id {doc_id!r} as {first_file[doc_id]}; rename one of them")
            elif owner := self._other_file_with_id(doc_id, path):
                summary.failed.append(f"{path}: document id {doc_id!r} already holds {owner}; "
                                      f"rename the file or delete that document first")
            else:
                try:
                    batch.append(load_file(path, doc_id, limits=self.limits, progress=pages))
                except (DocumentError, OSError) as error:
                    summary.failed.append(str(error) if isinstance(error, DocumentError) else f"{path}: {error}")
            if batch and (len(batch) >= batch_files or position == len(files)):
                files_kept = {item.document.id: item.original for item in batch if item.original is not None}
                summary.outcomes.extend(self.add([item.document for item in batch], files_kept))
                bar.update(len(batch))
                batch = []
        bar.update(len(files) - bar.n)
        bar.close()
        return summary

    def _other_file_with_id(self, doc_id: str, path: Path) -> str | None:
        """The source of the stored document ``doc_id`` when it is another file that still exists.

        Re-ingesting the same file (or one whose old source is gone: moved, renamed) replaces it;
        a second file that merely shares the name must not silently overwrite the first.
        """
        stored = self.backend.document(doc_id) if self.backend.document_hash(doc_id) else None
        if stored is None or not stored.source or not os.path.isfile(stored.source) or not os.path.exists(path):
            return None
        return None if os.path.samefile(stored.source, path) else stored.source


def _page_bar(progress: bool):
    """A per-page progress callback for long PDFs (shown from the 20th page on), or None."""
    if not progress:
        return None
    from tqdm import tqdm

    bars: dict[str, object] = {}

    def update(done: int, total: int) -> None:
        if total >= 20:
            bar = bars.get("bar")
            if bar is None or bar.total != total or done == 1:
                bar = bars["bar"] = tqdm(total=total, unit="page", leave=False)
            bar.update(done - bar.n)
            if done == total:
                bar.close()

    return update


def _status(known: str | None, document: Document) -> Status:
    if known is None:
        return "added"
    return "unchanged" if known == document.sha256 else "replaced"
