"""The questions a user asks of seeds/, in both languages and across them."""

from __future__ import annotations

import pytest

from search.ranking.retriever import QueryError


def texts(result) -> list[str]:
    return [hit.passage.text for hit in result.hits]


def test_english_question_finds_shuibei_lead_times(seed_retriever):
    result = seed_retriever.search("How much faster are jewelry production lead times in Shuibei?", k=3)
    assert result.query_lang == "en"
    assert "30% faster" in result.hits[0].passage.text
    assert result.hits[0].passage.doc_id == "000_be3e8d9fcddfd8b1"


def test_chinese_question_finds_korean_export_growth(seed_retriever):
    result = seed_retriever.search("韩国珠宝出口增长了多少？", k=3)
    assert result.query_lang == "zh"
    assert any("31.4 per cent" in text for text in texts(result))
    assert result.hits[0].passage.doc_id == "002_cfda2912b89432fe"


def test_chinese_question_finds_english_passage_across_languages(seed_retriever):
    result = seed_retriever.search("水贝珠宝的生产周期比全球平均快多少？", k=3)
    english = [hit for hit in result.hits if hit.passage.doc_id == "000_be3e8d9fcddfd8b1" and hit.passage.lang == "en"]
    assert english and "30% faster" in english[0].passage.text


def test_every_hit_carries_evidence_and_a_chinese_question_marks_the_english_sentence(seed_retriever):
    """Evidence by default, from the sentence vectors pooled at ingest: no parameter, no extra model call."""
    result = seed_retriever.search("水贝珠宝的生产周期比全球平均快多少？", k=5)
    assert result.hits and all(1 <= len(hit.evidence) <= 3 for hit in result.hits)
    assert all(hit.passage.start <= start < end <= hit.passage.end for hit in result.hits for start, end in hit.evidence)
    english = next(hit for hit in result.hits if hit.passage.lang == "en" and "30% faster" in hit.passage.text)
    start, end = english.evidence[0]
    assert "30% faster" in seed_retriever.backend.document(english.passage.doc_id).text[start:end]


def test_traditional_and_full_width_queries_work_like_simplified(seed_retriever):
    simplified = seed_retriever.search("韩国珠宝出口增长了多少?", k=3)
    traditional = seed_retriever.search("韓國珠寶出口增長了多少？", k=3)
    assert [h.passage.id for h in traditional.hits] == [h.passage.id for h in simplified.hits]


@pytest.mark.parametrize("word", ["黄金", "gold"])
def test_one_word_queries_return_passages(seed_retriever, word):
    result = seed_retriever.search(word, k=3)
    assert result.hits and any("gold" in text.lower() for text in texts(result))


def test_language_filter_and_document_filter(seed_retriever):
    only_en = seed_retriever.search("jewellery exports", k=10, lang="en")
    assert only_en.hits and all(hit.passage.lang == "en" for hit in only_en.hits)  # the label is the filter's value
    one_doc = seed_retriever.search("jewellery", k=10, doc_ids=["000_be3e8d9fcddfd8b1"])
    assert one_doc.hits and {hit.passage.doc_id for hit in one_doc.hits} == {"000_be3e8d9fcddfd8b1"}


def test_hits_carry_exact_citation_fields(seed_retriever):
    backend = seed_retriever.backend
    for hit in seed_retriever.search("cross-border e-commerce", k=5).hits:
        assert backend.document(hit.passage.doc_id).text[hit.passage.start:hit.passage.end] == hit.passage.text
        assert hit.passage.title and hit.passage.source and hit.rank >= 1


@pytest.mark.parametrize("kwargs", [{"query": "  "}, {"query": "x" * 5000}, {"query": "ok", "k": 0},
                                    {"query": "ok", "mode": "magic"}, {"query": "ok", "lang": "fr"}])
def test_bad_queries_raise_clear_errors(seed_retriever, kwargs):
    with pytest.raises(QueryError):
        seed_retriever.search(**kwargs)


def test_real_vectors_fold_a_boundary_shifted_duplicate_but_not_a_translation(embedder):
    from search.ranking.collapse import fold_duplicates
    from unit.test_precision import EN_HOWTO, HTML_FOOTNOTES, PDF_FOOTNOTES, ZH_HOWTO

    texts = [HTML_FOOTNOTES, EN_HOWTO, PDF_FOOTNOTES, ZH_HOWTO]
    kept = fold_duplicates(["html", "en", "pdf", "zh"], texts, embedder.encode_documents(texts))
    assert [(k.doc_id, k.also_in) for k in kept] == [("html", ["pdf"]), ("en", []), ("zh", [])]


# Questions as people write them: marks that Chinese writing uses as punctuation, ASCII quotes glued to
# Chinese, an exclusion. The English passages they find equal those of the same question without marks.
MARKED_QUESTIONS = [
    ("“水贝”珠宝的生产周期比全球平均快多少？", "水贝珠宝的生产周期比全球平均快多少？", "000_be3e8d9fcddfd8b1"),
    ('"水贝"珠宝的生产周期比全球平均快多少？', "水贝珠宝的生产周期比全球平均快多少？", "000_be3e8d9fcddfd8b1"),
    ("「韩国」珠宝出口增长了多少？", "韩国珠宝出口增长了多少？", "002_cfda2912b89432fe"),
    ('"韩国珠宝"出口增长了多少？ -黄金', "韩国珠宝出口增长了多少？", "002_cfda2912b89432fe"),
    ("『K-jewellery』是什么意思？", "K-jewellery是什么意思？", "002_cfda2912b89432fe"),
]


@pytest.mark.parametrize("marked, plain, doc_id", MARKED_QUESTIONS)
def test_marks_in_a_chinese_question_never_cost_its_english_passages(seed_retriever, marked, plain, doc_id):
    got = seed_retriever.search(marked, k=5, lang="en")
    expected = seed_retriever.search(plain, k=5, lang="en")
    assert [(h.passage.id, h.score) for h in got.hits] == [(h.passage.id, h.score) for h in expected.hits]
    assert got.hits[0].passage.doc_id == doc_id and not got.notices
    assert seed_retriever.search(marked, k=5).hits  # unfiltered too


def test_an_english_phrase_narrows_english_passages_and_says_when_none_hold_it(seed_retriever):
    result = seed_retriever.search('How much faster are "lead times" in Shuibei?', k=1)
    assert "30% faster" in result.hits[0].passage.text and not result.notices
    missing = seed_retriever.search('Why do I get "ld: cannot find -lfoo" messages?', k=3, lang="en")
    assert missing.hits and missing.notices == ['no English passage contains "ld: cannot find -lfoo"']
