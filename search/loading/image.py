"""Images (.png .jpg .jpeg .tif .tiff .webp): read by OCR, one page each (a multi-page TIFF: a page per frame).

Checked before any pixel is decoded: each frame's declared size is within ``max_image_pixels``
(a decompression bomb is refused from its header; Pillow's own guard stops anything above
178,956,970 pixels in any case) and a TIFF has at most ``max_pages`` frames. A truncated or
corrupt image is refused whole. Photos are turned upright by their EXIF orientation and
transparent backgrounds are laid on white. The lines are cleaned and joined as a PDF's
(:func:`search.loading.pdf.assemble`); an image in which OCR finds no text is refused
("no text found"), never indexed empty. The original file is kept and served.
"""

from __future__ import annotations

import io
import re
import warnings

import numpy as np

from search.loading.base import DEFAULT_LIMITS, DocumentError, LoadedFile, LoadLimits, Progress, lang_of, short_title
from search.loading.ocr import Box, PageReader, check_pixels, locate_lines
from search.loading.pdf import assemble, scanned_lines
from search.types import Document

#: Suffix -> (the kind ``sniff`` must find, media type).
IMAGE_TYPES = {".png": ("png", "image/png"), ".jpg": ("jpeg", "image/jpeg"), ".jpeg": ("jpeg", "image/jpeg"),
               ".tif": ("tiff", "image/tiff"), ".tiff": ("tiff", "image/tiff"), ".webp": ("webp", "image/webp")}
IMAGE_SUFFIXES = tuple(IMAGE_TYPES)


#: The pixel count in Pillow's DecompressionBombError message.
DECLARED_PIXELS_RE = re.compile(r"\((\d+) pixels\)")

def read_image_file(data: bytes, name: str, doc_id: str, suffix: str, title: str | None = None,
                    source: str | None = None, limits: LoadLimits = DEFAULT_LIMITS,
                    progress: Progress | None = None) -> LoadedFile:
    """An image file as a document of one page per frame, read by OCR; bad images raise DocumentError."""
    if limits.ocr == "never":
        raise DocumentError(f"{name}: an image is read by OCR, which is off (setting ocr=never)")
    scanned: dict[int, list[tuple[str, Box]]] = {}
    image, count = _open(data, name, limits)
    with image, PageReader(limits.ocr_engine) as reader:
        for number in range(1, count + 2):
            for read, page in reader.ready(wait_all=number > count):  # frames read meanwhile
                scanned[read] = scanned_lines(page)
                if progress is not None:
                    progress(read, count)
            if number <= count:
                reader.submit(number, _frame(image, number, count, name, limits),
                              f"{name}: page {number}" if count > 1 else name)
        seconds = reader.seconds
    pages = [[line for line, _ in scanned[number]] for number in range(1, count + 1)]
    text, starts = assemble(pages)
    if not text.strip():
        raise DocumentError(f"{name}: no text found (read by OCR)")
    document = Document(doc_id, short_title(title) or short_title(text.split("\n", 1)[0]),
                        name if source is None else source, text, lang=lang_of(text), pages=starts,
                        media_type=IMAGE_TYPES[suffix][1], ocr_pages=tuple(scanned),
                        ocr_lines=locate_lines(text, starts, scanned), title_guessed=not short_title(title))
    return LoadedFile(document, data, seconds)


def _open(data: bytes, name: str, limits: LoadLimits):
    """The image opened from its header (nothing decoded yet) and its number of pages."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:  # Pillow's own guard, above twice its MAX_IMAGE_PIXELS
        declared = DECLARED_PIXELS_RE.search(str(error))
        limit = min(limits.max_image_pixels, 2 * (Image.MAX_IMAGE_PIXELS or limits.max_image_pixels))
        size = f"{int(declared.group(1)):,} pixels" if declared else "more pixels than that"
        raise DocumentError(f"{name}: the image is {size}, over the limit of {limit:,} pixels "
                            f"(setting max_image_pixels)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise DocumentError(f"{name}: not a readable image ({_reason(error)})") from None
    count = getattr(image, "n_frames", 1) if image.format == "TIFF" else 1
    if count > limits.max_pages:
        image.close()
        raise DocumentError(f"{name}: {count:,} pages, over the page limit of {limits.max_pages:,} (setting max_pages)")
    return image, count


def _frame(image, number: int, count: int, name: str, limits: LoadLimits):
    """Page ``number`` (1-based) size-checked, then decoded, upright and grey."""
    from PIL import ImageOps

    try:
        image.seek(number - 1)
        check_pixels(name, f"page {number}" if count > 1 else "the image", *image.size, limits.max_image_pixels)
        image.load()
        return _grey(ImageOps.exif_transpose(image) if number == 1 else image)
    except DocumentError:
        raise
    except (OSError, ValueError, EOFError, SyntaxError) as error:
        raise DocumentError(f"{name}: truncated or corrupt image ({_reason(error)})") from None


def _grey(image):
    """The image in 8-bit grey: transparency laid on white, 16-bit and float images scaled to 0..255."""
    from PIL import Image

    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        return Image.fromarray(((values - low) * (255 / max(high - low, 1e-9))).astype(np.uint8))
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        flat.alpha_composite(rgba)
        image = flat
    return image.convert("L")


def _reason(error: Exception) -> str:
    return " ".join(str(error).split()).rstrip(".") or type(error).__name__
