"""Small PDFs built by hand for tests: plain pages, and the hostile shapes of issue 27."""

from __future__ import annotations

import zlib


def pdf_file(objects: list[str | bytes], page_count: int, info: int | None = None) -> bytes:
    """A PDF of the given objects (1: the catalog, 2: the page tree, 3: a Helvetica font); offsets computed;
    ``info``: the number of the document information object (metadata)."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + (body if isinstance(body, bytes) else body.encode("latin-1"))
        out += b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    info_ref = f" /Info {info} 0 R" if info else ""
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info_ref} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _page(contents: int) -> str:
    return (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {contents} 0 R >>")


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A small valid PDF, one line of Helvetica text per page (empty string: a page with no text), with
    ``title`` in its metadata when given."""
    objects: list[str | bytes] = ["<< /Type /Catalog /Pages 2 0 R >>", "",
                                  "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({_escaped(text)}) Tj ET" if text else ""
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        objects.append(_page(len(objects)))
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>"
    if title:
        objects.append(f"<< /Title ({_escaped(title)}) >>")
    return pdf_file(objects, len(pages), len(objects) if title else None)


def text_bomb_pdf(pages: int, chars_per_page: int) -> bytes:
    """A PDF of ``pages`` pages that all draw one shared Flate stream of about ``chars_per_page``
    characters of text: a few KB of file, ``pages * chars_per_page`` characters of text (issue 27.5)."""
    line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 2
    lines = max(1, chars_per_page // len(line))
    stream = zlib.compress(("BT /F1 1 Tf 10 780 Td 1 TL " + f"({line}) ' " * lines + "ET").encode("latin-1"), 9)
    objects: list[str | bytes] = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{' '.join(f'{5 + n} 0 R' for n in range(pages))}] /Count {pages} >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode() + stream + b"\nendstream",
    ]
    objects += [_page(4) for _ in range(pages)]
    return pdf_file(objects, pages)
