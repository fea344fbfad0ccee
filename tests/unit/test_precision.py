"""Pure precision functions: query syntax, collapse, fusion/balance, evidence (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from search.ranking import collapse, evidence, fusion
from search.ranking.query import ParsedQuery, QuerySyntaxError, parse_query, passage_matches
from search.types import Lang


def test_phrases_and_exclusions_are_parsed():
    parsed = parse_query('"30% Faster" Shuibei -gold -"lead time"')
    assert parsed == ParsedQuery("30% Faster Shuibei", ("30% faster",), ("gold", "lead time"))


@pytest.mark.parametrize("query", ["-gold", '-gold -"x"', '""', '“”'])
def test_malformed_queries_are_errors(query):
    with pytest.raises(QuerySyntaxError):
        parse_query(query)


@pytest.mark.parametrize("query, text, phrases, excluded", [
    # Chinese writing quotes terms as punctuation: “…”, 「…」, 『…』 are no operators there.
    ("“测试版”包含什么？", "测试版包含什么？", (), ()),
    ("「配置」文件在『哪里』", "配置文件在哪里", (), ()),
    ('"测试版"包含什么？', "测试版包含什么？", ("测试版",), ()),  # ASCII quotes are, even glued to Chinese
    ('请问"测试版"包含什么', "请问测试版包含什么", ("测试版",), ()),
    # An English question typed with curly quotes on a phone.
    ("The “Release” file", "The Release file", ("release",), ()),
    # -x inside a quoted message, inside a word, a long option or a number is no exclusion.
    ('Why do I get "ld: cannot find -lfoo" messages?', "Why do I get ld: cannot find -lfoo messages?",
     ("ld: cannot find -lfoo",), ()),
    ("x-ray --purge -1.5% apt-get -lfoo", "x-ray --purge -1.5% apt-get", (), ("lfoo",)),
    ("黄金 -价格", "黄金", (), ("价格",)),
    # A quote without a partner (inches, a typo) is punctuation, never an error.
    ('5" floppy disk', "5 floppy disk", (), ()),
    ('"unbalanced', "unbalanced", (), ()),
])
def test_questions_as_people_write_them(query, text, phrases, excluded):
    assert parse_query(query) == ParsedQuery(text, phrases, excluded)


def test_marks_are_deleted_in_place_so_the_ranking_text_equals_the_unmarked_question():
    for marked, plain in [('"测试版"包含什么？', "测试版包含什么？"), ("“测试版”包含什么？", "测试版包含什么？"),
                          ('Can I put it in a Debian "package" so it installs?', "Can I put it in a Debian package so it installs?")]:
        assert parse_query(marked).text == parse_query(plain).text == plain


def test_phrases_and_exclusions_constrain_only_passages_of_their_own_script():
    parsed = parse_query('"package" 软件 -测试')
    assert not passage_matches(parsed, "a program", Lang.EN)  # English passage: must hold "package"
    assert passage_matches(parsed, "软件包的格式", Lang.ZH)  # Chinese passage: "package" cannot apply
    assert not passage_matches(parsed, "测试版软件", Lang.ZH)  # Chinese exclusion, Chinese passage
    assert passage_matches(parsed, "the package", Lang.EN)
    assert not passage_matches(parsed, "软件包", None)  # lang=None: every constraint (phrase benchmarks)


def test_word_boundaries_are_unicode():
    assert not passage_matches(parse_query('"caf"'), "café au lait", Lang.EN)
    assert passage_matches(parse_query('"caf"'), "the caf is open", Lang.EN)
    assert passage_matches(parse_query("coffee -caf"), "café au lait", Lang.EN)


def test_phrase_matching_uses_keyword_normalisation():
    assert passage_matches(parse_query('"30% faster"'), "lead times are approximately 30％ FASTER than", None)
    assert not passage_matches(parse_query('"30% faster"'), "30% and faster", None)
    assert passage_matches(parse_query('"生产周期"'), "珠寶的生產週期比全球平均快", None)  # traditional passage
    assert not passage_matches(parse_query('"生产周期"'), "生产的周期", None)  # contiguous only
    assert not passage_matches(parse_query("jewelry -gold"), "Gold prices rose", None)
    assert passage_matches(parse_query("jewelry -gold"), "goldsmiths", None)  # whole words for Latin terms


def test_collapse_by_doc_keeps_best_with_count():
    kept = collapse.collapse_by_doc(["a", "b", "a", "c", "a"])
    assert [(k.index, k.doc_id, k.more_in_doc) for k in kept] == [(0, "a", 2), (1, "b", 0), (3, "c", 0)]


def test_duplicates_folded_but_translations_kept():
    text_en = "Its jewelry production lead times are approximately 30% faster than the global average."
    text_zh = "其珠宝生产周期比全球平均水平快约30%。"
    v = np.array([[1, 0], [0.999, 0.0447], [0.97, 0.243]], dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    kept = collapse.fold_duplicates(["html", "pdf", "zh"], [text_en, text_en.replace("jewelry", "jewellery"), text_zh], v)
    assert [(k.doc_id, k.also_in) for k in kept] == [("html", ["pdf"]), ("zh", [])]


def _pair(cosine: float) -> np.ndarray:
    return np.array([[1.0, 0.0], [cosine, (1 - cosine ** 2) ** 0.5]], dtype=np.float32)


# Real passages of the Debian New Maintainers' Guide (docs/bench/duplicates.txt): the HTML chapter's
# footnotes and the PDF page holding them, chunked with other boundaries (measured cosine .855,
# Jaccard .585, containment .964) ...
HTML_FOOTNOTES = (
    "[84] The dput package seems to come with more features and to be becoming more popular than the dupload "
    "package. It uses the file /etc/dput for its global configuration and the file ~/.dput.cf for per-user "
    "configuration. It supports Ubuntu-related services out-of-the-box, too.\n[86] See "
    "ftp://ftp.upload.debian.org/pub/UploadQueue/README. Alternatively, you can use the dcut command from the "
    "dput package.")
PDF_FOOTNOTES = (
    "You can set up an equivalent archive by yourself using the tools listed at "
    "http://wiki.debian.org/HowToSetupADebianRepository. So this section is useful for non-DDs, too.\n3The dput "
    "package seems to come with more features and to be becoming more popular than the dupload package. It uses "
    "the file /etc/dput for its global configuration and the file ~/.dput.cf for per-user configuration. It "
    "supports Ubuntu-related services out-of-the-box, too.\n⁴See Debian Developer’s Reference 5.6, ”Uploading a "
    "package” (http://www.debian.org/doc/manuals/developers-reference/pkgs.html#upload) .\n⁵See "
    "ftp://ftp.upload.debian.org/pub/UploadQueue/README. Alternatively, you can use the dcut command from the "
    "dput package.")
# ... and an English passage with its Chinese translation sharing the URL (cosine .86, containment .71).
EN_HOWTO = ("(I've added the line numbers.)\n\nPlease follow the HOWTO provided by the ftpmasters and sent to\n"
            "debian-devel-announce: http://lists.debian.org/debian-devel-announce/2006/03/msg00023.html.")
ZH_HOWTO = ("(注：我为它添加了行号。)\n\n另外还可以参看 ftpmasters 发送到 debian-devel-announce 的 HOWTO： announce: "
            "http://lists.debian.org/debian-devel-announce/2006/03/msg00023.html.")


def test_boundary_shifted_duplicate_is_folded():
    a, b = collapse.shingles(HTML_FOOTNOTES), collapse.shingles(PDF_FOOTNOTES)
    assert collapse.containment(a, b) > 0.9 and len(a & b) / len(a | b) < 0.8  # Jaccard missed it
    kept = collapse.fold_duplicates(["html/upload", "pdf/guide"], [HTML_FOOTNOTES, PDF_FOOTNOTES], _pair(0.855))
    assert [(k.doc_id, k.also_in) for k in kept] == [("html/upload", ["pdf/guide"])]


def test_translation_sharing_code_and_links_is_not_folded():
    assert collapse.containment(collapse.shingles(EN_HOWTO), collapse.shingles(ZH_HOWTO)) >= 0.7
    for order in ((EN_HOWTO, ZH_HOWTO), (ZH_HOWTO, EN_HOWTO)):
        kept = collapse.fold_duplicates(["en", "zh"], list(order), _pair(0.99))
        assert [k.also_in for k in kept] == [[], []]
    # Chinese duplicates fold like English ones; a republished copy (identical chunk) always does.
    kept = collapse.fold_duplicates(["zh/html", "zh/pdf"], [ZH_HOWTO, ZH_HOWTO.replace("\n\n", "\n")], _pair(0.97))
    assert [(k.doc_id, k.also_in) for k in kept] == [("zh/html", ["zh/pdf"])]


def test_short_passage_contained_in_an_unrelated_one_is_not_folded():
    short, long = "See the dput package.", PDF_FOOTNOTES
    assert collapse.containment(collapse.shingles(short), collapse.shingles(long)) >= 0.7
    kept = collapse.fold_duplicates(["a", "b"], [long, short], _pair(0.6))
    assert [k.also_in for k in kept] == [[], []]


def test_interleave_and_fusion_are_pure():
    groups = {1: "en", 2: "en", 3: "en", 4: "zh", 5: "zh"}
    assert fusion.interleave([1, 2, 3, 4, 5], groups, "en") == [1, 4, 2, 5, 3]
    fused = fusion.fuse({1: 0.5, 4: 0.5}, {1: 10.0, 4: 20.0}, groups, "en")
    assert fused[1] == 0.5 and fused[4] == 0.5  # bonus: own script only, min-max normalised (1 is the minimum)


def test_documents_first_puts_every_documents_best_passage_before_any_second():
    documents = {1: "a", 2: "a", 3: "b", 4: "a", 5: "c", 6: "b"}
    assert fusion.documents_first([1, 2, 3, 4, 5, 6], documents) == [1, 3, 5, 2, 4, 6]
    assert fusion.documents_first([], {}) == []


def test_evidence_spans_pick_the_closest_sentences():
    passage = "First sentence here. The answer is 30% faster. Unrelated tail."
    spans = evidence.sentence_spans(passage, start=100)
    assert spans[1] == (121, 146)
    vectors = np.eye(3, dtype=np.float32)
    query = np.array([0.1, 1.0, 0.0], dtype=np.float32)
    assert evidence.evidence_spans(query, vectors, spans) == [[121, 146]]
    assert len(evidence.evidence_spans(query, vectors, spans, margin=2.0)) == 3
    assert evidence.first_sentence(spans) == [[100, 120]]
    assert evidence.overlap_ranked(["answer"], [["first"], ["the", "answer"], ["tail"]], spans)[0] == [121, 146]


def test_shared_words_evidence_keeps_the_best_sentences_and_abstains_without_any():
    passage = "Gold prices rose. 黄金价格上涨。 Exports of gold grew, prices too."
    quote = lambda spans: [passage[a - 10:b - 10] for a, b in spans]  # noqa: E731 (offsets start at 10)
    assert quote(evidence.shared_words_evidence(["how", "did", "gold", "exports", "grow"], passage, 10)) == [
        "Exports of gold grew, prices too."]  # stop words ("how", "did") do not count
    assert quote(evidence.shared_words_evidence(["gold", "prices"], passage, 10)) == [
        "Gold prices rose.", "Exports of gold grew, prices too."]  # ties kept, in passage order
    assert quote(evidence.shared_words_evidence(["黄金"], passage, 10)) == ["黄金价格上涨。"]
    assert evidence.shared_words_evidence(["silver"], passage, 10) == []
