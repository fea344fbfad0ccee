"""Reports as Word documents (search/output/report_docx.py), read back with python-docx: every quote
is its document's text, every reference is there, Chinese has a CJK font; the first page is
rendered to an image when LibreOffice is installed to convert it."""

from __future__ import annotations

import io
import shutil
import subprocess

import docx
import httpx
import pytest
from docx.oxml.ns import qn

from search.cli import main
from search.errors import ANSWERS, InvalidInput
from search.output.report import EVIDENCE_GAP, Report, Section, report_for_questions, verify_quotes
from search.output.report_docx import DEFAULT_CJK_FONT, DOCX_MEDIA_TYPE, NO_PASSAGES, render_docx
from search.types import Lang, Passage

QUESTIONS = ["水贝珠宝的生产周期比全球平均快多少？", "How much did Korean jewellery exports grow?"]


@pytest.fixture(scope="module")
def seed_report(seed_retriever) -> Report:
    report = report_for_questions(seed_retriever, QUESTIONS, k=2)
    return verify_quotes(report, seed_retriever.backend)


def document_span_text(backend, reference) -> str:
    """What a reference must quote, read from the stored document: its evidence sentences or its passage."""
    text = backend.document(reference.passage.doc_id).text
    spans = sorted(reference.evidence) or [(reference.passage.start, reference.passage.end)]
    return EVIDENCE_GAP.join(text[start:end] for start, end in spans)


def assert_holds_the_report(data: bytes, report: Report, backend) -> docx.document.Document:
    word = docx.Document(io.BytesIO(data))
    paragraphs = word.paragraphs
    assert paragraphs[0].style.name == "Title" and paragraphs[0].text == report.title
    headings = [p.text for p in paragraphs if p.style.name == "Heading 1"]
    assert headings == [f"{n}. {s.heading}" for n, s in enumerate(report.sections, start=1)] + ["References"]
    quotes = [p.text for p in paragraphs if p.style.name == "Quote"]
    cited = [reference for section in report.sections for reference in section.references]
    assert quotes == [f"{reference.quote} [{reference.number}]" for reference in cited]
    for reference in cited:
        assert reference.quote == document_span_text(backend, reference)
    listed = paragraphs[-len(report.references):]
    for paragraph, reference in zip(listed, report.references):
        passage = reference.passage
        assert paragraph.text == f"{reference.citation} — document {passage.doc_id} ({passage.lang.value})"
        assert paragraph.text.startswith(f"[{reference.number}] {passage.title}, {passage.source}")
        assert "chars " in paragraph.text
    return word


def test_every_quote_is_its_document_span_and_every_reference_is_listed(seed_report, seed_retriever):
    word = assert_holds_the_report(render_docx(seed_report), seed_report, seed_retriever.backend)
    assert any("30% faster" in p.text for p in word.paragraphs if p.style.name == "Quote")
    assert len(seed_report.references) >= 3 and word.core_properties.title == seed_report.title

    # Chinese renders in a CJK face: every run and every style names the East Asian font, no theme font.
    for paragraph in word.paragraphs:
        for run in paragraph.runs:
            assert run._element.rPr.rFonts.get(qn("w:eastAsia")) == DEFAULT_CJK_FONT
    heading = word.styles["Heading 1"].element.rPr.rFonts
    assert heading.get(qn("w:eastAsia")) == DEFAULT_CJK_FONT and heading.get(qn("w:eastAsiaTheme")) is None


def test_an_unanswered_question_and_characters_word_cannot_hold():
    odd = Passage("d", 0, 0, 5, "a\x0cb\x00c", Lang.EN, title="Odd", source="odd.txt")
    report = Report("R", [Section("nothing found"), Section("odd")])
    report.sections[1].references.append(report.cite(odd))
    word = docx.Document(io.BytesIO(render_docx(report)))
    texts = [p.text for p in word.paragraphs]
    assert texts[texts.index("1. nothing found") + 1] == NO_PASSAGES
    assert "a\ufffdb\ufffdc [1]" in texts


def test_post_report_answers_a_word_file(live_server, seed_retriever):
    chosen = httpx.post(f"{live_server.url}/search", json={"q": QUESTIONS[0], "k": 2}, timeout=60).json()["results"]
    body = {"passages": [{key: hit[key] for key in ("doc_id", "start", "end", "evidence")} | {"query": QUESTIONS[0]}
                         for hit in chosen]}
    reply = httpx.post(f"{live_server.url}/report", json=body, headers={"Accept": DOCX_MEDIA_TYPE}, timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == DOCX_MEDIA_TYPE
    assert 'filename="report.docx"' in reply.headers["content-disposition"]
    as_json = httpx.post(f"{live_server.url}/report", json=body, headers={"Accept": "application/json"}, timeout=60)
    word = docx.Document(io.BytesIO(reply.content))
    quotes = [p.text for p in word.paragraphs if p.style.name == "Quote"]
    assert quotes == [f"{ref['quote']} [{ref['number']}]" for ref in as_json.json()["references"]]
    bad = httpx.post(f"{live_server.url}/report", json={"passages": [{"doc_id": "nope", "start": 0, "end": 3}]},
                     headers={"Accept": DOCX_MEDIA_TYPE}, timeout=60)
    assert bad.status_code == 422 and bad.json()["detail"] == "unknown document: 'nope'"


def test_report_command_writes_a_word_file(seed_index_dir, seed_retriever, tmp_path, capsys):
    questions = tmp_path / "questions.txt"
    questions.write_text("\n".join(QUESTIONS) + "\n", encoding="utf-8")
    output = tmp_path / "report.docx"
    assert main(["report", str(questions), "-o", str(output), "-k", "2", "--index", str(seed_index_dir)]) == 0
    assert "2 question(s)" in capsys.readouterr().out
    expected = verify_quotes(report_for_questions(seed_retriever, QUESTIONS, k=2), seed_retriever.backend)
    assert_holds_the_report(output.read_bytes(), expected, seed_retriever.backend)
    assert {path.name for path in tmp_path.iterdir()} == {"questions.txt", "report.docx"}  # no temp file left
    assert main(["report", str(questions), "-o", str(tmp_path / "r.docx"), "--json",
                 "--index", str(seed_index_dir)]) == ANSWERS[InvalidInput].exit_code
    assert "choose one" in capsys.readouterr().err and not (tmp_path / "r.docx").exists()


CONVERTER = shutil.which("soffice") or shutil.which("libreoffice")


@pytest.mark.skipif(CONVERTER is None, reason="no .docx to PDF converter (apt-get install libreoffice-writer-nogui)")
def test_first_page_renders_with_a_cjk_font(seed_report, tmp_path):
    import pypdfium2
    from pypdf import PdfReader

    source = tmp_path / "report.docx"
    source.write_bytes(render_docx(seed_report))
    subprocess.run([CONVERTER, "--headless", "--norestore", f"-env:UserInstallation=file://{tmp_path}/profile",
                    "--convert-to", "pdf", "--outdir", str(tmp_path), str(source)],
                   check=True, capture_output=True, timeout=120)
    pdf = tmp_path / "report.pdf"
    first = PdfReader(pdf).pages[0]
    fonts = {str(font.get_object()["/BaseFont"]) for font in first["/Resources"]["/Font"].values()}
    assert any("CJK" in font or "Sun" in font or "Hei" in font for font in fonts), fonts
    assert QUESTIONS[0] in first.extract_text().replace("\n", "")
    page = pypdfium2.PdfDocument(pdf)[0]
    image = page.render(scale=1.5).to_pil()
    image.save(tmp_path / "report-docx-page1.png")
    # not blank: a real page of text has many dark pixels
    assert sum(image.convert("L").histogram()[:128]) > 10_000
