"""Ranking logic without the model: fusion, the same-language keyword bonus and language interleaving,
run through the real retriever over a local backend filled with fake vectors."""

from __future__ import annotations

import numpy as np
import pytest

from fakes import FAKE_MODEL, FakeEmbedder, fake_vector, prepared
from search.ranking import evidence
from search.backends.local import LocalBackend
from search.ranking.fusion import interleave
from search.ranking.query import parse_query, script_of
from search.ranking.retriever import QueryError, Retriever
from search.types import Lang, Mode


@pytest.fixture
def backend(tmp_path):
    backend = LocalBackend(tmp_path)
    backend.record_model(FAKE_MODEL)
    backend.write([prepared("en", ["Shuibei jewellery lead times are 30% faster.", "Gold prices rose in 2024."]),
                   prepared("zh", ["水贝珠宝的生产周期快百分之三十。", "黄金价格在2024年上涨。", "价格稳定。"])])
    yield backend
    backend.close()


def test_interleave_alternates_languages_starting_with_the_lead():
    groups = {1: Lang.EN, 2: Lang.EN, 3: Lang.ZH, 4: Lang.EN, 5: Lang.ZH}
    assert interleave([1, 2, 3, 4, 5], groups, lead=Lang.ZH) == [3, 1, 5, 2, 4]
    assert interleave([1, 2], {1: Lang.EN, 2: Lang.EN}, lead=Lang.ZH) == [1, 2]


def test_hybrid_is_led_by_the_closest_passage_and_alternates(backend):
    query = "水贝的生产周期"
    retriever = Retriever(backend, FakeEmbedder({query: "Shuibei jewellery lead times are 30% faster."}))
    hits = retriever.search(query, k=4).hits
    assert hits[0].passage.text.startswith("Shuibei")  # meaning decides the lead, not the Chinese keywords
    assert [hit.passage.lang for hit in hits] == [Lang.EN, Lang.ZH, Lang.EN, Lang.ZH]


class BlendEmbedder(FakeEmbedder):
    """A query vector whose cosines with the named passages are in the ratio of their weights."""

    def __init__(self, weights: dict[str, float]):
        super().__init__()
        self.weights = weights

    def encode_query(self, text: str) -> np.ndarray:
        passages = np.stack([fake_vector(passage) for passage in self.weights])
        vector = np.linalg.lstsq(passages, np.array(list(self.weights.values())), rcond=None)[0]
        return (vector / np.linalg.norm(vector)).astype(np.float32)


def test_hybrid_shows_each_documents_best_passage_before_any_second_one(tmp_path):
    backend = LocalBackend(tmp_path)
    backend.record_model(FAKE_MODEL)
    backend.write([prepared("long", ["Gold rose in May.", "Gold rose in June.", "Gold rose in July."]),
                   prepared("short", ["Silver fell in May."])])
    retriever = Retriever(backend, BlendEmbedder({"Gold rose in May.": 0.6, "Gold rose in June.": 0.5,
                                                  "Gold rose in July.": 0.45, "Silver fell in May.": 0.4}))
    documents = {mode: [hit.passage.doc_id for hit in retriever.search("metals", k=4, mode=mode, lang="en").hits]
                 for mode in (Mode.DENSE, Mode.HYBRID)}
    assert documents[Mode.DENSE] == ["long", "long", "long", "short"]  # dense: cosine order, untouched
    assert documents[Mode.HYBRID] == ["long", "short", "long", "long"]
    hybrid = retriever.search("metals", k=4, lang="en").hits
    assert [hit.passage.text for hit in hybrid[2:]] == ["Gold rose in June.", "Gold rose in July."]  # order kept
    backend.close()


def test_keyword_bonus_only_for_the_query_language(backend):
    query = "黄金价格"
    retriever = Retriever(backend, FakeEmbedder({}))
    hits = {hit.passage.text: hit for hit in retriever.search(query, k=5).hits}
    chinese = hits["黄金价格在2024年上涨。"]
    assert chinese.keyword_score and chinese.score > chinese.dense_score  # same language: bonus
    for hit in hits.values():
        if hit.passage.lang == Lang.EN:
            assert hit.score == hit.dense_score  # no keyword evidence can push it either way


def test_modes_and_filters(backend):
    retriever = Retriever(backend, FakeEmbedder({}))
    sparse = retriever.search("gold prices", k=4, mode="sparse").hits
    assert sparse and sparse[0].passage.text == "Gold prices rose in 2024." and sparse[0].dense_score is None
    dense = retriever.search("gold prices", k=4, mode=Mode.DENSE).hits
    assert len(dense) == 4 and all(hit.keyword_score is None for hit in dense)
    only_zh = retriever.search("gold prices", k=4, lang="zh").hits
    assert {hit.passage.lang for hit in only_zh} == {Lang.ZH}
    with pytest.raises(QueryError, match="lang must be one of en, zh"):
        retriever.search("gold", lang="fr")


def _texts(hits, lang: Lang) -> list[str]:
    return [hit.passage.text for hit in hits if hit.passage.lang == lang]


def test_phrase_holders_come_first_and_exclusions_remove_in_their_own_language(backend):
    retriever = Retriever(backend, FakeEmbedder({}))
    phrase = retriever.search('"30% faster" lead times', k=10).hits
    assert _texts(phrase, Lang.EN)[0] == "Shuibei jewellery lead times are 30% faster."  # holder first ...
    assert len(_texts(phrase, Lang.EN)) == 2  # ... the other English passage follows by meaning
    assert len(_texts(phrase, Lang.ZH)) == 3  # a translation cannot hold the phrase: every Chinese passage ranks
    for query in ('"生产周期快" 珠宝', '"生产周期快" 价格'):  # a contiguous Chinese string, not jieba words
        chinese = retriever.search(query, k=10).hits
        assert _texts(chinese, Lang.ZH)[0] == "水贝珠宝的生产周期快百分之三十。" and len(_texts(chinese, Lang.EN)) == 2
    assert len(retriever.search('"周期的生产" 珠宝', k=10, lang="zh").hits) == 3  # nobody holds it: by meaning
    without_gold = retriever.search("prices 2024 -gold -黄金", k=10).hits
    assert without_gold and all("gold" not in hit.passage.text.lower() and "黄金" not in hit.passage.text
                                for hit in without_gold)
    traditional = retriever.search('"黃金價格" 稳定', k=10, lang="zh").hits  # the same normalisation as keyword search
    assert traditional[0].passage.text == "黄金价格在2024年上涨。"
    with pytest.raises(QueryError):
        retriever.search("-only -exclusions")


MARKED_QUESTIONS = [  # (marked, the same question without its marks)
    ('"30% faster" lead times', "30% faster lead times"),
    ('"生产周期快" 珠宝', "生产周期快 珠宝"),
    ("“生产周期”快多少？", "生产周期快多少？"),
    ('Why are "lead times" shorter?', "Why are lead times shorter?"),
    ('"no such phrase anywhere"', "no such phrase anywhere"),
    ("prices 2024 -gold", "prices 2024"),
    ("价格 -黄金", "价格"),
]


@pytest.mark.parametrize("mode", [Mode.HYBRID, Mode.DENSE])
@pytest.mark.parametrize("marked, plain", MARKED_QUESTIONS)
def test_marks_never_change_the_other_languages_hits(backend, marked, plain, mode):
    retriever = Retriever(backend, FakeEmbedder({}))
    parsed = parse_query(marked)
    constrained = {script_of(term) for term in parsed.phrases + parsed.excluded}
    for lang in set(Lang) - constrained:
        expected = retriever.search(plain, k=10, lang=lang, mode=mode).hits
        got = retriever.search(marked, k=10, lang=lang, mode=mode).hits
        assert expected and [(h.passage.id, h.score) for h in got] == [(h.passage.id, h.score) for h in expected]


def test_a_phrase_nobody_holds_or_an_exclusion_that_leaves_fewer_hits_says_so(backend):
    retriever = Retriever(backend, FakeEmbedder({}))
    english = retriever.search('"no such phrase anywhere" prices', k=10, lang="en")
    assert len(english.hits) == 2  # never an empty list to a question the index can answer
    assert english.notices == ['no English passage contains "no such phrase anywhere"']
    excluded = retriever.search("prices -gold -rose", k=10, lang="en")
    assert len(excluded.hits) == 1 and excluded.notices == ["fewer than 10 hits: the -exclusions left out 1 passages"]
    assert retriever.search("lead times", k=2).notices == []


def test_collapse_keeps_one_passage_per_document_and_folds_duplicates(tmp_path):
    from fakes import prepared

    backend = LocalBackend(tmp_path)
    backend.record_model(FAKE_MODEL)
    story = "Shuibei jewellery lead times are 30% faster."
    backend.write([prepared("html", [story, "Gold prices rose in 2024."]), prepared("pdf", [story]),
                   prepared("zh", ["水贝珠宝的生产周期快百分之三十。"])])
    retriever = Retriever(backend, FakeEmbedder({}))
    hits = retriever.search("jewellery", k=10, collapse=True).hits
    ids = [hit.passage.doc_id for hit in hits]
    assert len(ids) == len(set(ids)) and "zh" in ids  # translations are not folded
    kept = next(hit for hit in hits if hit.passage.text == story)
    assert {kept.passage.doc_id, *kept.also_in} == {"html", "pdf"}
    if kept.passage.doc_id == "html":
        assert kept.more_in_doc == 1
    assert [hit.rank for hit in hits] == list(range(1, len(hits) + 1))


def test_collapse_with_no_hits_is_empty(backend):
    retriever = Retriever(backend, FakeEmbedder({}))
    assert retriever.search("gold -gold -shuibei", k=5, collapse=True, lang="en").hits == []


class CountingEmbedder(FakeEmbedder):
    """Counts the model calls: queries encoded and sentences embedded at query time."""

    def __init__(self, meaning: dict[str, str]):
        super().__init__(meaning)
        self.queries, self.sentences = 0, 0

    def encode_query(self, text: str) -> np.ndarray:
        self.queries += 1
        return super().encode_query(text)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        self.sentences += len(texts)
        return super().encode_documents(texts)


ANSWER = "Lead times are 30% faster."
PASSAGE = "Shuibei is in Shenzhen. " + ANSWER + " Exports grew."


def evidence_backend(tmp_path, with_sentences: bool) -> LocalBackend:
    backend = LocalBackend(tmp_path)
    backend.record_model(FAKE_MODEL)
    backend.write([prepared("doc", [PASSAGE, "Gold is yellow."], with_sentences=with_sentences)])
    return backend


def quoted(backend, hit) -> list[str]:
    assert all(hit.passage.start <= start < end <= hit.passage.end for start, end in hit.evidence)
    return [backend.document(hit.passage.doc_id).text[start:end] for start, end in hit.evidence]


def test_every_hit_carries_evidence_from_stored_sentence_vectors(tmp_path):
    backend = evidence_backend(tmp_path, with_sentences=True)
    embedder = CountingEmbedder({"how fast": ANSWER})
    hits = Retriever(backend, embedder).search("how fast", k=2).hits
    assert quoted(backend, next(hit for hit in hits if ANSWER in hit.passage.text))[0] == ANSWER
    assert all(hit.evidence for hit in hits)
    assert (embedder.queries, embedder.sentences) == (1, 0)  # the query's own vector, no sentence embedded


def test_evidence_n_embeds_the_sentences_of_the_first_n_hits(tmp_path):
    backend = evidence_backend(tmp_path, with_sentences=True)
    embedder = CountingEmbedder({"how fast": ANSWER})
    hits = Retriever(backend, embedder).search("how fast", k=2, evidence=1).hits
    assert embedder.sentences == len(evidence.sentence_spans(hits[0].passage.text))  # the first hit's only
    assert quoted(backend, next(hit for hit in hits if ANSWER in hit.passage.text))[0] == ANSWER
    assert all(hit.evidence for hit in hits)
    with pytest.raises(QueryError, match="evidence"):
        Retriever(backend, embedder).search("how fast", evidence=99)


def test_passages_stored_without_sentence_vectors_fall_back_to_shared_words(tmp_path):
    """An index built before sentence vectors were kept: the sentence sharing the most query
    words, no model call; ``evidence=N`` embeds the first N hits' sentences instead."""
    backend = evidence_backend(tmp_path, with_sentences=False)
    embedder = CountingEmbedder({"how fast": ANSWER, "did exports grow": ANSWER})
    retriever = Retriever(backend, embedder)
    hit = next(hit for hit in retriever.search("did exports grow", k=2).hits if hit.passage.text == PASSAGE)
    assert quoted(backend, hit) == ["Exports grew."] and embedder.sentences == 0
    assert next(hit for hit in retriever.search("how fast", k=2).hits if hit.passage.text == PASSAGE).evidence == []
    hit = next(hit for hit in retriever.search("how fast", k=2, evidence=2).hits if hit.passage.text == PASSAGE)
    assert quoted(backend, hit)[0] == ANSWER and embedder.sentences == 3 + 1  # both hits' sentences


def test_sparse_mode_calls_the_model_only_when_evidence_is_asked(tmp_path):
    backend = evidence_backend(tmp_path, with_sentences=True)
    embedder = CountingEmbedder({"shenzhen exports": ANSWER})
    retriever = Retriever(backend, embedder)
    hit = retriever.search("shenzhen exports", k=1, mode="sparse").hits[0]
    assert quoted(backend, hit) == ["Shuibei is in Shenzhen.", "Exports grew."]  # shared words, ties kept
    assert (embedder.queries, embedder.sentences) == (0, 0)
    hit = retriever.search("shenzhen exports", k=1, mode="sparse", evidence=1).hits[0]
    assert quoted(backend, hit)[0] == ANSWER and embedder.queries == 1
