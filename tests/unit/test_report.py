"""Reports and citations: page references, numbering, exact quotes re-read from the document."""

from __future__ import annotations

import pytest

from fakes import FAKE_MODEL, prepared
from search.backends.local import LocalBackend
from search.output.report import ReportError, format_citation, page_reference, render_markdown, report_for_passages
from search.types import Lang, Passage


def passage(**values) -> Passage:
    return Passage(**{"doc_id": "d", "chunk_no": 0, "start": 10, "end": 20, "text": "0123456789", "lang": Lang.EN,
                      "title": "T", "source": "s.pdf", **values})


def test_citations_name_pages_sections_and_offsets():
    assert format_citation(1, passage()) == "[1] T, s.pdf, chars 10–20"
    assert format_citation(2, passage(page=12, page_end=12)) == "[2] T, s.pdf, p. 12, chars 10–20"
    assert page_reference(passage(page=12, page_end=13)) == "pp. 12–13"
    assert page_reference(passage(page=7, page_end=7, page_label="1")) == "p. 7 (printed 1)"
    assert format_citation(3, passage(section="Intro", source="")) == "[3] T, d, § Intro, chars 10–20"


def test_report_of_chosen_passages_quotes_the_stored_text(tmp_path):
    backend = LocalBackend(tmp_path)
    backend.record_model(FAKE_MODEL)
    backend.write([prepared("a", ["Gold prices rose.", "黄金价格上涨。"])])
    report = report_for_passages(backend, [{"doc_id": "a", "start": 0, "end": 4},
                                           {"doc_id": "a", "start": 0, "end": 4, "query": "again"}])
    assert len(report.references) == 1 and report.references[0].passage.text == "Gold"
    markdown = render_markdown(report)
    assert "> Gold [1]" in markdown and "[1] a, mem:a, chars 0–4" in markdown
    with pytest.raises(ReportError, match="outside"):
        report_for_passages(backend, [{"doc_id": "a", "start": 0, "end": 10**6}])
    with pytest.raises(ReportError, match="unknown document"):
        report_for_passages(backend, [{"doc_id": "zz", "start": 0, "end": 1}])


def test_evidence_is_quoted_with_its_own_characters_and_the_passage_kept():
    whole = passage(text="One. Two. Three.", start=100, end=116)
    chosen = ((110, 116), (100, 104))  # best first; quoted in document order
    assert format_citation(4, whole, chosen) == "[4] T, s.pdf, chars 100–104, 110–116"
    from search.output.report import Reference
    reference = Reference(1, whole, chosen)
    assert reference.quote == "One. … Three."
    fields = reference.as_dict()
    assert (fields["start"], fields["end"], fields["text"]) == (100, 116, "One. Two. Three.")
    assert fields["evidence"] == [[110, 116], [100, 104]] and fields["quote"] == "One. … Three."


def test_chosen_passages_quote_their_evidence_and_refuse_a_changed_document(tmp_path):
    from search.output.report import StaleQuoteError, verify_quotes

    backend = LocalBackend(tmp_path)
    backend.record_model(FAKE_MODEL)
    backend.write([prepared("a", ["Gold prices rose. Silver fell.", "黄金价格上涨。"])])
    text = backend.document("a").text
    silver = (text.index("Silver"), text.index("fell.") + len("fell."))
    chosen = {"doc_id": "a", "start": 0, "end": silver[1], "evidence": [silver], "text": text[:silver[1]]}
    report = report_for_passages(backend, [chosen])
    assert report.references[0].quote == "Silver fell." and "> Silver fell. [1]" in render_markdown(report)
    whole = report_for_passages(backend, [chosen], quote="passage")
    assert whole.references[0].quote == text[:silver[1]]
    with pytest.raises(ReportError, match="inside the passage"):
        report_for_passages(backend, [{**chosen, "evidence": [(0, silver[1] + 1)]}])
    with pytest.raises(StaleQuoteError, match="changed since it was searched"):
        report_for_passages(backend, [{**chosen, "text": "Gold prices fell. Silver rose."}])
    assert verify_quotes(report, backend) is report
    backend.write([prepared("a", ["Gold prices fell. Silver rose.", "黄金价格下跌。"])])  # re-ingested since
    with pytest.raises(StaleQuoteError, match="search again"):
        verify_quotes(report, backend)
    backend.delete("a")
    with pytest.raises(StaleQuoteError):
        verify_quotes(report, backend)
