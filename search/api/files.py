"""Server-side files for ``POST /ingest``: resolved under the ingest root, regular files only.

Sources and messages name files relative to the root, never by absolute server path.
A file that is not regular (FIFO, device), too large, or gone by the time it is read is
reported as failed. To fold into ``search/ingest.py`` (with its ``should_stop`` hook).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import HTTPException

from search.api.deps import read_document, write_documents
from search.api.jobs import check_cancelled
from search.api.schemas import has_visible_text
from search.citations import public_source
from search.loading import DocumentError, decode_text, discover_files, make_document

BATCH_FILES = 8  # files per all-or-nothing write; a cancelled ingest keeps the batches before it


@dataclass
class IngestSummary:
    """What an ingest did, file by file (counts and failure messages with root-relative names)."""

    files: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {"added": 0, "replaced": 0, "unchanged": 0})
    chunks_added: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"files": self.files, **self.counts, "failed": len(self.errors), "chunks_added": self.chunks_added,
                "errors": self.errors}


def resolve_under_root(root: Path | None, path: str) -> Path:
    """``path`` resolved under the ingest root: a folder or a regular file; escapes are refused."""
    if root is None:
        raise HTTPException(status_code=403, detail="ingest over HTTP is disabled: set BISEARCH_INGEST_ROOT")
    if "\x00" in path:
        raise HTTPException(status_code=422, detail="path contains a NUL byte")
    try:
        resolved = (root / path).resolve()
        if not resolved.is_relative_to(root):
            raise HTTPException(status_code=403, detail=f"{path!r} is outside the ingest root")
        mode = os.stat(resolved).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise HTTPException(status_code=404, detail=f"{path!r} does not exist under the ingest root") from None
    except (OSError, RuntimeError, ValueError) as error:  # name too long, symlink loop, bad characters
        raise HTTPException(status_code=422, detail=f"cannot use path {path[:200]!r}: {type(error).__name__}") from None
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise HTTPException(status_code=422, detail=f"{path!r} is not a regular file or folder")
    return resolved


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file, opened without blocking (a FIFO is refused, not waited on)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DocumentError("not a regular file")
        if info.st_size > max_bytes:
            raise DocumentError(f"larger than {max_bytes} bytes")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise DocumentError(f"larger than {max_bytes} bytes")
        return data
    finally:
        os.close(fd)


def _load(path: Path, doc_id: str, name: str, max_bytes: int):
    text = decode_text(read_regular_file(path, max_bytes), name)
    if not has_visible_text(text):
        raise DocumentError(f"{name}: no text to index")
    return make_document(doc_id, text, source=name, is_html=path.suffix.lower() in (".html", ".htm"))


def _held_by_other_file(index, doc_id: str, path: Path, root: Path) -> str | None:
    """The stored source of ``doc_id`` when it is another file that still exists (moved files are replaced)."""
    stored = read_document(index, doc_id)
    if stored is None or not stored.source:
        return None
    other = Path(stored.source) if os.path.isabs(stored.source) else root / stored.source
    try:
        return None if not other.is_file() or os.path.samefile(other, path) else public_source(stored.source, root)
    except OSError:
        return None


def ingest_under_root(index, paths: list[Path], root: Path, max_bytes: int, job=None) -> IngestSummary:
    """Ingest resolved files and folders in batches; every file ends up counted or failed."""
    files = discover_files(paths, root)
    summary, batch, owners = IngestSummary(files=len(files)), [], {}
    for position, (path, doc_id) in enumerate(files, start=1):
        name = path.resolve().relative_to(root).as_posix() if path.resolve().is_relative_to(root) else path.name
        if owners.setdefault(doc_id, name) != name:
            summary.errors.append(f"{name}: same document id {doc_id!r} as {owners[doc_id]}; rename one of them")
        elif (owner := _held_by_other_file(index, doc_id, path, root)) is not None:
            summary.errors.append(f"{name}: document id {doc_id!r} already holds {owner}; delete that document first")
        else:
            try:
                batch.append(_load(path, doc_id, name, max_bytes))
            except FileNotFoundError:
                summary.errors.append(f"{name}: deleted during the ingest")
            except DocumentError as error:
                summary.errors.append(str(error) if str(error).startswith(name) else f"{name}: {error}")
            except OSError as error:
                summary.errors.append(f"{name}: {error.strerror or type(error).__name__}")
        if batch and (len(batch) >= BATCH_FILES or position == len(files)):
            check_cancelled()
            for outcome in write_documents(index, batch):
                summary.counts[outcome.status] += 1
                summary.chunks_added += outcome.chunks
            batch = []
        if job is not None:
            job.progress = {"files_done": position, "files_total": len(files)}
    return summary
