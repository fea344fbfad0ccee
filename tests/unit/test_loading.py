"""Reading .txt/.md/.html files; refusing binaries and non-UTF-8 text."""

from __future__ import annotations

import pytest

from search.loading import DocumentError, discover_files, read_document


def test_html_tags_stripped_text_and_title_kept(tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<html><head><title>金价 Report</title><style>p{}</style></head>"
                    "<body><h1>Gold</h1><p>金价上涨了<b>10%</b>。</p><script>alert(1)</script></body></html>",
                    encoding="utf-8")
    document = read_document(page, "page")
    assert document.title == "金价 Report"
    assert "金价上涨了10%。" in document.text and "Gold" in document.text
    assert "alert" not in document.text and "<" not in document.text


def test_markdown_title_from_first_heading(tmp_path):
    note = tmp_path / "note.md"
    note.write_text("\n# 韩国珠宝\n\nBody text.", encoding="utf-8")
    assert read_document(note, "note").title == "韩国珠宝"


@pytest.mark.parametrize("payload, reason", [(b"\xff\xfe\x00bin", "binary"), (b"caf\xe9 latin-1", "UTF-8")])
def test_binary_and_non_utf8_files_are_refused_by_name(tmp_path, payload, reason):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(payload)
    with pytest.raises(DocumentError, match=reason) as error:
        read_document(bad, "bad")
    assert "bad.txt" in str(error.value)


def test_document_ids_relative_to_folder(tmp_path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "a.txt").write_text("x")
    (tmp_path / "skip.xls").write_bytes(b"%PDF")
    assert [doc_id for _, doc_id in discover_files([tmp_path])] == ["en/a"]


# --- PDF, DOCX and web pages (search/loading/) ----------------------------------------------------

import io
import os
import re
import zipfile
from pathlib import Path

from search.loading import LoadLimits, decode_text, load_file, page_of, read_bytes, sniff
from search.loading.pdf import furniture, join_wrapped, page_lines
from search.types import Lang
from pdfs import make_pdf

EN_PDF = Path("/usr/share/doc/maint-guide/maint-guide.en.pdf")
ZH_PDF = Path("/usr/share/doc/maint-guide-zh-cn/maint-guide.zh-cn.pdf")
needs_debian_pdfs = pytest.mark.skipif(
    not (EN_PDF.is_file() and ZH_PDF.is_file()),
    reason="Debian's maint-guide PDFs are absent: `apt-get install maint-guide maint-guide-zh-cn` (.ci/run does)")


def rewrite_pdf(data: bytes, *, labels: bool = False, password: str | None = None) -> bytes:
    """The PDF rewritten by pypdf (test-only dependency): roman labels on page 1-2, or encrypted."""
    pypdf = pytest.importorskip("pypdf")
    from pypdf.constants import PageLabelStyle

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    if labels:
        writer.set_page_label(0, 1, style=PageLabelStyle.LOWERCASE_ROMAN)
        writer.set_page_label(2, len(writer.pages) - 1, style=PageLabelStyle.DECIMAL, start=1)
    if password:
        writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="AES-256")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


@needs_debian_pdfs
def test_english_pdf_pages_labels_title_and_cleaning():
    loaded = load_file(EN_PDF, "maint-en")
    document = loaded.document
    assert loaded.original == EN_PDF.read_bytes() and document.media_type == "application/pdf"
    assert document.title == "Debian New Maintainers' Guide" and document.lang == Lang.EN
    assert len(document.pages) == 63 and document.pages[0] == 0
    assert list(document.pages) == sorted(document.pages) and document.pages[-1] < len(document.text)
    assert document.page_labels[:7] == ("i", "ii", "iii", "iv", "v", "vi", "1") and document.page_labels[20] == "15"
    phrase = "hardcode strings like /home/me/deb/package-version/usr/share/package into files in the package."
    start = document.text.index(phrase)
    assert document.text[start:start + len(phrase)] == phrase
    assert page_of(document, start) == 21 and document.pages[20] <= start < document.pages[21]
    # a line wrapped inside an English sentence joined with one space
    assert "relative to the root directory rather than your working directory." in document.text
    # pdfium's mark of a word hyphenated at a line end: re-joined
    assert "Guide for Debian Maintainers(https" in document.text and "\ufffe" not in document.text
    # a URL broken after a slash with a hyphen: re-joined
    assert "http://www.debian.org/doc/devel-manuals#policy" in document.text
    # running headers ("... Guide 15 / 57", "... Guide ii") gone, table of contents lines kept whole
    assert not re.search(r"Maintainers’ Guide (\d+ / \d+|[ivx]+)\n", document.text)
    assert "\n5.2 compat . . ." in document.text
    # sections from the PDF outline, placed on their heading
    sections = dict((title, offset) for offset, title in document.sections)
    offset = sections["Social dynamics of Debian"]
    assert document.text[offset:].startswith("Social dynamics of Debian") and page_of(document, offset) == 7


@needs_debian_pdfs
def test_chinese_pdf_lines_joined_without_spaces():
    document = load_file(ZH_PDF, "maint-zh").document
    assert document.title == "Debian 新维护者手册" and document.lang == Lang.ZH and len(document.pages) == 63
    phrase = "按照上边的解释，该目录被 Debian 保留作本地用途，所以请把它们按如下方式修改："
    start = document.text.index(phrase)  # raw: "...按如下\r\n方式修改："
    assert page_of(document, start) == 21 and document.page_labels[20] == "15"
    assert "本教程建议你快速浏览相关章节以获取你打包需要用到的内容。" in document.text
    assert not re.search(r"[\u4e00-\u9fff] [\u4e00-\u9fff]", document.text)  # raw text has 75 such spaces
    assert "手册 15 / 57" not in document.text
    for number in range(len(document.pages)):  # every page's slice is exact and in order
        end = document.pages[number + 1] if number + 1 < len(document.pages) else len(document.text)
        assert document.pages[number] <= end


def test_cleaning_rules_on_lines():
    full = "x" * 80
    # English: one space; hyphenated word re-joined; sentence end kept
    assert join_wrapped([full + " the files are installed in the", "working directory."], 60) \
        == full + " the files are installed in the working directory."
    assert join_wrapped([full + " an infor-", "mation page"], 60) == full + " an information page"
    assert join_wrapped([full + " ends here.", "Next one"], 60) == full + " ends here.\nNext one"
    # Chinese: no space; short lines, bullets and headings stay lines
    chinese = "这" * 45
    assert join_wrapped([chinese, "方式修改。"], 60) == chinese + "方式修改。"
    assert join_wrapped(["Short heading", "body text"], 60) == "Short heading\nbody text"
    assert join_wrapped([full, "• item"], 60) == full + "\n• item"
    # ligatures expanded, spaces between Chinese characters removed, NFKC not applied
    assert page_lines("ﬁle ﬂow\r\n李 凌 和 Debian 的　手册\r\n“quoted” ＡＢ") == ["file flow", "李凌和 Debian 的手册",
                                                                           "“quoted” ＡＢ"]
    # running headers: the same shape with numbers masked on most pages
    pages = [[f"My Report {n} / 9", "body", str(n)] for n in range(1, 10)]
    assert furniture(pages) >= {"my report #", "#"}


def test_small_pdf_with_page_labels_and_progress():
    data = rewrite_pdf(make_pdf(["Preface text", "Contents list", "Chapter one begins here", "Chapter two"]),
                       labels=True)
    seen = []
    loaded = read_bytes(data, "book.pdf", "book", progress=lambda done, total: seen.append((done, total)))
    document = loaded.document
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert document.page_labels == ("i", "ii", "1", "2")
    start = document.text.index("Chapter one begins here")
    assert page_of(document, start) == 3 and document.text[document.pages[2]:].startswith("Chapter one")
    assert document.title == "Preface text" and loaded.original == data


def test_pdf_without_labels_has_none():
    document = read_bytes(make_pdf(["One page of text"]), "a.pdf", "a").document
    assert document.page_labels == () and document.pages == (0,)


def test_thousand_page_pdf_is_read_and_the_page_cap_applies():
    data = make_pdf([f"Page {n} says something different: item {n * 7}" for n in range(1, 1001)])
    document = read_bytes(data, "big.pdf", "big").document
    assert len(document.pages) == 1000
    assert page_of(document, document.text.index("item 4872")) == 696
    with pytest.raises(DocumentError, match=r"big\.pdf: 1,000 pages, over the page limit of 500"):
        read_bytes(data, "big.pdf", "big", limits=LoadLimits(max_pages=500))


def _docx_bytes(build) -> bytes:
    docx = pytest.importorskip("docx")
    word = docx.Document()
    build(word)
    buffer = io.BytesIO()
    word.save(buffer)
    return buffer.getvalue()


def test_docx_paragraphs_headings_tables_in_order(tmp_path):
    def build(word):
        word.core_properties.title = "季度报告 Q3"
        word.add_heading("Introduction", level=1)
        word.add_paragraph("Gold prices rose by 10% this quarter.")
        table = word.add_table(rows=2, cols=2)
        for row, values in zip(table.rows, [("Year", "Price"), ("2024", "2000")]):
            for cell, value in zip(row.cells, values):
                cell.text = value
        word.add_heading("结论", level=2)
        word.add_paragraph("金价上涨。")

    path = tmp_path / "report.docx"
    path.write_bytes(_docx_bytes(build))
    loaded = load_file(path, "report")
    document = loaded.document
    assert document.text == "Introduction\nGold prices rose by 10% this quarter.\nYear\tPrice\n2024\t2000\n结论\n金价上涨。"
    assert document.title == "季度报告 Q3" and loaded.original == path.read_bytes()
    assert [(document.text[offset:offset + len(title)], title) for offset, title in document.sections] == \
        [("Introduction", "Introduction"), ("结论", "结论")]
    assert document.media_type.endswith("wordprocessingml.document")


def test_docx_title_falls_back_to_first_heading():
    data = _docx_bytes(lambda word: (word.add_paragraph("intro line"), word.add_heading("Real Title", 1)))
    assert read_bytes(data, "x.docx", "x").document.title == "Real Title"


def test_html_main_content_title_and_sections(tmp_path):
    body = "Gold rose sharply this week as investors sought safety in metals. " * 6
    page = tmp_path / "news.html"
    page.write_text(f"""<html><head><title>Gold prices rise - Example News</title></head><body>
        <nav><a href="/">Home</a> <a href="/world">World news menu</a></nav>
        <article><h1>Gold prices rise</h1><p>{body}</p><h2>Why it matters</h2>
        <p>Central banks bought more gold than in any quarter on record, analysts said.</p></article>
        <footer>Copyright 2024 Example News. All rights reserved.</footer></body></html>""", encoding="utf-8")
    document = read_document(page, "news")
    assert document.title == "Gold prices rise" and document.media_type == "text/html"
    assert "Central banks bought more gold" in document.text
    assert "World news menu" not in document.text and "All rights reserved" not in document.text
    assert [title for _, title in document.sections] == ["Gold prices rise", "Why it matters"]
    assert all(document.text[offset:].startswith(title) for offset, title in document.sections)


def test_markdown_sections(tmp_path):
    note = tmp_path / "n.md"
    note.write_text("# Title\n\ntext\n\n## 第二节\nmore", encoding="utf-8")
    document = read_document(note, "n")
    assert document.sections == ((0, "Title"), (15, "第二节")) and document.lang == Lang.EN


# --- bad input: one DocumentError naming the file, never part of a document --------------------------

def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("name, make, reason", [
    ("locked.pdf", lambda: rewrite_pdf(make_pdf(["secret text"]), password="pw"), "encrypted PDF"),
    ("scan.pdf", lambda: make_pdf(["", "", ""]), "no text layer"),
    ("cut.pdf", lambda: make_pdf(["some text here"] * 3)[:300], "truncated or corrupt PDF"),
    ("garbage.pdf", lambda: b"%PDF-1.4\n" + os.urandom(2000) + b"\n%%EOF\n", "corrupt or unreadable PDF"),
    ("notes.pdf", lambda: b"just some text, not a pdf", "not a PDF"),
    ("letter.docx", lambda: make_pdf(["x"]), "not a DOCX"),
    ("hidden.txt", lambda: make_pdf(["x"]), "content is a PDF"),
    ("archive.md", lambda: _zip_bytes({"a.txt": b"x"}), "content is a ZIP"),
    ("cut.docx", lambda: _docx_bytes(lambda word: word.add_paragraph("hello " * 500))[:1500], "corrupt DOCX"),
    ("other.docx", lambda: _zip_bytes({"a.txt": b"x"}), "not a Word document"),
    ("old.docx", lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, "encrypted or legacy"),
])
def test_bad_files_are_refused_by_name_with_a_reason(tmp_path, name, make, reason):
    path = tmp_path / name
    path.write_bytes(make())
    with pytest.raises(DocumentError, match=reason) as error:
        load_file(path, "x")
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_zip_bomb_disguised_as_docx_is_refused_before_inflating():
    bomb = _zip_bytes({"[Content_Types].xml": b"<x/>", "word/document.xml": b"\0" * (8 * 1024 * 1024)})
    assert len(bomb) < 100_000
    with pytest.raises(DocumentError, match=r"bomb\.docx: unpacks to 8,388,\d+ bytes, over the limit"):
        read_bytes(bomb, "bomb.docx", "bomb", limits=LoadLimits(max_unzipped_bytes=4 * 1024 * 1024))


def test_files_over_the_size_cap_are_refused(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("word " * 1000)
    with pytest.raises(DocumentError, match="over the file size limit of 2,048 bytes"):
        load_file(path, "big", limits=LoadLimits(max_file_bytes=2048))
    with pytest.raises(DocumentError, match="over the file size limit"):
        read_bytes(path.read_bytes(), "big.txt", "big", limits=LoadLimits(max_file_bytes=2048))


def test_fifo_and_folders_are_not_read(tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)  # opening it for a blocking read would hang forever
    with pytest.raises(DocumentError, match="not a regular file"):
        load_file(fifo, "pipe")
    folder = tmp_path / "dir.txt"
    folder.mkdir()
    with pytest.raises(DocumentError, match="not a regular file"):
        load_file(folder, "dir")


def test_decode_text_refuses_pdf_content():
    with pytest.raises(DocumentError, match="x.pdf: the content is a PDF, not text"):
        decode_text(b"%PDF-1.4", "x.pdf")


def test_sniffing():
    assert sniff(make_pdf(["x"])) == "pdf" and sniff(b"\xef\xbb\xbf%PDF-1.7 ...") == "pdf"
    assert sniff(b"A note about the %PDF-1.7 header") == "other"
    assert sniff(_zip_bytes({"a": b"b"})) == "zip"


def test_a_title_taken_from_the_first_line_is_marked_a_guess():
    """Only a title the file names (given, metadata, a heading) is given to the model as the
    passages' title; a first line standing in for one is marked ``title_guessed``."""
    from search.loading.html import html_document
    from search.loading.text import text_document

    assert text_document("a", "Debian supports many ports\nwith the autobuilder.").title_guessed
    assert not text_document("a", "Debian supports many ports.", title="Autobuilders").title_guessed
    assert not text_document("a", "# Autobuilders\n\nDebian supports many ports.", markdown=True).title_guessed
    assert not html_document("a", "<html><head><title>Autobuilders</title></head><body><p>Ports.</p></body></html>"
                             ).title_guessed
    assert html_document("a", "<html><body><p>Debian supports many ports.</p></body></html>").title_guessed
    assert not read_bytes(make_pdf(["Sapphires are graded by colour"], title="Gems"), "g.pdf", "g").document.title_guessed
    assert read_bytes(make_pdf(["Sapphires are graded by colour"]), "g.pdf", "g").document.title_guessed
