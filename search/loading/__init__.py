"""Read files into documents: one reader per format, all returning :class:`search.types.Document`.

=========  ==================  ===================================================
suffix     reader              document
=========  ==================  ===================================================
.txt       ``text.py``         the UTF-8 text; title = first line
.md        ``text.py``         the UTF-8 text; title = first heading; sections
.html      ``html.py``         main content (trafilatura) else all visible text
.pdf       ``pdf.py``          cleaned page texts + page map (+ labels, outline)
.docx      ``docx.py``         paragraphs, headings (sections) and tables in order
.png .jpg  ``image.py``        text read by OCR (``ocr.py``), a page per image
.jpeg .tif                     (a page per TIFF frame), line boxes kept
.tiff .webp
=========  ==================  ===================================================

PDF pages without usable text are read by OCR too (setting ``ocr``: auto, always, never).

Bad input raises :class:`DocumentError` with ``<name>: <one-line reason>`` and never
yields part of a document. The content decides, not the name alone: a file's magic
bytes must agree with its suffix (``%PDF`` for .pdf, a zip for .docx, the image's own kind for
an image, none of these for text).
Only regular files are read, up to ``LoadLimits.max_file_bytes``.

``load_file`` / ``read_bytes`` return a :class:`LoadedFile`: the document plus, for PDF,
DOCX and images, the original bytes for the service to keep and serve.
"""

from __future__ import annotations

import os
from pathlib import Path

from search.loading.base import (DEFAULT_LIMITS, DOCX_MEDIA_TYPE, KIND_NAMES, PDF_MEDIA_TYPE, TITLE_MAX_CHARS,
                                 DocumentError, LoadedFile, LoadLimits, Progress, first_line_title,
                                 read_regular_file, sniff, text_over_limit)
from search.loading.docx import docx_document
from search.loading.html import html_document, html_to_text
from search.loading.image import IMAGE_SUFFIXES, IMAGE_TYPES, read_image_file
from search.loading.pdf import page_of, read_pdf
from search.loading.text import MARKDOWN_SUFFIXES, decode_text, text_document
from search.types import Document

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm")
SUPPORTED_SUFFIXES = (*TEXT_SUFFIXES, *HTML_SUFFIXES, ".pdf", ".docx", *IMAGE_SUFFIXES)

__all__ = [
    "SUPPORTED_SUFFIXES", "TITLE_MAX_CHARS", "Document", "DocumentError", "LoadLimits", "LoadedFile",
    "DEFAULT_LIMITS", "Progress", "decode_text", "make_document", "read_document", "read_bytes", "load_file",
    "discover_files", "html_to_text", "first_line_title", "page_of", "sniff", "file_bytes",
]


def make_document(doc_id: str, text: str, title: str | None = None, source: str = "",
                  is_html: bool = False) -> Document:
    """Build a document from text (HTML is reduced to its main content first)."""
    if is_html:
        return html_document(doc_id, text, title=title, source=source)
    return text_document(doc_id, text, title=title, source=source)


def read_bytes(data: bytes, name: str, doc_id: str, *, title: str | None = None, source: str | None = None,
               limits: LoadLimits = DEFAULT_LIMITS, progress: Progress | None = None) -> LoadedFile:
    """Read an upload or a file's bytes; ``name``'s suffix picks the reader and must match the content.

    ``name`` is what errors and (by default) ``source`` show; ``title`` overrides the found title.
    This runs the reader in the calling process: files from outside go through
    :func:`search.loading.isolated.read_isolated`, which runs this in a child process with limits.
    """
    suffix = os.path.splitext(name)[1].lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(f"{name}: unsupported file type (use {', '.join(SUPPORTED_SUFFIXES)})")
    if len(data) > limits.max_file_bytes:
        raise DocumentError(f"{name}: {len(data):,} bytes, over the file size limit of {limits.max_file_bytes:,} bytes")
    loaded = _read_by_suffix(data, name, suffix, doc_id, title, name if source is None else source, limits, progress)
    if problem := text_over_limit(name, len(loaded.document.text), limits):
        raise problem
    return loaded


def _read_by_suffix(data: bytes, name: str, suffix: str, doc_id: str, title: str | None, source: str,
                    limits: LoadLimits, progress: Progress | None) -> LoadedFile:
    kind = sniff(data)
    if suffix == ".pdf":
        if kind != "pdf":
            raise DocumentError(f"{name}: not a PDF (no %PDF header; the content is {KIND_NAMES[kind]})")
        return read_pdf(data, name, doc_id, title=title, source=source, limits=limits, progress=progress)
    if suffix in IMAGE_TYPES:
        expected = IMAGE_TYPES[suffix][0]
        if kind != expected:
            raise DocumentError(f"{name}: not {KIND_NAMES[expected]} (the content is {KIND_NAMES[kind]})")
        return read_image_file(data, name, doc_id, suffix, title=title, source=source, limits=limits,
                               progress=progress)
    if suffix == ".docx":
        if kind == "ole":
            raise DocumentError(f"{name}: an encrypted or legacy (.doc) Word file, not DOCX")
        if kind != "zip":
            raise DocumentError(f"{name}: not a DOCX (no zip header; the content is {KIND_NAMES[kind]})")
        return LoadedFile(docx_document(data, name, doc_id, title=title, source=source, limits=limits), data)
    if kind != "other":
        raise DocumentError(f"{name}: the content is {KIND_NAMES[kind]}, not {suffix} text; fix the file name")
    text = decode_text(data, name)
    if problem := text_over_limit(name, len(text), limits):
        raise problem
    if suffix in HTML_SUFFIXES:
        return LoadedFile(html_document(doc_id, text, title=title, source=source))
    return LoadedFile(text_document(doc_id, text, title=title, source=source, markdown=suffix in MARKDOWN_SUFFIXES))


def load_file(path: Path, doc_id: str, *, name: str | None = None, limits: LoadLimits = DEFAULT_LIMITS,
              progress: Progress | None = None) -> LoadedFile:
    """Read one supported regular file (FIFOs, devices and oversized files refused) into a :class:`LoadedFile`.

    ``name`` is how errors and the document's source call the file (default: the path as given).
    """
    name = name or str(path)
    return read_bytes(file_bytes(Path(path), name, limits), name, doc_id, limits=limits, progress=progress)


def file_bytes(path: Path, name: str, limits: LoadLimits = DEFAULT_LIMITS) -> bytes:
    """The bytes of a supported regular file, errors naming it ``name`` (nothing is parsed yet)."""
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise DocumentError(f"{name}: unsupported file type (use {', '.join(SUPPORTED_SUFFIXES)})")
    try:
        return read_regular_file(path, limits.max_file_bytes)
    except DocumentError as error:
        raise DocumentError(str(error).replace(str(path), name, 1)) from None


def read_document(path: Path, doc_id: str) -> Document:
    """Read one supported file into a document (the original bytes: use :func:`load_file`)."""
    return load_file(path, doc_id).document


def discover_files(paths: list[Path], root: Path | None = None) -> list[tuple[Path, str]]:
    """Files to ingest with their document ids.

    A file given directly is named by its stem; files found under a folder by their
    path relative to it without the suffix (``docs/en/a.txt`` under ``docs`` is ``en/a``).
    With ``root``, files that resolve outside it (through symlinks) are left out.
    """
    found: list[tuple[Path, str]] = []
    for path in paths:
        if os.path.isdir(path):  # False, not an error, for names the file system rejects
            for file in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES):
                found.append((file, file.relative_to(path).with_suffix("").as_posix()))
        else:
            found.append((path, path.stem))
    if root is not None:
        found = [(file, doc_id) for file, doc_id in found if file.resolve().is_relative_to(root.resolve())]
    return found
