"""Query-term highlighting: spans index the original text whatever its script or width."""

from hypothesis import given, strategies as st

from search.text.language import highlight_spans, highlight_terms, keyword_tokens, normalize


def marked(text: str, query: str) -> list[str]:
    return [text[start:end] for start, end in highlight_spans(text, highlight_terms(keyword_tokens(query)))]


def test_english_words_match_whole_words_in_any_case():
    text = "Gold prices rose; golden jewellery and GOLD bars sold."
    assert marked(text, "gold") == ["Gold", "GOLD"]


def test_chinese_query_words_found_in_traditional_and_full_width_text():
    text = "韓國珠寶出口增長了３１．４％，黃金飾品最多。"
    assert marked(text, "韩国珠宝出口增长了多少？") == ["韓國珠寶出口增長"]
    assert marked(text, "31.4%") == ["３１．４％"]


def test_stop_words_are_not_highlighted():
    assert marked("What is the price of silver?", "what is the price") == ["price"]


def test_numbers_match_as_whole_tokens():
    assert marked("Exports grew 31.4% while 131.45 was the index.", "31.4") == ["31.4"]


@given(st.text(alphabet=st.sampled_from(["a", "b", "e", "\u0301", "é", " ", "黄", "金", "價", "Ａ", "Ｂ", "㎏", "ﬁ", "İ"]),
               max_size=60),
       st.sampled_from(["黄金", "ab", "价", "kg", "fi", "é"]))
def test_spans_always_lie_inside_the_original_text_and_cover_the_term(text, query):
    spans = highlight_spans(text, highlight_terms(keyword_tokens(query)))
    assert all(0 <= start < end <= len(text) for start, end in spans)
    assert all(query in normalize(text[start:end]).lower() for start, end in spans)
    assert spans == sorted(spans) and all(a[1] < b[0] for a, b in zip(spans, spans[1:]))


def test_single_chinese_characters_are_not_highlighted_unless_they_are_the_query():
    text = "新版本可以安装软件包，新的功能也可用。"
    assert marked(text, "可以安装新的软件包吗？") == ["安装软件包"]  # adjacent words merge; no 新, 的 speckles
    assert marked(text, "新") == ["新", "新"]
    assert "新" in keyword_tokens("可以安装新的软件包吗？")  # BM25 keeps every token
