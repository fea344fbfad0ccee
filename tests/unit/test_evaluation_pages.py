"""The page benchmark built from the Debian maint-guide PDFs (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search.eval.pages import DEFAULT_PDFS, PageQuery, build_page_benchmark, load_page_queries, score_rankings

QUERIES = Path(__file__).resolve().parents[3] / "shared" / "bench" / "maintguide" / "queries.jsonl"


@pytest.mark.skipif(not all(path.is_file() for path in DEFAULT_PDFS.values()),
                    reason="Debian's maint-guide PDFs are absent: `apt-get install maint-guide maint-guide-zh-cn`")
@pytest.mark.skipif(not QUERIES.is_file(), reason=f"benchmark queries not found at {QUERIES}")
def test_every_section_title_is_found_on_its_page_in_both_pdfs(tmp_path):
    summary = build_page_benchmark(tmp_path, QUERIES)
    assert summary["dropped_targets"] == [] and summary["queries"] == 156
    queries = {query.qid: query for query in load_page_queries(tmp_path)}
    assert queries["en:librarypackage"].pages == {"en/maint-guide": 62, "zh/maint-guide": 62}
    assert queries["zh:socialdynamics"].pages == {"en/maint-guide": 7, "zh/maint-guide": 7}
    assert (tmp_path / "docs" / "zh" / "maint-guide.pdf").read_bytes() == DEFAULT_PDFS["zh"].read_bytes()
    assert json.loads((tmp_path / "queries.jsonl").read_text(encoding="utf-8").splitlines()[0])["pages"]


def test_hits_count_the_answer_page_or_the_page_after():
    query = PageQuery("en:x", "en", "x", {"en/maint-guide": 10, "zh/maint-guide": 12})
    rankings = {None: [("en/maint-guide", 3), ("zh/maint-guide", 13)], "zh/maint-guide": [("zh/maint-guide", 14)] * 10}
    scores = score_rankings([query], lambda q, doc: rankings[doc])
    assert scores["mixed"]["hit@1"] == 0 and scores["mixed"]["hit@5"] == 1
    assert scores["cross"]["hit@10"] == 0
