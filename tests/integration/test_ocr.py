"""Scans and images read by OCR (search/loading/ocr.py, image.py, the OCR path of pdf.py): real text
rendered into images with the Noto CJK font, real Debian PDF pages turned into an image-only PDF,
read by the real engines (Tesseract where installed, RapidOCR), then ingested with the real model and searched."""

from __future__ import annotations

import math
import zlib
from dataclasses import replace

import pytest

from conftest import index_settings
from scans import (CHINESE, ENGLISH, character_error_rate, encoded, needs_debian_pdf, needs_font, noise_png,
                   pdf_with_image, png_header_only, render, scanned_pdf, truncated_jpeg)
from search.loading import DocumentError, LoadLimits, load_file, page_of, read_bytes
import search.loading.tesseract as tesseract
from search.loading.ocr import engine_for, reading_order
from search.loading.tesseract import Word, latin_runs, lines_of, merge
from search.output.citations import search_response
from search.service import open_ingester, open_retriever

# --- reading order (no engine: boxes as the engine gives them) ----------------------------------

def _box(x0: float, y0: float, x1: float, y1: float, text: str, angle: float = 0.0) -> list:
    """An engine result ``[quad, text, score]``, the quad turned by ``angle`` degrees about (500, 500)."""
    turn = math.radians(angle)
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    quad = [[500 + (x - 500) * math.cos(turn) - (y - 500) * math.sin(turn),
             500 + (x - 500) * math.sin(turn) + (y - 500) * math.cos(turn)] for x, y in corners]
    return [quad, text, 0.99]


def two_column_page(angle: float = 0.0) -> list:
    boxes = [_box(60, 40, 940, 70, "Title across the page", angle)]
    for row in range(4):
        top = 140 + row * 40
        boxes.append(_box(520, top, 940, top + 26, f"right {row}", angle))
        boxes.append(_box(60, top, 480, top + 26, f"left {row}", angle))
    boxes.append(_box(60, 340, 130, 366, "BIN", angle))  # one visual line in two pieces
    boxes.append(_box(200, 340, 480, 366, "= /usr/bin", angle))
    boxes.append(_box(520, 340, 940, 366, "right 4", angle))
    return boxes


@pytest.mark.parametrize("angle", [0.0, 2.0, -3.0])
def test_reading_order_is_top_down_and_columns_left_to_right(angle):
    lines = reading_order(two_column_page(angle), 1000, 1000)
    assert [line.text for line in lines] == ["Title across the page", "left 0", "left 1", "left 2", "left 3",
                                             "BIN = /usr/bin", "right 0", "right 1", "right 2", "right 3", "right 4"]
    assert all(0 <= value <= 1 for line in lines for value in line.box)
    assert lines[0].box[1] < lines[1].box[1] < lines[4].box[1]


def test_long_lines_of_a_tilted_page_stay_apart_and_in_order():
    """Tesseract boxes a line upright: on a page tilted by 1 degree two full-width lines' boxes overlap by
    more than half their height. Boxes that share their width are two lines, read top to bottom."""
    found = [_box(40, 118, 960, 158, "second line starts a little to the left"),
             _box(60, 100, 980, 140, "first line of the paragraph"),
             _box(60, 190, 400, 215, "BIN"), _box(420, 192, 700, 217, "= /usr/bin")]
    lines = reading_order(found, 1000, 1000)
    assert [line.text for line in lines] == ["first line of the paragraph", "second line starts a little to the left",
                                             "BIN = /usr/bin"]


def _word(text: str, left: int, confidence: float = 0.9, line: tuple[int, int, int] = (1, 1, 1)) -> Word:
    return Word(line, left, 10, left + 10 * len(text), 30, confidence, text)


def test_latin_runs_and_their_merge_with_the_english_reading():
    words = [_word("运行", 0), _word("debianyrutes", 20), _word("build", 150), _word("命令", 210),
             _word("x11", 0, line=(1, 1, 2))]
    assert [word.latin for word in words] == [False, True, True, False, True]
    assert latin_runs(words) == [[1, 2], [4]]
    english = [_word("debian/rules", 22, 0.95), _word("build", 152, 0.96), _word("X11", 0, 0.5)]
    merged = merge(words, latin_runs(words), english)
    # "X11" is read less surely than "x11": that run keeps its first reading
    assert [word.text for word in merged] == ["运行", "debian/rules", "build", "命令", "x11"]
    assert merged[1].line == (1, 1, 1) and lines_of(merged)[0][1] == "运行 debian/rules build 命令"


def test_a_line_is_dropped_only_under_the_floor():
    lines = lines_of([_word("gentoo_0.9.12.orig.tar.gz", 0, 0.35), _word("@#", 0, 0.2, line=(2, 1, 1))])
    assert [text for _, text, _ in lines] == ["gentoo_0.9.12.orig.tar.gz"]


def test_which_pdf_pages_auto_reads_by_ocr():
    """auto: a page mostly (cid:)/U+FFFD, or nearly empty and covered by an image; never a typed page."""
    import pypdfium2 as pdfium

    from search.loading.pdf import _wants_ocr
    from unit.test_loading import make_pdf

    typed = pdfium.PdfDocument(make_pdf(["Sapphires are graded by colour"]))
    scan = pdfium.PdfDocument(pdf_with_image(60, 80, zlib.compress(b"\x80" * 4800)))
    try:
        assert not _wants_ocr("auto", "Sapphires are graded by colour", typed[0])
        assert _wants_ocr("auto", "(cid:12)(cid:7)(cid:9) \ufffd\ufffd ab", typed[0])
        assert not _wants_ocr("auto", "", typed[0])  # a blank page without images: nothing to read
        assert _wants_ocr("auto", "", scan[0]) and _wants_ocr("auto", "Scanned by ACME", scan[0])
        assert not _wants_ocr("auto", "A caption under a full-page figure, " * 3, scan[0])
        assert _wants_ocr("always", "Sapphires", typed[0]) and not _wants_ocr("never", "", scan[0])
    finally:
        typed.close()
        scan.close()


# --- real OCR ----------------------------------------------------------------------------------

@needs_font
@pytest.mark.parametrize("engine", ["tesseract", "rapidocr"])
def test_a_two_page_tiff_in_english_and_chinese_is_read_with_pages_and_line_boxes(engine):
    if engine == "tesseract" and not tesseract.installed():
        pytest.skip("tesseract-ocr with chi_sim is absent (.ci/system-deps installs it)")
    pages = [render(ENGLISH), render(CHINESE)]
    data = encoded(pages[0], "TIFF", save_all=True, append_images=pages[1:], compression="tiff_lzw")
    loaded = read_bytes(data, "contract.tiff", "contract", limits=LoadLimits(ocr_engine=engine))
    document = loaded.document
    expected = " ".join(ENGLISH) + "\n\n" + "".join(CHINESE)  # wrapped lines joined; no spaces in Chinese
    assert character_error_rate(expected, document.text) <= 0.05, document.text
    assert document.media_type == "image/tiff" and loaded.original == data
    assert document.ocr_pages == (1, 2) and len(document.pages) == 2 and len(loaded.ocr_seconds) == 2
    assert page_of(document, document.text.index("交货")) == 2 and page_of(document, 0) == 1
    assert document.title.startswith("Invoices must be paid")
    assert {line.page for line in document.ocr_lines} == {1, 2}
    for line in document.ocr_lines:
        x0, y0, x1, y1 = line.box
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
        assert document.pages[line.page - 1] <= line.start < line.end <= len(document.text)
    first = document.ocr_lines[0]
    assert document.text[first.start:first.end].startswith("Invoices") and first.box[1] < 0.5


@needs_font
def test_a_jpeg_photo_is_read_and_always_reads_a_text_pdf_by_ocr():
    from unit.test_loading import make_pdf

    photo = read_bytes(encoded(render(ENGLISH[:1]).convert("RGB"), "JPEG", quality=85), "photo.jpg", "photo")
    words = ENGLISH[0].replace(" ", "")  # JPEG noise may close a narrow word gap: the words themselves must hold
    assert character_error_rate(words, photo.document.text.replace(" ", "")) <= 0.05, photo.document.text
    assert photo.document.media_type == "image/jpeg" and photo.document.ocr_pages == (1,)
    typed = make_pdf(["Sapphires are graded by colour"])
    assert read_bytes(typed, "typed.pdf", "typed").document.ocr_pages == ()  # auto: its text layer is used
    scanned = read_bytes(typed, "typed.pdf", "typed", limits=LoadLimits(ocr="always"))
    assert scanned.document.ocr_pages == (1,) and "graded by colour" in scanned.document.text


@needs_font
def test_tesseract_reads_doubtful_latin_runs_of_a_chinese_page_again_in_english():
    """The second pass, real Tesseract: a run of English words on a Chinese line, given a wrong and doubtful
    first reading, is cut out, read with eng and put back; a sure run and the Chinese are left as they are."""
    if not tesseract.installed():
        pytest.skip("tesseract-ocr with chi_sim is absent (.ci/system-deps installs it)")
    image = render(["在 debian/rules 中运行 dh_auto_configure 命令",
                    "软件包的版本号写在 changelog 文件里"])
    words = tesseract.run(image, tesseract.LANGUAGES)
    runs = latin_runs(words)
    assert [" ".join(words[index].text for index in members) for members in runs] == [
        "debian/rules", "dh_auto_configure", "changelog"]
    doubtful = runs[0][0]
    words[doubtful] = replace(words[doubtful], text="debianyrutes", confidence=0.2)
    again = tesseract.reread_latin(image, words)
    assert again[doubtful].text == "debian/rules" and again[doubtful].confidence > 0.8
    assert [word.text for word in again if word is not again[doubtful]] == [
        word.text for word in words if word is not words[doubtful]]
    placed = tesseract.read_runs(image, [tesseract.bounds([words[doubtful]])])
    left, top, right, bottom = tesseract.bounds([words[doubtful]])
    assert [word.text for word in placed] == ["debian/rules"]
    assert abs(placed[0].left - left) <= 3 and abs(placed[0].top - top) <= 3 and abs(placed[0].right - right) <= 3


@needs_font
def test_tesseract_leaves_a_latin_page_to_its_first_reading():
    if not tesseract.installed():
        pytest.skip("tesseract-ocr with chi_sim is absent (.ci/system-deps installs it)")
    image = render(ENGLISH)
    words = [replace(word, confidence=0.1) for word in tesseract.run(image, tesseract.LANGUAGES)]
    assert tesseract.latin_share(words) >= tesseract.LATIN_PAGE_SHARE
    assert tesseract.reread_latin(image, words) is words  # eng alone reads a Latin page no better


def test_auto_engine_is_tesseract_where_installed_else_rapidocr():
    assert engine_for("auto") == ("tesseract" if tesseract.installed() else "rapidocr")
    assert engine_for("rapidocr") == "rapidocr" and engine_for("tesseract") == "tesseract"


# --- bad input: one reason per file, nothing half read -------------------------------------------

BAD_SCANS = [
    ("bomb.png", lambda: png_header_only(100_000, 100_000), r"the image is 10,000,000,000 pixels, over the limit"),
    ("poster.png", lambda: png_header_only(20_000, 20_000), r"the image is 400,000,000 pixels, over the limit"),
    ("big.png", lambda: png_header_only(12_000, 12_000), r"the image is 12,000 × 12,000 pixels, over the limit of "
                                                         r"100,000,000 pixels \(setting max_image_pixels\)"),
    ("liar.pdf", lambda: pdf_with_image(20_000, 20_000, zlib.compress(b"\x80" * 100)),
     r"an image on page 1 is 20,000 × 20,000 pixels, over the limit"),
    ("short.pdf", lambda: pdf_with_image(600, 800, zlib.compress(b"\x80" * 100)), "no text found"),
    ("noise.png", noise_png, "no text found"),
    ("photo.png", lambda: b"\xff\xd8\xff\xe0" + b"\x00" * 200, r"not a PNG image \(the content is a JPEG image\)"),
    ("garbage.webp", lambda: b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x01" * 64, "not a readable image"),
]


@pytest.mark.parametrize("name, make, reason", BAD_SCANS, ids=[case[0] for case in BAD_SCANS])
def test_bad_scans_are_refused_by_name_with_one_reason(tmp_path, name, make, reason):
    path = tmp_path / name
    path.write_bytes(make())
    with pytest.raises(DocumentError, match=reason) as error:
        load_file(path, "x")
    assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)


@needs_font
def test_a_truncated_jpeg_is_refused_whole(tmp_path):
    path = tmp_path / "cut.jpg"
    path.write_bytes(truncated_jpeg())
    with pytest.raises(DocumentError, match=r"cut\.jpg: truncated or corrupt image"):
        load_file(path, "x")


def test_ocr_never_refuses_images_and_scans(tmp_path):
    never = LoadLimits(ocr="never")
    with pytest.raises(DocumentError, match=r"scan\.png: an image is read by OCR, which is off \(setting ocr=never\)"):
        read_bytes(noise_png(), "scan.png", "x", limits=never)
    with pytest.raises(DocumentError, match=r"scan\.pdf: no text layer, and OCR is off"):
        read_bytes(pdf_with_image(60, 80, zlib.compress(b"\x80" * 4800)), "scan.pdf", "x", limits=never)


# --- the whole path: ingest a scan, find it from a Chinese question, with its page ----------------------

@needs_debian_pdf
def test_a_scanned_pdf_is_found_from_a_chinese_question_with_its_page(tmp_path, fresh_index_dir, embedder):
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "scan.pdf").write_bytes(scanned_pdf([8, 9]))  # printed pages 3 and 4
    (folder / "bomb.png").write_bytes(png_header_only(100_000, 100_000))
    settings = index_settings(fresh_index_dir)
    ingester = open_ingester(settings, embedder=embedder)
    try:
        summary = ingester.ingest_paths([folder])
    finally:
        ingester.backend.close()
    report = summary.as_dict()
    assert report["added"] == 1 and report["failed"] == 1 and "bomb.png: the image is" in report["errors"][0]
    assert report["ocr_pages"] == 2 and report["ocr_seconds_per_page"] > 0
    retriever = open_retriever(settings, embedder=embedder)
    try:
        assert retriever.backend.document("bomb") is None  # nothing of a refused file is stored
        stored = retriever.backend.document("scan")
        assert stored.ocr_pages == (1, 2) and stored.ocr_lines and "your development system" in stored.text
        result = retriever.search("哪个软件包可以帮助管理大量补丁？", k=3)
        response = search_response(result, 3).model_dump()
    finally:
        retriever.backend.close()
    top = response["results"][0]
    assert top["doc_id"] == "scan" and top["ocr"] is True and top["page"] == 2, top
    assert "quilt" in top["text"] and "p. 2" in top["citation"]


@needs_font
def test_a_scan_is_allowed_ocr_page_seconds_for_each_page_it_reads_by_ocr():
    """The reader's child says when it hands a page to OCR; each such page allows the file
    ``ocr_page_seconds`` more than ``parse_seconds``: a scan needs no raised parse_seconds, and a
    file that takes too long still fails alone, naming the pages it read."""
    from search.loading.isolated import read_isolated

    pages = [render(ENGLISH), render(CHINESE), render(ENGLISH[::-1])]
    data = encoded(pages[0], "PDF", save_all=True, append_images=pages[1:], resolution=150)
    loaded = read_isolated(data, "scan.pdf", "scan", limits=LoadLimits(parse_seconds=0.5, ocr_page_seconds=120))
    assert loaded.document.ocr_pages == (1, 2, 3) and len(loaded.ocr_seconds) == 3
    assert [page_of(loaded.document, loaded.document.text.index(word)) for word in ("Invoices", "交货")] == [1, 2]
    with pytest.raises(DocumentError, match=r"^scan\.pdf: took longer than [0-9.]+ s to read: 0\.5 s and 0\.01 s "
                                            r"for each of [1-3] pages read by OCR \(settings parse_seconds, "
                                            r"ocr_page_seconds\)$"):
        read_isolated(data, "scan.pdf", "scan", limits=LoadLimits(parse_seconds=0.5, ocr_page_seconds=0.01))
