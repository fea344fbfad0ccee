"""OCR measurements (issue 25, docs/ocr.md): a scanned copy of the PDF page benchmark, and the
character error rate and speed of OCR engines on its pages. A tool, not the product.

    # 1. the scanned pair: every page at 150 dpi in grey, tilted and noisy, as image-only PDFs
    python docs/bench/tools/ocr_bench.py scan PAGE_BENCH OUT_SCANNED [--dpi 150 --seed 0]
    # 2. CER and seconds per page of an engine on pages of the scanned pair, against the text layer
    python docs/bench/tools/ocr_bench.py cer OUT_SCANNED --engine rapidocr|tesseract|tesseract-cli [--pages 3,10,20,35]
    # 3. page hit@k of the text pair and of the scanned pair through the product (OCR at ingest)
    bisearch eval PAGE_BENCH --json --keep-index IDX_TEXT
    bisearch eval OUT_SCANNED --json --keep-index IDX_SCANNED
    # 4. CER of every page as the product stores it (OCR + cleaning) against the text pair's pages
    python docs/bench/tools/ocr_bench.py index-cer IDX_TEXT IDX_SCANNED [--from-page 7]
    # 5. the same without indexes (no embedding: minutes): both pairs read by the product's loader
    python docs/bench/tools/ocr_bench.py stored-cer PAGE_BENCH OUT_SCANNED [--from-page 7]

``PAGE_BENCH`` is the layout of ``search.eval.pages`` (``docs/{en,zh}/maint-guide.pdf`` and
``queries.jsonl``); the scanned copy keeps the same page numbers, so the same queries apply.

CER: Levenshtein distance between the OCR text of a page and the page's text layer (pypdfium2,
the product's reference), both normalised the same way (NFKC, whitespace runs as one space, no
space next to a Chinese character, pdfium's line-end hyphen mark as "-", a table of contents'
dot leaders as one "…"), over the sum of the reference lengths. ``cer`` compares engines on the
raw lines of a few pages; ``index-cer`` compares every page as the product stores it (both
sides through the same cleaning; ``stored-cer`` gives the same numbers from the PDFs, as the loader
reads them, without an index). The order of lines counts (a column read in the wrong order is an error).
``rapidocr`` and ``tesseract`` are read through the product's own path (``search.loading.ocr.read_image``:
its boxes, the product's reading order; Tesseract with ``chi_sim+eng`` on every page);
``tesseract-cli`` is Tesseract's own text output told the page's language (``-l eng`` or
``chi_sim+eng``). Tesseract: Debian's ``tesseract-ocr`` 5.3 and ``tesseract-ocr-chi-sim``.
Seconds: wall time of the OCR call, and the CPU seconds it used (with the load average: this
machine's 2 cores are shared).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

import numpy as np

LANGS = ("en", "zh")
DOC = "maint-guide.pdf"
CJK = r"\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
SPACE_NEAR_CJK = re.compile(f"(?<=[{CJK}]) (?=\\S)|(?<=\\S) (?=[{CJK}])")
DOT_LEADER = re.compile(r"(?:[.·…] ?){3,}")


def scan_page(page, dpi: int, rng: np.random.Generator):
    """One PDF page as a scanner gives it: grey at ``dpi``, tilted by up to 1 degree, with noise."""
    from PIL import Image

    image = page.render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
    image = image.rotate(float(rng.uniform(-1.0, 1.0)), resample=Image.BICUBIC, expand=False, fillcolor=255)
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 12, (image.height, image.width))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def build_scanned(bench: Path, out: Path, dpi: int = 150, seed: int = 0) -> dict[str, int]:
    """The scanned copy of a page benchmark: image-only PDFs (JPEG pages, as scanners write) and the same queries."""
    import pypdfium2 as pdfium

    rng = np.random.default_rng(seed)
    counts = {}
    for lang in LANGS:
        source = pdfium.PdfDocument(str(bench / "docs" / lang / DOC))
        images = [scan_page(source[index], dpi, rng) for index in range(len(source))]
        source.close()
        target = out / "docs" / lang / DOC
        target.parent.mkdir(parents=True, exist_ok=True)
        images[0].save(target, "PDF", save_all=True, append_images=images[1:], resolution=dpi)
        counts[lang] = len(images)
    shutil.copyfile(bench / "queries.jsonl", out / "queries.jsonl")
    return counts


def normalised(text: str) -> str:
    text = unicodedata.normalize("NFKC", text.replace("\ufffe", "-"))
    text = DOT_LEADER.sub("…", " ".join(text.split()))
    return SPACE_NEAR_CJK.sub("", text)


def index_cer(text_index: Path, scanned_index: Path, from_page: int = 1) -> dict[str, object]:
    """Per language: CER of every page of the scanned pair's stored text against the text pair's."""
    from search.backends.local import LocalBackend

    report: dict[str, object] = {}
    text_backend, scanned_backend = LocalBackend(text_index), LocalBackend(scanned_index)
    try:
        for lang in LANGS:
            scanned = scanned_backend.document(f"{lang}/maint-guide")
            report[lang] = {**page_cer(_pages(text_backend.document(f"{lang}/maint-guide")), _pages(scanned),
                                       from_page),
                            "ocr_pages": len(scanned.ocr_pages)}
    finally:
        text_backend.close()
        scanned_backend.close()
    return report


def stored_cer(bench: Path, scanned: Path, from_page: int = 1) -> dict[str, object]:
    """``index_cer`` without building indexes: both PDFs read by the product's loader (text layer; OCR)."""
    from search.loading import LoadLimits
    from search.loading.pdf import extract_pdf

    def pages(folder: Path, lang: str) -> list[str]:
        read = extract_pdf((folder / "docs" / lang / DOC).read_bytes(), DOC, LoadLimits(ocr_engine="tesseract"))
        bounds = [*read.pages, len(read.text)]
        return [read.text[bounds[number]:bounds[number + 1]] for number in range(len(read.pages))]

    report: dict[str, object] = {"load_average": round(os.getloadavg()[0], 1)}
    for lang in LANGS:
        started = time.perf_counter()
        report[lang] = page_cer(pages(bench, lang), pages(scanned, lang), from_page)
        report[lang]["seconds"] = round(time.perf_counter() - started, 1)
    return report


def page_cer(reference: list[str], found: list[str], from_page: int = 1) -> dict[str, object]:
    """CER of ``found`` against ``reference`` page by page: all pages, pages ``from_page`` on, the worst three."""
    from rapidfuzz.distance import Levenshtein

    errors, lengths = [], []
    for expected, got in zip(reference, found):
        errors.append(Levenshtein.distance(normalised(expected), normalised(got)))
        lengths.append(len(normalised(expected)))
    rates = [(round(error / max(length, 1), 3), number)
             for number, (error, length) in enumerate(zip(errors, lengths), start=1)]
    return {"cer": round(sum(errors) / max(sum(lengths), 1), 4), "pages": len(found),
            f"cer_from_page_{from_page}": round(sum(errors[from_page - 1:]) / max(sum(lengths[from_page - 1:]), 1), 4),
            "reference_chars": sum(lengths), "worst_pages": sorted(rates, reverse=True)[:3]}


def _pages(document) -> list[str]:
    bounds = [*document.pages, len(document.text)]
    return [document.text[bounds[number]:bounds[number + 1]] for number in range(len(document.pages))]


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def read_product(engine: str):
    """An engine through the product's own path: its boxes, the product's reading order."""
    def read(image, lang: str) -> str:
        from search.loading.ocr import read_image

        return "\n".join(line.text for line in read_image(image, "bench", engine).lines)

    return read


def read_tesseract_cli(image, lang: str) -> str:
    """Tesseract's own text output, told the page's language (``eng``, or ``chi_sim+eng`` for Chinese)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "page.png"
        image.save(path)
        languages = "eng" if lang == "en" else "chi_sim+eng"
        return subprocess.run(["tesseract", str(path), "-", "-l", languages], capture_output=True, text=True,
                              check=True).stdout


#: rapidocr and tesseract as the product runs them (tesseract: chi_sim+eng on every page); tesseract-cli:
#: Tesseract's own reading order and the page's language given.
ENGINES = {"rapidocr": read_product("rapidocr"), "tesseract": read_product("tesseract"),
           "tesseract-cli": read_tesseract_cli}


def measure(scanned: Path, originals: dict[str, Path], engine: str, pages: list[int]) -> dict[str, object]:
    """CER and seconds per page of ``engine`` on ``pages`` (0-based) of each language's scanned PDF."""
    import pypdfium2 as pdfium
    from rapidfuzz.distance import Levenshtein

    read = ENGINES[engine]
    read(_blank(), "en")  # load the engine before timing
    report: dict[str, object] = {"engine": engine, "pages": [page + 1 for page in pages],
                                 "load_average": round(os.getloadavg()[0], 1)}
    for lang in LANGS:
        original = pdfium.PdfDocument(str(originals[lang]))
        scan = pdfium.PdfDocument(str(scanned / "docs" / lang / DOC))
        errors = length = 0
        wall = cpu = 0.0
        by_page = []
        for index in pages:
            reference = normalised(original[index].get_textpage().get_text_range())
            image = _native_image(scan[index])
            started, used = time.perf_counter(), cpu_seconds()
            found = normalised(read(image, lang))
            wall += time.perf_counter() - started
            cpu += cpu_seconds() - used
            distance = Levenshtein.distance(reference, found)
            errors, length = errors + distance, length + len(reference)
            by_page.append(round(distance / max(len(reference), 1), 3))
        report[lang] = {"cer": round(errors / max(length, 1), 4), "cer_by_page": by_page,
                        "wall_s_per_page": round(wall / len(pages), 2),
                        "cpu_s_per_page": round(cpu / len(pages), 2), "reference_chars": length}
        original.close()
        scan.close()
    return report


def _native_image(page):
    """The scanned page's own image (the product renders an image-only page at its image's resolution)."""
    import pypdfium2.raw as pdfium_c

    image = next(iter(page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,))))
    return image.get_bitmap(render=False).to_pil().convert("L")


def _blank():
    from PIL import Image

    return Image.new("L", (200, 100), 255)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    scan = commands.add_parser("scan", help="write the scanned copy of a page benchmark")
    scan.add_argument("bench", type=Path)
    scan.add_argument("out", type=Path)
    scan.add_argument("--dpi", type=int, default=150)
    scan.add_argument("--seed", type=int, default=0)
    cer = commands.add_parser("cer", help="CER and seconds per page of an engine on the scanned pair")
    cer.add_argument("scanned", type=Path)
    cer.add_argument("--engine", choices=sorted(ENGINES), default="rapidocr")
    cer.add_argument("--pages", default="3,10,20,35", help="1-based pages, comma-separated")
    cer.add_argument("--originals", type=Path, help="the text pair (default: Debian's maint-guide PDFs)")
    stored = commands.add_parser("index-cer", help="CER of every stored page: scanned pair's index vs the text pair's")
    stored.add_argument("text_index", type=Path)
    stored.add_argument("scanned_index", type=Path)
    stored.add_argument("--from-page", type=int, default=1, help="also the CER of the pages from this one on")
    loaded = commands.add_parser("stored-cer", help="the same without indexes: both pairs read by the product's loader")
    loaded.add_argument("bench", type=Path)
    loaded.add_argument("scanned", type=Path)
    loaded.add_argument("--from-page", type=int, default=1, help="also the CER of the pages from this one on")
    args = parser.parse_args(argv)
    if args.command == "scan":
        print(json.dumps(build_scanned(args.bench, args.out, args.dpi, args.seed)))
        return 0
    if args.command == "index-cer":
        print(json.dumps(index_cer(args.text_index, args.scanned_index, args.from_page), ensure_ascii=False))
        return 0
    if args.command == "stored-cer":
        print(json.dumps(stored_cer(args.bench, args.scanned, args.from_page), ensure_ascii=False))
        return 0
    originals = ({lang: args.originals / "docs" / lang / DOC for lang in LANGS} if args.originals else
                 {"en": Path("/usr/share/doc/maint-guide/maint-guide.en.pdf"),
                  "zh": Path("/usr/share/doc/maint-guide-zh-cn/maint-guide.zh-cn.pdf")})
    pages = [int(page) - 1 for page in args.pages.split(",")]
    print(json.dumps(measure(args.scanned, originals, args.engine, pages), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
