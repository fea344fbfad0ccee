"""What every reader shares: the error, the limits, the result and safe file reading."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from search.errors import InvalidInput
from search.text.language import detect_language
from search.types import Document, Lang

TITLE_MAX_CHARS = 200
MIB = 1024 * 1024

#: ``progress(done, total)``: called after each page of a paged format (PDF, images: a TIFF frame each).
Progress = Callable[[int, int], None]

PDF_MEDIA_TYPE = "application/pdf"
DOCX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HTML_MEDIA_TYPE = "text/html"
MARKDOWN_MEDIA_TYPE = "text/markdown"
TEXT_MEDIA_TYPE = "text/plain"


class DocumentError(InvalidInput):
    """A file or text that cannot become a document; the message is ``<name>: <one-line reason>``."""


@dataclass(frozen=True)
class LoadLimits:
    """Bounds on what a reader accepts, and whether it may OCR (the Settings fields of the same names).

    ``max_pages`` bounds a PDF's pages: pages are read one at a time, so memory grows
    with the extracted text, never with the file's page objects. ``max_unzipped_bytes``
    bounds the sum of a DOCX's declared member sizes, checked in the zip directory before
    anything is decompressed (Python's zipfile never inflates a member past its declared
    size, so the check holds against lying directories too). ``max_text_chars`` and
    ``max_page_chars`` bound the text a file and a PDF page yield (a PDF whose pages share
    one huge compressed stream is a text bomb). ``parse_seconds`` (plus ``ocr_page_seconds`` for each
    page read by OCR) and ``parse_memory_mb`` bound the child process that reads a file
    (:mod:`search.loading.isolated`).
    ``max_image_pixels`` bounds an
    image (each frame of a TIFF, each image inside a PDF page read by OCR, and the page bitmap
    rendered for it), checked on the declared size before anything is decoded. ``ocr``: ``auto``
    reads by OCR the PDF pages without usable text and every image, ``always`` every page,
    ``never`` none (images are then refused); ``ocr_engine`` names the engine (``search.loading.ocr.engine_for``).
    """

    max_file_bytes: int = 100 * MIB
    max_pages: int = 2000
    max_unzipped_bytes: int = 200 * MIB
    max_zip_entries: int = 10_000
    max_image_pixels: int = 100_000_000
    ocr: str = "auto"
    ocr_engine: str = "auto"
    max_text_chars: int = 20_000_000
    max_page_chars: int = 200_000
    parse_seconds: float = 60.0
    ocr_page_seconds: float = 30.0
    parse_memory_mb: int = 2048

    @classmethod
    def from_settings(cls, settings: object) -> "LoadLimits":
        """Limits from a :class:`search.settings.Settings` (fields missing there keep the defaults)."""
        defaults = cls()
        return cls(**{name: getattr(settings, name, getattr(defaults, name)) for name in cls.__dataclass_fields__})


def text_over_limit(name: str, chars: int, limits: LoadLimits) -> DocumentError | None:
    """The error for a file whose text has grown past ``max_text_chars``, or None."""
    if chars <= limits.max_text_chars:
        return None
    return DocumentError(f"{name}: over {limits.max_text_chars:,} characters of text (setting max_text_chars)")


DEFAULT_LIMITS = LoadLimits()


@dataclass(frozen=True)
class LoadedFile:
    """A read document plus the original bytes when the file itself is worth keeping and serving.

    ``original`` is set for PDF, DOCX and images (the service stores it for ``GET /files/{id}``
    and page links), None for text formats, whose document text is the content. ``ocr_seconds``:
    the time OCR took on each page it read.
    """

    document: Document
    original: bytes | None = None
    ocr_seconds: tuple[float, ...] = ()

    @property
    def media_type(self) -> str:
        return self.document.media_type


def lang_of(text: str) -> Lang:
    """The document's dominant script as a :class:`Lang`."""
    return detect_language(text)


def short_title(title: str | None) -> str:
    return " ".join((title or "").split())[:TITLE_MAX_CHARS]


def first_line_title(text: str) -> str:
    """The first non-empty line, without Markdown heading marks, shortened."""
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:TITLE_MAX_CHARS]
    return ""


def sniff(data: bytes) -> str:
    """What the bytes are, by their magic numbers: ``pdf``, ``zip``, ``ole`` (legacy/encrypted Office),
    ``png``, ``jpeg``, ``tiff``, ``webp`` or ``other``."""
    head = data[:1024]
    marker = head.find(b"%PDF-")
    # Readers accept the header anywhere in the first KiB; a text note merely mentioning it is not a PDF.
    if marker >= 0 and (not head[:marker].strip(b"\xef\xbb\xbf\r\n\t ") or not _textual(head[:marker])):
        return "pdf"
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "ole"
    return next((kind for kind, magic in IMAGE_MAGIC if magic(data)), "other")


def _textual(prefix: bytes) -> bool:
    try:
        prefix.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in prefix


#: Image kinds by their magic numbers.
IMAGE_MAGIC = (
    ("png", lambda data: data.startswith(b"\x89PNG\r\n\x1a\n")),
    ("jpeg", lambda data: data.startswith(b"\xff\xd8\xff")),
    ("tiff", lambda data: data.startswith((b"II*\x00", b"MM\x00*"))),
    ("webp", lambda data: data[:4] == b"RIFF" and data[8:12] == b"WEBP"),
)
KIND_NAMES = {"pdf": "a PDF", "zip": "a ZIP archive (DOCX/XLSX/...)", "ole": "a legacy or encrypted Office file",
              "png": "a PNG image", "jpeg": "a JPEG image", "tiff": "a TIFF image", "webp": "a WebP image",
              "other": "neither PDF, ZIP nor an image"}


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; FIFOs, devices and folders are refused.

    The file is opened non-blocking and checked with ``fstat`` on the open descriptor, so a
    FIFO never blocks the reader and a swap between check and read is not possible.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device or socket"
            raise DocumentError(f"{path}: not a regular file ({kind}); only regular files are read")
        if info.st_size > limit:
            raise DocumentError(f"{path}: {info.st_size:,} bytes, over the file size limit of {limit:,} bytes")
        with os.fdopen(os.dup(fd), "rb") as file:
            data = file.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise DocumentError(f"{path}: over the file size limit of {limit:,} bytes")
    return data
