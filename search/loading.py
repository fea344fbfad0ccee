"""Read .txt, .md and .html files into documents (UTF-8 only, binaries refused)."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path

from search.language import detect_language
from search.types import Document

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")
BLOCK_TAGS = frozenset(
    "p div br li ul ol tr table section article header footer h1 h2 h3 h4 h5 h6 pre blockquote dt dd title".split()
)
SKIPPED_TAGS = frozenset({"script", "style", "noscript", "template"})
TITLE_MAX_CHARS = 200
#: Blank lines (with any spaces); a run of spaces is entered only at its start, so matching is linear.
BLANK_LINES_RE = re.compile(r"(?<![ \t])[ \t]*+\n[ \t\n]*\n")


class DocumentError(ValueError):
    """A file or text that cannot become a document (binary, not UTF-8, empty)."""


class _TextExtractor(HTMLParser):
    """Keep an HTML page's text, with line breaks at block elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._skipping = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in SKIPPED_TAGS:
            self._skipping += 1
        self._in_title = tag == "title"
        if tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIPPED_TAGS and self._skipping:
            self._skipping -= 1
        if tag == "title":
            self._in_title = False
        if tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> tuple[str, str]:
    """``(title, text)`` of an HTML page; tags dropped, runs of blank lines collapsed."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    text = BLANK_LINES_RE.sub("\n\n", "".join(parser.parts))
    return " ".join("".join(parser.title).split()), text.strip()


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 text of ``data``; binary or non-UTF-8 content raises :class:`DocumentError`."""
    if b"\x00" in data:
        raise DocumentError(f"{name}: binary file (contains NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DocumentError(f"{name}: not valid UTF-8 text ({error.reason} at byte {error.start})") from error
    return text.replace("\r\n", "\n").replace("\r", "\n")


def first_line_title(text: str) -> str:
    """The first non-empty line, without Markdown heading marks, shortened."""
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:TITLE_MAX_CHARS]
    return ""


def make_document(doc_id: str, text: str, title: str | None = None, source: str = "",
                  is_html: bool = False) -> Document:
    """Build a document from text (HTML is reduced to its text first)."""
    html_title = ""
    if is_html:
        html_title, text = html_to_text(text)
    if not text.strip():
        raise DocumentError(f"{source or doc_id}: no text to index")
    return Document(doc_id, (title or html_title or first_line_title(text))[:TITLE_MAX_CHARS], source, text,
                    detect_language(text), media_type="text/html" if is_html else "text/plain")


def read_document(path: Path, doc_id: str) -> Document:
    """Read one supported file into a document."""
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise DocumentError(f"{path}: unsupported file type (use {', '.join(SUPPORTED_SUFFIXES)})")
    text = decode_text(path.read_bytes(), str(path))
    return make_document(doc_id, text, source=str(path), is_html=path.suffix.lower() in (".html", ".htm"))


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
