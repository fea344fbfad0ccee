"""Real scanned inputs made by the tests: text rendered with the Noto CJK font (.ci/system-deps), Debian
PDF pages rendered to bitmaps and wrapped as image-only PDFs, and hostile images and PDFs."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

FONT = next(iter(sorted(Path("/usr/share/fonts/opentype/noto").glob("NotoSansCJK-Regular.ttc"))), None)
EN_PDF = Path("/usr/share/doc/maint-guide/maint-guide.en.pdf")
needs_font = pytest.mark.skipif(FONT is None, reason="fonts-noto-cjk is absent (.ci/system-deps installs it)")
needs_debian_pdf = pytest.mark.skipif(not EN_PDF.is_file(), reason="maint-guide is absent (.ci/system-deps)")

ENGLISH = ["Invoices must be paid within thirty days of the", "delivery date; late payments carry interest."]
CHINESE = ["发票须在交货之日起三十天内付清，", "逾期付款按年利率百分之五计息。"]


def render(lines: list[str], size: int = 26, width: int = 760):
    """Black text on white, one line per entry, as a scanner would give it (8-bit grey)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(FONT), size)
    step = int(size * 1.7)
    image = Image.new("L", (width, 40 + step * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    for number, line in enumerate(lines):
        draw.text((30, 20 + number * step), line, font=font, fill=0)
    return image


def encoded(image, kind: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


def character_error_rate(expected: str, found: str) -> float:
    from rapidfuzz.distance import Levenshtein

    return Levenshtein.distance(expected, found) / len(expected)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` × ``height`` pixels and holds almost no data (a decompression bomb's header)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def pdf_with_image(width: int, height: int, data: bytes) -> bytes:
    """A one-page PDF drawing one grey image XObject that declares ``width`` × ``height`` over ``data``."""
    stream = b"q 612 0 0 792 0 0 cm /Im1 Do Q"
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /Im1 5 0 R >> >> "
               b"/Contents 4 0 R >>",
               b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
               b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8 "
               b"/Filter /FlateDecode /Length %d >>\nstream\n%s\nendstream" % (width, height, len(data), data)]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def noise_png() -> bytes:
    from PIL import Image

    return encoded(Image.fromarray(np.random.default_rng(7).integers(0, 256, (300, 400), dtype=np.uint8)), "PNG")


def truncated_jpeg() -> bytes:
    whole = encoded(render(ENGLISH).convert("RGB"), "JPEG", quality=90)
    return whole[:len(whole) // 2]


def scanned_pdf(pages: list[int], crop: float = 0.4) -> bytes:
    """Pages of the Debian maint-guide rendered at 150 dpi in grey (their top part), saved as an image-only PDF."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(str(EN_PDF))
    try:
        images = []
        for index in pages:
            image = document[index].render(scale=150 / 72, grayscale=True).to_pil()
            images.append(image.crop((0, 0, image.width, int(image.height * crop))))
    finally:
        document.close()
    return encoded(images[0], "PDF", save_all=True, append_images=images[1:], resolution=150)
