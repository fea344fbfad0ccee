"""Wall and CPU seconds per page of the product's PDF OCR path, before and after pages side by side.

    python docs/bench/tools/ocr_speed.py MODE LANG [SCANNED]
    MODE: old (one page at a time, Tesseract's own OpenMP threads: the product before issue 25's
          speed work), or N (the product: N pages at once, each one single-threaded command)
    LANG: en or zh; SCANNED: the scanned pair (``ocr_bench.py scan``), default /tmp/scanned

Pages 9 to 18 of the scanned maint-guide PDF, read in-process by ``read_bytes`` with Tesseract.
Prints one JSON line; ``sha`` is the text's hash, so the modes can be seen to read the same text.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time

import pypdfium2 as pdfium

import search.loading.ocr as ocr
import search.loading.tesseract as tesseract
from search.loading import LoadLimits, read_bytes

PAGES = list(range(8, 18))


def pages_of(path: str) -> bytes:
    """A PDF of the measured pages only."""
    source, target = pdfium.PdfDocument(path), pdfium.PdfDocument.new()
    target.import_pages(source, PAGES)
    buffer = io.BytesIO()
    target.save(buffer)
    return buffer.getvalue()


def as_before() -> None:
    """One page at a time, and Tesseract's own threads (no OMP_THREAD_LIMIT)."""
    ocr.TESSERACT_MAX_WORKERS = 1
    run = tesseract.subprocess.run

    def without_thread_limit(*args, **kwargs):
        kwargs.pop("env", None)
        return run(*args, **kwargs)

    tesseract.subprocess.run = without_thread_limit


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def main(mode: str, lang: str, scanned: str = "/tmp/scanned") -> dict[str, object]:
    if mode == "old":
        as_before()
    else:
        ocr.TESSERACT_MAX_WORKERS = int(mode)
    data = pages_of(f"{scanned}/docs/{lang}/maint-guide.pdf")
    started, cpu = time.perf_counter(), cpu_seconds()
    loaded = read_bytes(data, "scan.pdf", "scan", limits=LoadLimits(ocr_engine="tesseract"))
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    return {"mode": mode, "lang": lang, "pages": len(loaded.document.ocr_pages),
            "wall_s_per_page": round(wall / len(PAGES), 2), "cpu_s_per_page": round(cpu / len(PAGES), 2),
            "reported_s_per_page": loaded.ocr_seconds[0], "chars": len(loaded.document.text),
            "sha": loaded.document.sha256[:12]}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:])))
