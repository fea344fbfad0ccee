"""A report as a Word document (.docx, python-docx): the same sections, quotes and references as
:func:`search.output.report.render_markdown`.

One section per question, each quote a paragraph in Word's *Quote* style followed by its
reference number, then the numbered references (title, source, pages, section and character
range). python-docx has no footnote API, so references are a numbered list at the end. Every
run names an East Asian font, so Chinese renders in a CJK face rather than a fallback.
"""

from __future__ import annotations

import io
import re

from docx import Document as new_word_document
from docx.oxml.ns import qn
from docx.oxml.shared import OxmlElement
from docx.shared import Cm
from docx.text.paragraph import Paragraph
from docx.text.run import Run

from search.output.report import Reference, Report
from search.text.language import HAN_RE

DOCX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
DEFAULT_CJK_FONT = "SimSun"
NO_PASSAGES = "No passages found."
QUOTE_INDENT = Cm(1)
# Characters XML 1.0 cannot hold (C0 controls but tab/newline/CR, lone surrogates, U+FFFE/U+FFFF).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def render_docx(report: Report, cjk_font: str = DEFAULT_CJK_FONT) -> bytes:
    """The report as the bytes of a .docx file."""
    document = new_word_document()
    document.core_properties.title = xml_text(report.title)
    _set_up_styles(document, cjk_font)
    _add_heading(document, report.title, 0, cjk_font)
    for number, section in enumerate(report.sections, start=1):
        _add_heading(document, f"{number}. {section.heading}", 1, cjk_font)
        if not section.references:
            _add_run(document.add_paragraph(), NO_PASSAGES, cjk_font).italic = True
        for reference in section.references:
            _add_quote(document.add_paragraph(style="Quote"), reference, cjk_font)
    _add_heading(document, "References", 1, cjk_font)
    for reference in report.references:
        _add_reference(document.add_paragraph(), reference, cjk_font)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def xml_text(text: str) -> str:
    """``text`` with the characters a Word file cannot hold replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


def _add_heading(document, text: str, level: int, font: str) -> None:
    _add_run(document.add_heading(level=level), text, font)


def _add_quote(paragraph: Paragraph, reference: Reference, font: str) -> None:
    quote = _add_run(paragraph, reference.quote, font)
    if HAN_RE.search(reference.quote):
        quote.italic = False  # slanted Chinese is a synthetic oblique: hard to read
    _add_run(paragraph, f" [{reference.number}]", font).italic = False


def _add_reference(paragraph: Paragraph, reference: Reference, font: str) -> None:
    passage = reference.passage
    _add_run(paragraph, f"{reference.citation} — document ", font)
    _add_run(paragraph, passage.doc_id, font).font.name = "Consolas"
    _add_run(paragraph, f" ({passage.lang.value})", font)


def _add_run(paragraph: Paragraph, text: str, font: str) -> Run:
    run = paragraph.add_run(xml_text(text))  # "\n" becomes a line break
    _set_east_asian_font(run._element.get_or_add_rPr(), font)
    return run


def _set_up_styles(document, font: str) -> None:
    """Quotes indented; every style (and the document defaults) with ``font`` for East Asian text."""
    document.styles["Quote"].paragraph_format.left_indent = QUOTE_INDENT
    styles = document.styles.element
    for fonts in styles.iter(qn("w:rFonts")):
        fonts.attrib.pop(qn("w:eastAsiaTheme"), None)  # a theme font would win over the named one
        fonts.set(qn("w:eastAsia"), font)
    for lang in styles.iter(qn("w:lang")):
        lang.set(qn("w:eastAsia"), "zh-CN")


def _set_east_asian_font(properties, font: str) -> None:
    fonts = properties.find(qn("w:rFonts"))
    if fonts is None:
        fonts = OxmlElement("w:rFonts")
        properties.insert(0, fonts)
    fonts.set(qn("w:eastAsia"), font)
