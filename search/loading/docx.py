"""Word (.docx) by python-docx: paragraphs, headings and tables in body order; headings are sections.

The zip directory is checked before python-docx opens the file: too many members or a
declared uncompressed size over ``max_unzipped_bytes`` (a zip bomb) is refused. Python's
zipfile never inflates a member past its declared size (it fails with a bad CRC), so
the declared sizes bound the memory used.
"""

from __future__ import annotations

import io
import zipfile

from search.text.language import has_visible_text
from search.loading.base import (DEFAULT_LIMITS, DOCX_MEDIA_TYPE, DocumentError, LoadLimits, first_line_title,
                                 lang_of, short_title)
from search.types import Document

HEADING_STYLE_PREFIXES = ("heading", "title")


def check_zip(data: bytes, name: str, limits: LoadLimits = DEFAULT_LIMITS) -> None:
    """Refuse a corrupt, non-Word or bomb-like zip before anything is decompressed."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as error:
        raise DocumentError(f"{name}: truncated or corrupt DOCX ({error})") from error
    if len(members) > limits.max_zip_entries:
        raise DocumentError(f"{name}: {len(members):,} zip members, over the limit of {limits.max_zip_entries:,}")
    total = sum(member.file_size for member in members)
    if total > limits.max_unzipped_bytes:
        raise DocumentError(f"{name}: unpacks to {total:,} bytes, over the limit of {limits.max_unzipped_bytes:,} "
                            f"(a zip bomb?)")
    names = {member.filename for member in members}
    if "word/document.xml" not in names or "[Content_Types].xml" not in names:
        raise DocumentError(f"{name}: a zip archive but not a Word document (no word/document.xml)")


def _is_heading(paragraph) -> bool:
    try:
        style = (paragraph.style.name or "").casefold() if paragraph.style is not None else ""
    except Exception:  # noqa: BLE001 - a missing style is not a heading
        return False
    return style.startswith(HEADING_STYLE_PREFIXES)


def _table_lines(table) -> list[str]:
    lines = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:  # a merged cell appears once per grid column it spans
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(cell.text.split()))
        line = "\t".join(cells).strip()
        if line:
            lines.append(line)
    return lines


def docx_document(data: bytes, name: str, doc_id: str, title: str | None = None, source: str | None = None,
                  limits: LoadLimits = DEFAULT_LIMITS) -> Document:
    """A document from a .docx file; corrupt or bomb-like files raise :class:`DocumentError`."""
    check_zip(data, name, limits)
    try:
        import docx
        from docx.table import Table

        word = docx.Document(io.BytesIO(data))
        lines: list[str] = []
        sections: list[tuple[int, str]] = []
        offset = 0
        for block in word.iter_inner_content():
            if isinstance(block, Table):
                new = _table_lines(block)
            else:
                line = block.text.strip()
                if not line:
                    continue
                if _is_heading(block):
                    sections.append((offset, " ".join(line.split())))
                new = [line]
            for line in new:
                lines.append(line)
                offset += len(line) + 1
        core_title = word.core_properties.title
    except DocumentError:
        raise
    except Exception as error:  # noqa: BLE001 - python-docx/lxml raise many types on broken files
        reason = " ".join(str(error).split())[:160] or type(error).__name__
        raise DocumentError(f"{name}: corrupt DOCX ({reason})") from error
    text = "\n".join(lines)
    if not has_visible_text(text):
        raise DocumentError(f"{name}: no text to index (only spaces or invisible characters)")
    found = short_title(title) or short_title(core_title) or (sections[0][1][:200] if sections else "")
    return Document(doc_id, found or first_line_title(text), name if source is None else source, text,
                    lang=lang_of(text), sections=tuple(sections), media_type=DOCX_MEDIA_TYPE, title_guessed=not found)
