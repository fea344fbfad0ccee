"""What both backends encode alike, and the rules of the contract, checked once for both.

* the model check and its message (:func:`check_model`);
* the rules every write obeys: a model recorded first, document ids a filter can name, one
  vector of the model's size per passage (:func:`check_write`);
* a document's page starts, page labels, sections and OCR pages and lines, and a stored passage, in both directions
  (:func:`layout`, :func:`stored_document`, :func:`stored_passage`);
* the passage counts of :meth:`Backend.stats` (:func:`passage_counts`, :func:`stats_counts`);
* which passages hold a quoted phrase (:func:`holds_phrases`): the local backend answers it from
  its FTS5 and trigram indexes, Milvus by reading its candidates' text.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from search.backends.base import DocumentRefused, ModelMismatchError, PreparedDocument
from search.text.language import HAN_RE, comparable, keyword_tokens
from search.types import Document, Lang, ModelInfo, OcrLine, Passage

#: The longest document id a backend stores (a Milvus VARCHAR field; the API allows fewer).
MAX_ID_CHARS = 4_096
#: A Chinese phrase narrows only from this many characters on (the trigram index's reach).
CHARS_MIN_PHRASE = 3
#: Characters a LIKE pattern cannot hold literally: a phrase holding one does not narrow.
LIKE_WILDCARDS = frozenset("%_")
LAYOUT_FIELDS = ("pages", "page_labels", "sections", "ocr_pages", "ocr_lines")


# -- the model ------------------------------------------------------------------------------
def check_model(recorded: ModelInfo | None, info: ModelInfo, where: str) -> None:
    """Refuse ``info`` for an index (named by ``where``) that records another model or vector size."""
    if recorded is not None and (recorded.name, recorded.dimension) != (info.name, info.dimension):
        raise ModelMismatchError(
            f"{where} was built with model {recorded.name!r} ({recorded.dimension}-d), not {info.name!r} "
            f"({info.dimension}-d): query it with that model (--model / BISEARCH_MODEL, --dim) or ingest "
            f"into a new index")


# -- the rules of a write -------------------------------------------------------------------
def check_write(documents: Sequence[PreparedDocument], model: ModelInfo | None, where: str) -> None:
    """Refuse a write (:class:`DocumentRefused`, before anything is stored) unless a model is
    recorded, every document id has 1 to :data:`MAX_ID_CHARS` characters and no line break, and
    every passage has one vector of the model's size."""
    if model is None:
        raise DocumentRefused(f"{where}: no model recorded yet: record the model before writing documents")
    for prepared in documents:
        check_doc_id(prepared.document.id)
        shape = np.shape(prepared.vectors)
        if shape != (len(prepared.passages), model.dimension):
            raise DocumentRefused(f"document {prepared.document.id!r} has vectors of shape {shape}, expected "
                                  f"({len(prepared.passages)}, {model.dimension})")


def check_doc_id(doc_id: str) -> None:
    """A stored document id: 1 to :data:`MAX_ID_CHARS` characters, no line break (a Milvus filter
    cannot name one)."""
    if not 1 <= len(doc_id) <= MAX_ID_CHARS:
        raise DocumentRefused(f"a document id must have 1 to {MAX_ID_CHARS} characters, not {len(doc_id)}")
    if "\n" in doc_id or "\r" in doc_id:
        raise DocumentRefused(f"a document id must not hold a line break: {doc_id[:200]!r}")


# -- documents and passages, both directions -------------------------------------------------
def layout(document: Document) -> dict[str, list]:
    """A document's page starts, page labels, ``[start, heading]`` sections, pages read by OCR and OCR
    lines (``[start, end, page, x0, y0, x1, y1]``) as JSON values."""
    return {"pages": list(document.pages), "page_labels": list(document.page_labels),
            "sections": [list(section) for section in document.sections], "ocr_pages": list(document.ocr_pages),
            "ocr_lines": [[line.start, line.end, line.page, *line.box] for line in document.ocr_lines]}


def stored_document(fields: Mapping[str, Any], layout_values: Mapping[str, Any]) -> Document:
    """The document of stored ``fields`` (id, title, source, text, lang, media_type) and its layout
    (as :func:`layout` gave it, read back from JSON; a layout stored before OCR has no OCR keys)."""
    return Document(fields["id"], fields["title"], fields["source"], fields["text"], Lang(fields["lang"]),
                    tuple(int(page) for page in layout_values["pages"]),
                    tuple(str(label) for label in layout_values["page_labels"]),
                    tuple((int(start), str(heading)) for start, heading in layout_values["sections"]),
                    fields["media_type"], tuple(int(page) for page in layout_values.get("ocr_pages", ())),
                    tuple(OcrLine(int(row[0]), int(row[1]), int(row[2]), tuple(float(value) for value in row[3:7]))
                          for row in layout_values.get("ocr_lines", ())))


def stored_passage(fields: Mapping[str, Any]) -> Passage:
    """The passage of stored ``fields``: Passage's field names; page, section and ocr ones may be absent."""
    return Passage(fields["doc_id"], int(fields["chunk_no"]), int(fields["start"]), int(fields["end"]),
                   fields["text"], Lang(fields["lang"]), bool(fields["mixed"]), fields["title"], fields["source"],
                   int(fields["id"]), fields.get("page"), fields.get("page_end"), fields.get("page_label"),
                   fields.get("section"), bool(fields.get("ocr") or False))


# -- counts ----------------------------------------------------------------------------------
def passage_counts(passages: Iterable[Passage]) -> dict[str, int]:
    """Passages counted as :meth:`Backend.stats` reports them: all, per language, mixed (zeros kept)."""
    counts = {"chunks": 0, **{f"chunks_{lang.value}": 0 for lang in Lang}, "chunks_mixed": 0}
    for passage in passages:
        counts["chunks"] += 1
        counts[f"chunks_{Lang(passage.lang).value}"] += 1
        counts["chunks_mixed"] += bool(passage.mixed)
    return counts


def stats_counts(documents: int, per_lang: Mapping[str, int], mixed: int) -> dict[str, int]:
    """The counts of :meth:`Backend.stats`: documents, passages, passages per language (languages
    without any left out) and mixed-language passages."""
    return {"documents": documents, "chunks": sum(per_lang.values()),
            **{f"chunks_{lang}": count for lang, count in sorted(per_lang.items()) if count},
            "chunks_mixed": mixed}


# -- phrases ---------------------------------------------------------------------------------
def phrase_words(phrase: str) -> list[str]:
    """The keyword tokens an English (ASCII) phrase must have side by side; none for other phrases."""
    return keyword_tokens(phrase) if phrase.isascii() else []


def is_substring_phrase(phrase: str) -> bool:
    """A phrase with Chinese, long enough to narrow as a substring of the passage's folded text."""
    return bool(HAN_RE.search(phrase)) and len(phrase) >= CHARS_MIN_PHRASE and not set(phrase) & LIKE_WILDCARDS


@lru_cache(maxsize=256)
def _side_by_side(words: tuple[str, ...]) -> re.Pattern:
    """Whole keyword tokens in order, with nothing but non-word characters between them."""
    body = r"[\W_]+".join(map(re.escape, words))
    return re.compile(rf"(?<![0-9a-z]){body}(?![0-9a-z])")


def holds_phrases(text: str, phrases: Iterable[str]) -> bool:
    """Whether a passage holds every phrase that narrows a keyword search (folded phrases, as
    ``KeywordQuery.phrases``): an English one as its keyword tokens side by side, one with Chinese
    of :data:`CHARS_MIN_PHRASE` characters or more as a substring; other phrases do not narrow."""
    folded = comparable(text)
    for phrase in phrases:
        if words := phrase_words(phrase):
            if not _side_by_side(tuple(words)).search(folded):
                return False
        elif is_substring_phrase(phrase) and phrase not in folded:
            return False
    return True
