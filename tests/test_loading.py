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
    (tmp_path / "skip.pdf").write_bytes(b"%PDF")
    assert [doc_id for _, doc_id in discover_files([tmp_path])] == ["en/a"]
