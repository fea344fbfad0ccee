"""The bisearch console commands (run in-process, sharing the loaded model)."""

from __future__ import annotations

import json
import re

import pytest

from pdfs import text_bomb_pdf
from search.cli import main
from search.errors import ANSWERS, Conflict, InvalidInput, NotFound
from search.service import _cached_embedder

INVALID, NOT_FOUND = ANSWERS[InvalidInput].exit_code, ANSWERS[NotFound].exit_code


def test_ingest_reports_summary_and_skips_bad_files(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "good.md").write_text("# 珍珠\n\n淡水珍珠的价格今年上涨了。", encoding="utf-8")
    (tmp_path / "docs" / "bad.txt").write_bytes(b"\xff\xfe broken")
    status = main(["ingest", str(tmp_path / "docs"), "--index", str(tmp_path / "idx"), "-q"])
    captured = capsys.readouterr()
    assert status == 0
    assert "added: 1" in captured.out and "failed: 1" in captured.out
    assert "bad.txt" in captured.err
    main(["stats", "--index", str(tmp_path / "idx")])
    assert json.loads(capsys.readouterr().out)["documents"] == 1


def test_one_bad_file_costs_only_itself(tmp_path, capsys):
    """27.10: HTML that broke the reader (AssertionError, ValueError) aborted the whole folder with a
    traceback and nothing ingested."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a-good.md").write_text("# Opal\n\nOpal from Coober Pedy is graded by play of colour.", encoding="utf-8")
    (docs / "b-marked.html").write_bytes(b"<p>hi</p><![<![")
    (docs / "c-digits.html").write_bytes(b"<p>&#" + b"1" * 4400 + b";</p>")
    (docs / "d-bomb.pdf").write_bytes(text_bomb_pdf(20, 300_000))
    (docs / "e-good.txt").write_text("Tanzanite is mined only near Mount Kilimanjaro.", encoding="utf-8")
    status = main(["ingest", str(docs), "--index", str(tmp_path / "idx"), "-q"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "added: 4" in captured.out and "failed: 1" in captured.out, captured.out
    assert "d-bomb.pdf: page 1 holds over 200,000 characters" in captured.err and "Traceback" not in captured.err


def test_query_json_and_text(seed_index_dir, embedder, capsys):
    models_loaded = _cached_embedder.cache_info().currsize
    assert main(["query", "韩国珠宝出口增长了多少？", "-k", "3", "--json", "--index", str(seed_index_dir)]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["query_lang"] == "zh" and len(body["results"]) == 3
    assert main(["query", "Shuibei lead times", "--lang", "en", "--index", str(seed_index_dir)]) == 0
    assert "000_be3e8d9fcddfd8b1" in capsys.readouterr().out
    assert _cached_embedder.cache_info().currsize == models_loaded  # the CLI reused the loaded model


def test_errors_exit_non_zero_with_message(tmp_path, seed_index_dir, capsys):
    for command in (["stats"], ["query", "gold"], ["delete", "x"]):
        assert main([*command, "--index", str(tmp_path / "nothing")]) == NOT_FOUND
        assert "no index" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()  # a mistyped --index is not created
    assert main(["query", "   ", "--index", str(seed_index_dir)]) == INVALID
    assert "empty" in capsys.readouterr().err
    assert main(["ingest", str(tmp_path / "missing.txt"), "--index", str(tmp_path / "i2"), "-q"]) == 1  # all failed
    assert "missing.txt" in capsys.readouterr().err


def test_delete_unknown_document_fails(fresh_index_dir, capsys):
    assert main(["delete", "nope", "--index", str(fresh_index_dir)]) == NOT_FOUND
    assert "no such document" in capsys.readouterr().err


def test_report_command_writes_markdown(seed_index_dir, tmp_path, capsys):
    questions = tmp_path / "questions.txt"
    questions.write_text("韩国珠宝出口增长了多少？\n\nHow much faster are Shuibei lead times?\n", encoding="utf-8")
    output = tmp_path / "report.md"
    assert main(["report", str(questions), "-o", str(output), "-k", "2", "--index", str(seed_index_dir)]) == 0
    text = output.read_text(encoding="utf-8")
    assert text.startswith("# Search report") and "## 2. How much faster" in text and "## References" in text
    empty = tmp_path / "empty.txt"
    empty.write_text("\n", encoding="utf-8")
    assert main(["report", str(empty), "--index", str(seed_index_dir)]) == INVALID
    assert "no questions" in capsys.readouterr().err


def test_matryoshka_dimension_is_recorded_and_reused(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "pearl.md").write_text("# Pearls\n\n淡水珍珠的产量在去年增长。", encoding="utf-8")
    index = str(tmp_path / "idx")
    assert main(["ingest", str(tmp_path / "docs"), "--index", index, "--dim", "256", "-q"]) == 0
    assert main(["stats", "--index", index]) == 0
    assert '"dimension": 256' in capsys.readouterr().out
    assert main(["query", "freshwater pearl output", "--index", index, "--json"]) == 0  # 256-d reused
    assert json.loads(capsys.readouterr().out)["results"][0]["doc_id"] == "pearl"
    assert main(["query", "pearls", "--index", index, "--dim", "128"]) == ANSWERS[Conflict].exit_code
    assert "256" in capsys.readouterr().err


def test_serve_refuses_a_missing_index(tmp_path, capsys):
    assert main(["serve", "--index", str(tmp_path / "typo")]) == NOT_FOUND
    assert "no index at" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


def test_serve_on_a_public_host_needs_a_key_or_insecure_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BISEARCH_API_KEY", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--index", str(tmp_path / "typo")]) == INVALID
    assert "--insecure-no-key" in capsys.readouterr().err
    # with the flag (or a key) it goes on, here to the missing-index check
    assert main(["serve", "--host", "0.0.0.0", "--insecure-no-key", "--index", str(tmp_path / "typo")]) == NOT_FOUND
    assert "no index at" in capsys.readouterr().err
    monkeypatch.setenv("BISEARCH_API_KEY", "k")
    assert main(["serve", "--host", "0.0.0.0", "--index", str(tmp_path / "typo")]) == NOT_FOUND
    assert "no index at" in capsys.readouterr().err


def test_ingest_ocr_never_refuses_images_and_auto_reads_them(tmp_path, capsys):
    from scans import ENGLISH, encoded, needs_font, render

    if needs_font.mark.args[0]:
        pytest.skip(needs_font.mark.kwargs["reason"])
    (tmp_path / "scan.png").write_bytes(encoded(render(ENGLISH), "PNG"))
    index = str(tmp_path / "idx")
    assert main(["ingest", str(tmp_path / "scan.png"), "--index", index, "-q", "--ocr", "never"]) == 1
    assert "scan.png: an image is read by OCR, which is off" in capsys.readouterr().err
    assert main(["ingest", str(tmp_path / "scan.png"), "--index", index, "-q"]) == 0
    out = capsys.readouterr().out
    assert "added: 1" in out and re.search(r"pages read by OCR: 1  OCR seconds per page: \d", out), out
    assert main(["query", "when must invoices be paid", "--index", index, "-k", "1"]) == 0
    assert re.search(r"scan #0 \(en\) chars \d+-\d+  p\. 1  \[OCR\]", capsys.readouterr().out)
