"""One contract for every storage backend (fake vectors, no model): writes, replace, delete, filters,
keyword search in Chinese and English, exact text round-trip, model mismatch, reopen, failed writes.

Add a backend by adding its name to ``BACKENDS`` and a branch to :func:`make_backend`.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fakes import FAKE_MODEL, FakeEmbedder, fake_vector, prepared
from search.backends.base import (Backend, BackendError, DocumentRefused, Fields, ModelMismatchError, PreparedDocument,
                                  origins_of, passages_of, sentences_of, vectors_of)
from search.backends.codec import MAX_ID_CHARS, holds_phrases
from search.backends.local import LocalBackend
from search.ranking.evidence import stored_evidence
from search.ranking.retriever import Retriever
from search.text.language import detect_language, fold, is_mixed, keyword_tokens, normalize
from search.types import Document, Filter, KeywordQuery, Lang, Mode, ModelInfo, OcrLine, Origin, Passage

BACKENDS = ["local", "milvus"]
EVERYTHING = Filter()


def make_backend(kind: str, tmp_path: Path, model_info: ModelInfo | None = FAKE_MODEL) -> Backend:
    """A backend of ``kind`` storing under ``tmp_path`` (the same path reopens the same data)."""
    if kind == "milvus":  # the real Milvus core (milvus-lite 2.5); `make test` installs the extra
        from search.backends.milvus import MilvusBackend

        backend = MilvusBackend(str(tmp_path / "milvus.db"))
    elif kind == "local":
        from search.backends.local import LocalBackend

        backend = LocalBackend(tmp_path / "local-index")
    else:
        raise ValueError(kind)
    if model_info is not None:
        backend.record_model(model_info)
    return backend


@pytest.fixture(params=BACKENDS)
def kind(request) -> str:
    return request.param


@pytest.fixture
def backend(kind, tmp_path):
    opened = make_backend(kind, tmp_path)
    yield opened
    opened.close()


def keywords(text: str) -> KeywordQuery:
    return KeywordQuery(tuple(keyword_tokens(text)), normalize(text))


def doc_of(backend: Backend, found: list[tuple[int, float]]) -> list[str]:
    passages = passages_of(backend, [passage_id for passage_id, _ in found])
    return [passages[passage_id].doc_id for passage_id, _ in found]


def top_docs(backend: Backend, text: str, where: Filter = EVERYTHING, k: int = 10) -> list[str]:
    return doc_of(backend, backend.dense_search(fake_vector(text), k, where))


def keyword_docs(backend: Backend, text: str, where: Filter = EVERYTHING, k: int = 10) -> list[str]:
    return doc_of(backend, backend.keyword_search(keywords(text), k, where))


def whole_document(doc_id: str, text: str, **fields) -> PreparedDocument:
    """One document, one passage per line (offsets into ``text``), with optional layout fields."""
    passages, start = [], 0
    for number, line in enumerate(text.split("\n")):
        if line:
            passages.append(Passage(doc_id, number, start, start + len(line), line, detect_language(line),
                                    is_mixed(line), doc_id, f"mem:{doc_id}", page=1, section="Intro"))
        start += len(line) + 1
    document = Document(doc_id, doc_id, f"mem:{doc_id}", text, detect_language(text), **fields)
    return PreparedDocument(document, tuple(passages), tuple(tuple(keyword_tokens(p.text)) for p in passages),
                            np.stack([fake_vector(p.text) for p in passages]))


def test_write_search_and_read_back(backend):
    backend.write([prepared("gold", ["Gold prices rose sharply.", "黄金价格大幅上涨。"]),
                   prepared("pearl", ["Pearls are white."])])
    assert backend.model() == FAKE_MODEL
    found = backend.dense_search(fake_vector("黄金价格大幅上涨。"), 3, EVERYTHING)
    assert found[0][1] == pytest.approx(1.0, abs=1e-5) and found[0][1] >= found[-1][1]
    passage = passages_of(backend, [found[0][0]])[found[0][0]]
    assert (passage.doc_id, passage.chunk_no, passage.text, passage.lang) == ("gold", 1, "黄金价格大幅上涨。", Lang.ZH)
    assert passage.id == found[0][0] and passage.title == "gold" and passage.source == "mem:gold"
    document = backend.document("gold")
    assert document.text[passage.start:passage.end] == passage.text
    vectors = vectors_of(backend, [found[0][0]])
    assert np.allclose(vectors[found[0][0]], fake_vector("黄金价格大幅上涨。"), atol=1e-6)
    assert backend.document_hash("gold") == document.sha256 and backend.document_hash("nope") is None
    assert backend.document("nope") is None and passages_of(backend, [123456789]) == {}
    all_ids = [passage_id for passage_id, _ in backend.dense_search(fake_vector("x"), 10, EVERYTHING)]
    assert origins_of(backend, [*all_ids, 123456789]) == {i: Origin(p.lang, p.doc_id)
                                                      for i, p in passages_of(backend, all_ids).items()}
    assert sorted(origin.lang for origin in origins_of(backend, all_ids).values()) == [Lang.EN, Lang.EN, Lang.ZH]
    assert [summary.id for summary in backend.documents()] == ["gold", "pearl"]
    assert [summary.id for summary in backend.documents(limit=1, offset=1)] == ["pearl"]
    assert backend.documents()[0].chunks == 2
    stats = backend.stats()
    assert (stats["documents"], stats["chunks"], stats["chunks_en"], stats["chunks_zh"]) == (2, 3, 2, 1)


def test_sentence_vectors_round_trip(backend):
    from fakes import sentence_vectors

    backend.write([prepared("with", ["One sentence. Another one here.", "Third."], with_sentences=True),
                   prepared("without", ["No vectors kept."])])
    ids = {passage.text: passage_id for passage_id, passage in
           passages_of(backend, [i for i, _ in backend.dense_search(fake_vector("x"), 10, EVERYTHING)]).items()}
    stored = sentences_of(backend, ids.values())
    assert set(stored) == {ids["One sentence. Another one here."], ids["Third."]}  # none kept: left out
    expected = sentence_vectors("One sentence. Another one here.")
    found = stored[ids["One sentence. Another one here."]]
    assert found.spans.tolist() == expected.spans.tolist() == [[0, 13], [14, 31]]
    np.testing.assert_array_equal(found.vectors, expected.vectors)
    assert stored_evidence(found, expected.vectors[1].astype(np.float32), 100) == [[114, 131]]  # document offsets
    assert backend.delete("with") and sentences_of(backend, ids.values()) == {}


def test_rows_read_the_fields_asked_for(backend):
    backend.write([prepared("with", ["One sentence. Another one here.", "Third."], with_sentences=True),
                   prepared("without", ["No vectors kept."])])
    ids = [passage_id for passage_id, _ in backend.dense_search(fake_vector("x"), 10, EVERYTHING)]
    origins = backend.rows(ids)
    assert len(origins) == 3 and all(row.passage is row.vector is row.sentences is None for row in origins.values())
    full = backend.rows([*ids, 123456789], Fields.PASSAGE | Fields.VECTOR | Fields.SENTENCES)
    assert set(full) == set(ids) and backend.rows([]) == {}
    for passage_id, row in full.items():
        assert row.passage.id == passage_id and row.origin == Origin(row.passage.lang, row.passage.doc_id)
        assert row.origin == origins[passage_id].origin
        np.testing.assert_allclose(row.vector, fake_vector(row.passage.text), atol=1e-6)
        assert (row.sentences is not None) == (row.passage.doc_id == "with")
    vectors_only = backend.rows(ids, Fields.VECTOR)
    assert all(row.passage is None and row.vector is not None for row in vectors_only.values())


def test_count_is_the_number_of_documents(backend):
    assert backend.count() == 0
    backend.write([prepared("a", ["Gold prices rose."]), prepared("b", ["Pearls are white."])])
    backend.write([prepared("a", ["Jade is green."])])
    assert backend.count() == 2 == backend.stats()["documents"]
    assert backend.delete("a") and backend.count() == 1


def test_the_write_rules_are_the_same_on_both_backends(kind, tmp_path):
    """A model first, ids a filter can name, one vector of the model's size per passage; a refused
    batch writes nothing."""
    backend = make_backend(kind, tmp_path, model_info=None)
    try:
        with pytest.raises(DocumentRefused, match="record the model"):
            backend.write([prepared("a", ["Gold."])])
        backend.record_model(FAKE_MODEL)
        good = prepared("a", ["Gold."])
        for bad, message in ((prepared("line\nbreak", ["Gold."]), "line break"),
                             (prepared("x" * (MAX_ID_CHARS + 1), ["Gold."]), f"1 to {MAX_ID_CHARS} characters"),
                             (replace(good, vectors=good.vectors[:, :8]), r"shape \(1, 8\), expected \(1, 16\)")):
            with pytest.raises(DocumentRefused, match=message):
                backend.write([prepared("fine", ["Fine."]), bad])
        assert backend.count() == 0 and backend.document("fine") is None
    finally:
        backend.close()


def test_replace_by_doc_id_and_delete(backend):
    backend.write([prepared("a", ["Gold prices rose.", "黄金价格上涨。"]), prepared("b", ["Pearls are white."])])
    old_ids = {passage_id for passage_id, _ in backend.dense_search(fake_vector("x"), 10, Filter(doc_ids=("a",)))}
    backend.write([prepared("a", ["Jade is green."])])
    assert backend.document("a").text == "Jade is green."
    assert passages_of(backend, old_ids) == {} and vectors_of(backend, old_ids) == {} and origins_of(backend, old_ids) == {}
    assert sorted(top_docs(backend, "x")) == ["a", "b"]
    assert keyword_docs(backend, "黄金") == []
    assert backend.stats()["chunks"] == 2
    assert backend.delete("a") is True and backend.delete("a") is False
    assert top_docs(backend, "Jade is green.") == ["b"] and backend.document("a") is None
    assert keyword_docs(backend, "jade") == []
    assert [summary.id for summary in backend.documents()] == ["b"]


def test_filters_by_language_and_documents(backend):
    backend.write([prepared("en1", ["Gold prices rose."]), prepared("zh1", ["黄金价格上涨。"]),
                   prepared('we"ird\\id 文档', ["Gold and silver.", "金银。"])])
    assert set(top_docs(backend, "gold", Filter(lang=Lang.ZH))) == {"zh1", 'we"ird\\id 文档'}
    assert set(top_docs(backend, "gold", Filter(lang=Lang.EN))) == {"en1", 'we"ird\\id 文档'}
    assert top_docs(backend, "gold", Filter(doc_ids=("zh1",))) == ["zh1"]
    assert top_docs(backend, "gold", Filter(lang=Lang.EN, doc_ids=('we"ird\\id 文档',))) == ['we"ird\\id 文档']
    assert top_docs(backend, "gold", Filter(doc_ids=("missing",))) == []
    assert keyword_docs(backend, "gold", Filter(doc_ids=("en1",))) == ["en1"]
    assert keyword_docs(backend, "gold", Filter(lang=Lang.ZH)) == []
    assert backend.delete('we"ird\\id 文档') is True


def test_keyword_search_chinese_words_and_english(backend):
    backend.write([
        prepared("shuibei", ["水贝珠宝的生产周期比全球平均快三倍。"]),
        prepared("baobei", ["宝贝在家里睡觉，宝宝很可爱。"]),  # 宝 alone, never the word 珠宝
        prepared("trad", ["珠寶設計師在深圳工作。"]),  # traditional script: normalised to 珠宝
        prepared("english", ["The Quick brown fox jumps over the lazy dog.", "Production lines in Shenzhen."]),
    ])
    found = backend.keyword_search(keywords("珠宝"), 10, EVERYTHING)
    assert set(doc_of(backend, found)) == {"shuibei", "trad"}  # a jieba word inside a sentence, both scripts
    assert all(score > 0 for _, score in found)
    assert keyword_docs(backend, "生产周期")[0] == "shuibei"
    assert keyword_docs(backend, "宝贝")[0] == "baobei"
    assert keyword_docs(backend, "FOX") == ["english"]
    assert keyword_docs(backend, "production shenzhen") == ["english"]
    assert keyword_docs(backend, "elephant") == [] and keyword_docs(backend, "。") == []


def test_exact_text_round_trip(backend):
    odd = "第一行：中文，全角ＡＢＣ與繁體。\n😀 emoji 𠀀 beyond the BMP\n\ttabs\r\nCRLF and a lone \r\n\n" + "x" * 5
    big = "".join(f"{n:05d} 水贝珠宝的生产周期比全球平均快多少？𝄞😀\n" for n in range(3_000))  # ~80k chars, >200 KB
    assert len(big.encode("utf-8")) > 65_535 * 3
    layout = {"pages": (0, 40), "page_labels": ("i", "ii"), "sections": ((0, "Intro"), (40, "第二章"))}
    backend.write([whole_document("odd", odd, **layout), whole_document("big", big)])
    stored = backend.document("odd")
    assert stored.text == odd and stored.sha256 == backend.document_hash("odd")
    assert (stored.pages, stored.page_labels, stored.sections) == ((0, 40), ("i", "ii"), ((0, "Intro"), (40, "第二章")))
    assert backend.document("big").text == big
    passage_id = backend.dense_search(fake_vector("00042 水贝珠宝的生产周期比全球平均快多少？𝄞😀"), 1, EVERYTHING)[0][0]
    passage = passages_of(backend, [passage_id])[passage_id]
    assert big[passage.start:passage.end] == passage.text and (passage.page, passage.section) == (1, "Intro")
    assert passage.page_end is None and passage.page_label is None


def test_ocr_marks_and_line_boxes_round_trip(backend):
    text = "Scanned page one.\n扫描的第二页。"
    lines = (OcrLine(0, 17, 1, (0.05, 0.1, 0.62, 0.13)), OcrLine(18, 25, 2, (0.05, 0.1, 0.4, 0.14)))
    scan = whole_document("scan", text, pages=(0, 18), ocr_pages=(1, 2), ocr_lines=lines)
    scan = replace(scan, passages=tuple(replace(passage, ocr=True) for passage in scan.passages))
    backend.write([scan, whole_document("typed", "Typed page.", pages=(0,))])
    stored = backend.document("scan")
    assert (stored.ocr_pages, stored.ocr_lines) == ((1, 2), lines)
    assert (backend.document("typed").ocr_pages, backend.document("typed").ocr_lines) == ((), ())
    found = dict(backend.dense_search(fake_vector("Scanned page one."), 3, EVERYTHING))
    marks = {passage.text: passage.ocr for passage in passages_of(backend, found).values()}
    assert marks["Scanned page one."] is True and marks["Typed page."] is False


def test_ten_mebibyte_document_round_trips(backend):
    unit = "水贝珠宝 jewellery 😀𠀀\n"  # 1-, 3- and 4-byte UTF-8 characters
    text = unit * (10 * 1024 * 1024 // len(unit.encode("utf-8")))
    first = text[:12]
    passage = Passage("huge", 0, 0, len(first), first, Lang.ZH, True, "huge", "mem:huge")
    document = Document("huge", "huge", "mem:huge", text, Lang.ZH)
    backend.write([PreparedDocument(document, (passage,), (tuple(keyword_tokens(first)),),
                                    fake_vector(first)[None, :])])
    assert backend.document("huge").text == text
    assert backend.documents()[0].chars == len(text)


def test_original_file_round_trip(backend):
    original = bytes(range(256)) * 300
    document = prepared("pdf", ["A page."], original=original)
    backend.write([document])
    assert backend.file("pdf") == original
    backend.write([prepared("pdf", ["A page."])])
    assert backend.file("pdf") is None


def test_model_mismatch_is_refused(kind, tmp_path):
    backend = make_backend(kind, tmp_path)
    try:
        backend.record_model(FAKE_MODEL)  # the same model again is fine
        with pytest.raises(ModelMismatchError, match="fake/hash-embedder"):
            backend.record_model(ModelInfo("other/model", FAKE_MODEL.dimension, "", ""))
        with pytest.raises(ModelMismatchError) as error:
            backend.record_model(ModelInfo(FAKE_MODEL.name, 8, "", ""))
        assert "\n" not in str(error.value) and backend.location in str(error.value)
    finally:
        backend.close()


def test_reopen_after_close_keeps_everything(kind, tmp_path):
    backend = make_backend(kind, tmp_path)
    backend.write([prepared("a", ["Gold prices rose.", "黄金价格上涨。"])])
    before = backend.dense_search(fake_vector("黄金价格上涨。"), 2, EVERYTHING)
    backend.close()
    reopened = make_backend(kind, tmp_path, model_info=None)
    try:
        assert reopened.model() == FAKE_MODEL
        after = reopened.dense_search(fake_vector("黄金价格上涨。"), 2, EVERYTHING)
        assert [i for i, _ in after] == [i for i, _ in before]
        assert [score for _, score in after] == pytest.approx([score for _, score in before], abs=1e-5)
        assert keyword_docs(reopened, "黄金") == ["a"]
        assert reopened.document("a").text == "Gold prices rose. 黄金价格上涨。"
        reopened.record_model(FAKE_MODEL)
        with pytest.raises(ModelMismatchError):
            reopened.record_model(ModelInfo("other/model", 8, "", ""))
    finally:
        reopened.close()


def inject_write_failure(backend: Backend, monkeypatch) -> None:
    """Make the backend's second storage write of the next batch fail (halfway through)."""
    calls = []
    if isinstance(backend, LocalBackend):
        import sqlite3

        real = backend.store.insert_document

        def failing(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise sqlite3.OperationalError("injected failure")
            return real(*args, **kwargs)

        monkeypatch.setattr(backend.store, "insert_document", failing)
        return
    client = backend._client
    real_insert = client.insert

    def failing_insert(*args, **kwargs):
        calls.append(args[0] if args else kwargs.get("collection_name"))
        if len(calls) == 2:
            raise RuntimeError("injected failure")
        return real_insert(*args, **kwargs)

    monkeypatch.setattr(client, "insert", failing_insert)


def test_failed_write_leaves_the_old_state(backend, monkeypatch):
    backend.write([prepared("a", ["Gold prices rose.", "黄金价格上涨。"])])
    before = (backend.document("a"), backend.dense_search(fake_vector("x"), 10, EVERYTHING), backend.stats())
    inject_write_failure(backend, monkeypatch)
    with pytest.raises(BackendError, match="injected failure"):
        backend.write([prepared("a", ["Jade is green."]), prepared("new", ["New document."])])
    assert (backend.document("a"), backend.dense_search(fake_vector("x"), 10, EVERYTHING), backend.stats()) == before
    assert backend.document("new") is None and keyword_docs(backend, "jade") == []
    monkeypatch.undo()
    backend.write([prepared("a", ["Jade is green."])])
    assert top_docs(backend, "x") == ["a"] and keyword_docs(backend, "jade") == ["a"]
    assert backend.document("a").text == "Jade is green." and backend.stats()["chunks"] == 1


def test_milvus_failed_clean_up_stays_invisible(tmp_path, monkeypatch):
    """The clean-up of a failed write fails too: the uncommitted rows stay in storage, never visible."""
    backend = make_backend("milvus", tmp_path)
    try:
        backend.write([prepared("a", ["Gold prices rose.", "黄金价格上涨。"])])
        before = (backend.document("a"), backend.dense_search(fake_vector("x"), 10, EVERYTHING), backend.stats())
        inject_write_failure(backend, monkeypatch)

        def failing_delete(*args, **kwargs):
            raise RuntimeError("injected delete failure")

        monkeypatch.setattr(backend._client, "delete", failing_delete)
        with pytest.raises(BackendError, match="injected failure"):
            backend.write([prepared("a", ["Jade is green."]), prepared("new", ["New document."])])
        assert (backend.document("a"), backend.dense_search(fake_vector("x"), 10, EVERYTHING), backend.stats()) == before
        assert keyword_docs(backend, "jade") == [] and keyword_docs(backend, "gold") == ["a"]
    finally:
        monkeypatch.undo()
        backend.close()


# -- quoted phrases narrow a keyword search, on both backends alike ----------------------------------
PHRASE_CORPUS = {"gp1": "The gold price rose sharply in May.", "gp2": "Gold, price and silver.",
                 "gp3": "The price of gold fell.", "gp4": "Gold prices rose.",
                 "zh1": "珠宝设计师在深圳工作。", "zh2": "珠宝的设计很好。", "zh3": "珠寶設計展覽在深圳。"}
PHRASE_QUERIES = [  # (question, phrase, passages holding it among those sharing a word with the question)
    ("gold price", "gold price", {"gp1", "gp2"}),  # the words side by side (punctuation between is no word)
    ("珠宝设计", "珠宝设计", {"zh1", "zh3"}),  # a substring of the folded text (traditional script too)
    ("珠宝", "珠宝", {"zh1", "zh2", "zh3"}),  # two characters: no narrowing, every passage with the word
]


def test_quoted_phrases_narrow_the_same_on_both_backends(tmp_path):
    """Both backends keep exactly the passages ``codec.holds_phrases`` says hold the phrase (the local
    one from its FTS5 and trigram indexes, Milvus from its hits' text), so the retriever, which
    checks each phrase itself, returns the same passages on both."""
    found: dict[str, list] = {}
    for kind in BACKENDS:
        backend = make_backend(kind, tmp_path / kind)
        try:
            backend.write([prepared(doc_id, [text]) for doc_id, text in PHRASE_CORPUS.items()])
            narrowed = [set(doc_of(backend, backend.keyword_search(replace(keywords(question), phrases=(fold(phrase),)),
                                                                   10, EVERYTHING)))
                        for question, phrase, _ in PHRASE_QUERIES]
            retriever = Retriever(backend, FakeEmbedder())
            hits = [[hit.passage.doc_id for hit in retriever.search(question, mode=mode).hits]
                    for question in ('"gold price" rose', '"珠宝设计" 深圳') for mode in (Mode.SPARSE, Mode.HYBRID)]
            found[kind] = [narrowed, hits]
        finally:
            backend.close()
    expected = [holders for *_, holders in PHRASE_QUERIES]
    assert expected == [{doc_id for doc_id, text in PHRASE_CORPUS.items() if holds_phrases(text, (fold(phrase),))
                         and set(keyword_tokens(text)) & set(keyword_tokens(question))}
                        for question, phrase, _ in PHRASE_QUERIES]
    assert all(found[kind][0] == expected for kind in BACKENDS)
    assert found["local"][1] == found["milvus"][1]  # the same ranked passages on both backends
    english, chinese = {"gp1", "gp2", "gp3", "gp4"}, {"zh1", "zh2", "zh3"}
    for ranked, holders, language in zip(found["local"][1], ({"gp1"}, {"gp1"}, {"zh1", "zh3"}, {"zh1", "zh3"}),
                                         (english, english, chinese, chinese)):
        own = [doc_id for doc_id in ranked if doc_id in language]
        assert set(own[:len(holders)]) == holders  # a phrase's holders come first in its own language


def test_a_phrase_holder_is_found_below_many_passages_with_its_words_apart(backend):
    """Milvus reads more hits until ``k`` hold the phrase (the local backend asks its index for them)."""
    backend.write([prepared(f"apart{n:02d}", [f"Gold and price, gold then price, item {n}."]) for n in range(40)]
                  + [prepared("holder", ["The long annual report of the jewellery trade names the gold price once."])])
    query = replace(keywords("gold price"), phrases=("gold price",))
    assert keyword_docs(backend, "gold price", k=1) != ["holder"]  # without the phrase it ranks low
    assert doc_of(backend, backend.keyword_search(query, 1, EVERYTHING)) == ["holder"]


# -- hostile document ids (issue 27.1, 27.2) ------------------------------------------------------
HOSTILE_IDS = ("z') OR ('1'='1", "it's", 'zz"', 'say "hi"', "back\\slash\\", "x); DROP TABLE documents; --",
               "semi;colon", "c--d")


def within(seconds: float, call):
    """``call()``, failing (instead of hanging the test run) when it takes longer than ``seconds``."""
    outcome: list = []
    worker = threading.Thread(target=lambda: outcome.append(call()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"{getattr(call, '__name__', call)} did not answer within {seconds} s"
    return outcome[0]


def listed(backend: Backend) -> list[str]:
    return within(20, lambda: [summary.id for summary in backend.documents(limit=100)])


def test_hostile_ids_are_only_data(kind, tmp_path):
    """Quotes, backslashes, brackets, comments and semicolons in ids: each document is written, found,
    fetched and deleted, and no other document is touched (Milvus Lite applies its deletes on reopen)."""
    backend = make_backend(kind, tmp_path)
    try:
        backend.write([prepared("gold", ["Gold prices rose."]), prepared("pearl", ["Pearls are white."])])
        for doc_id in HOSTILE_IDS:
            backend.write([prepared(doc_id, [f"Jade lot {doc_id}."])])
        backend.close()
        backend = make_backend(kind, tmp_path, model_info=None)
        assert listed(backend) == sorted(["gold", "pearl", *HOSTILE_IDS])
        assert within(20, backend.stats)["documents"] == len(HOSTILE_IDS) + 2
        for doc_id in HOSTILE_IDS:
            text = f"Jade lot {doc_id}."
            assert backend.document(doc_id).text == text and backend.document_hash(doc_id) is not None
            assert top_docs(backend, text, k=1) == [doc_id]
            assert top_docs(backend, text, Filter(doc_ids=(doc_id,))) == [doc_id]
            assert keyword_docs(backend, "jade", Filter(doc_ids=(doc_id,))) == [doc_id]
        for number, doc_id in enumerate(HOSTILE_IDS):
            assert backend.delete(doc_id) is True and backend.document(doc_id) is None
            assert listed(backend) == sorted(["gold", "pearl", *HOSTILE_IDS[number + 1:]])
        backend.close()
        backend = make_backend(kind, tmp_path, model_info=None)
        assert listed(backend) == ["gold", "pearl"] and backend.document("gold").text == "Gold prices rose."
        assert top_docs(backend, "Pearls are white.") == ["pearl", "gold"]
    finally:
        backend.close()


# -- Milvus only ----------------------------------------------------------------------------------

def test_milvus_lite_is_the_real_milvus_core():
    """milvus-lite 3.x is a pure-Python re-implementation; the tests above must run on the 2.5 C++ core."""
    pytest.importorskip("pymilvus")
    import milvus_lite

    from search.backends.milvus import lite_core_version

    assert lite_core_version().startswith("2.5.")
    core = Path(milvus_lite.__file__).parent / "lib" / "milvus"
    assert core.is_file() and os.access(core, os.X_OK)
    assert core.read_bytes()[:4] == b"\x7fELF"  # a native binary, not Python


def test_milvus_unreachable_uri_fails_fast_on_one_line():
    pytest.importorskip("pymilvus")
    from search.backends.milvus import MilvusBackend

    started = time.monotonic()
    with pytest.raises(BackendError) as error:
        MilvusBackend("http://127.0.0.1:1", connect_timeout=2)
    assert time.monotonic() - started < 10
    assert "http://127.0.0.1:1" in str(error.value) and "\n" not in str(error.value)


def test_milvus_lite_server_stops_on_close(tmp_path):
    pytest.importorskip("pymilvus")
    backend = make_backend("milvus", tmp_path)
    path = backend.location
    backend.close()
    time.sleep(0.5)
    running = subprocess.run(["pgrep", "-f", f"milvus_lite/lib/milvus {path}"], capture_output=True, text=True)
    assert running.stdout.strip() == ""


def test_milvus_primary_keys_hold_no_user_strings(tmp_path, monkeypatch):
    """27.1: Milvus Lite splices primary keys into SQL, so every key written or deleted is an int,
    a SHA-256 hex digest (documents) or built from digits (texts, journal rows)."""
    pytest.importorskip("pymilvus")
    backend = make_backend("milvus", tmp_path)
    client, keys = backend._client, []

    def recording(method):
        def call(collection, data=None, **kwargs):
            keys.extend(row.get("key", row.get("id")) for row in data or [])
            keys.extend(kwargs.get("ids") or [])
            return method(collection, data, **kwargs) if data is not None else method(collection, **kwargs)
        return call

    for name in ("insert", "upsert", "delete"):
        monkeypatch.setattr(client, name, recording(getattr(client, name)))
    try:
        for doc_id in HOSTILE_IDS:
            backend.write([prepared(doc_id, ["Jade is green."])])
            backend.write([prepared(doc_id, ["Jade is green again."])])
            assert backend.delete(doc_id)
    finally:
        monkeypatch.undo()
        backend.close()
    assert keys and all(isinstance(key, int) or re.fullmatch(r"[0-9a-f]{64}|pending:\d+:\d+|\d+(:\d+){3}", key)
                        for key in keys), keys


def legacy_layout(backend) -> None:
    """Moves a backend's documents to the first layout: ``bisearch_documents``, the id as primary key."""
    from search.backends.milvus import DUMMY, _document_fields

    fields = [name for name, _, _ in _document_fields()]
    client = backend._client
    rows = client.query(backend.names["documents"], filter='key != ""', output_fields=fields)
    backend._create("bisearch_documents", _document_fields())
    client.insert("bisearch_documents", [{**{field: row[field] for field in fields}, "_v": DUMMY} for row in rows])
    client.drop_collection(backend.names["documents"])


def test_milvus_first_layout_is_migrated_on_open(tmp_path, monkeypatch):
    """Documents keyed by their id (before issue 27) are copied on open; a copy cut short is redone."""
    pytest.importorskip("pymilvus")
    from pymilvus import MilvusClient

    backend = make_backend("milvus", tmp_path)
    backend.write([prepared("gold", ["Gold prices rose."]), prepared('zz"', ["Jade is green."])])
    legacy_layout(backend)
    backend.close()
    with monkeypatch.context() as patch:
        patch.setattr(MilvusClient, "drop_collection", lambda *args, **kwargs: 1 / 0)  # killed before the drop
        with pytest.raises(BackendError, match="division by zero"):
            make_backend("milvus", tmp_path, model_info=None)
    reopened = make_backend("milvus", tmp_path, model_info=None)
    try:
        assert "bisearch_documents" not in reopened._client.list_collections()
        assert listed(reopened) == ["gold", 'zz"'] and reopened.stats()["documents"] == 2
        assert reopened.document('zz"').text == "Jade is green."
        assert top_docs(reopened, "Jade is green.", k=1) == ['zz"']
        assert reopened.delete('zz"') and listed(reopened) == ["gold"]
    finally:
        reopened.close()


def test_milvus_first_layout_that_cannot_be_copied_is_refused(tmp_path):
    pytest.importorskip("pymilvus")
    backend = make_backend("milvus", tmp_path)
    backend.write([prepared("gold", ["Gold prices rose."]), prepared("jade", ["Jade is green."])])
    legacy_layout(backend)
    backend._client.delete(backend.names["texts"], filter='doc_id == "jade"')  # its row cannot be found
    backend.close()
    with pytest.raises(BackendError, match="ingest the documents again") as error:
        make_backend("milvus", tmp_path, model_info=None)
    assert "\n" not in str(error.value) and "1 of 2 documents" in str(error.value)
