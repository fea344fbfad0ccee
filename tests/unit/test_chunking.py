"""Sentence splitting and token-bounded chunking of mixed English/Chinese text."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes import FakeTokenizer
from search.chunking import Chunker
from search.text.sentences import split_sentences


@pytest.fixture(scope="module")
def tokenizer() -> FakeTokenizer:
    """Chunking needs token counts and offsets only, not the model's vocabulary."""
    return FakeTokenizer()


def sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in split_sentences(text)]


def test_decimals_currency_and_abbreviations_do_not_end_sentences():
    text = ("The market reached KRW8.77 trillion (around US$591.93 million). "
            "Dr. Zhang spoke in the U.S. market today. Growth was 3.2% in 2024! Really? Yes.")
    assert sentences(text) == [
        "The market reached KRW8.77 trillion (around US$591.93 million).",
        "Dr. Zhang spoke in the U.S. market today.",
        "Growth was 3.2% in 2024!",
        "Really?",
        "Yes.",
    ]


def test_chinese_terminals_and_paragraph_breaks():
    text = "韩国珠宝出口增长了31.4%。这是真的吗？是的！第一；第二……\n\nA new paragraph\n\n最后一句"
    assert sentences(text) == ["韩国珠宝出口增长了31.4%。", "这是真的吗？", "是的！", "第一；", "第二……",
                               "A new paragraph", "最后一句"]


def test_hard_line_break_inside_chinese_sentence_is_not_a_boundary():
    text = "另外，你也可以“领养”那些维护者发送过“Request for\nAdoption”(RFA)请求的软件包。下一句。"
    assert sentences(text) == ["另外，你也可以“领养”那些维护者发送过“Request for\nAdoption”(RFA)请求的软件包。", "下一句。"]


def test_command_lines_stay_apart():
    assert sentences("$ cd package\n$ debuild -us -uc") == ["$ cd package", "$ debuild -us -uc"]
    assert sentences("Run this\n    make all\nthen go.") == ["Run this", "make all", "then go."]


def test_hard_wrapped_english_sentence_is_one_sentence():
    text = "If the build result is satisfactory, sign the .dsc and\n.changes files with your\nprivate key. Then\nupload it."
    assert sentences(text) == ["If the build result is satisfactory, sign the .dsc and\n.changes files with your\nprivate key.",
                               "Then\nupload it."]


def test_list_items_stay_apart():
    assert sentences("You need:\n- a compiler\n* make\n• debhelper\n1. one\n2) two\n（一）三") == [
        "You need:", "- a compiler", "* make", "• debhelper", "1. one", "2) two", "（一）三"]


def test_heading_stays_apart_but_short_wrapped_lines_do_not():
    assert sentences("Building the package\nThe next step is to build it.") == [
        "Building the package", "The next step is to build it."]
    # a short line inside a paragraph, or one that ends in a comma, is a wrap
    assert sentences("First we run the tool, and\nThen we wait.") == ["First we run the tool, and\nThen we wait."]
    assert sentences("Some text here.\nmake the file, using\ndpkg-genchanges") == [
        "Some text here.", "make the file, using\ndpkg-genchanges"]


def test_closing_quotes_stay_with_their_sentence():
    assert sentences("他说：“走吧。”然后离开了。") == ["他说：“走吧。”", "然后离开了。"]


def test_chunks_respect_token_limit_and_overlap_one_sentence(tokenizer):
    text = " ".join(f"Sentence number {i} talks about jewellery exports and gold prices." for i in range(60))
    chunker = Chunker(tokenizer, max_tokens=64)
    chunks = chunker.chunk(text)
    assert len(chunks) > 3
    for previous, chunk in zip(chunks, chunks[1:]):
        assert chunk.start < previous.end, "consecutive chunks share one sentence"
    for chunk in chunks:
        assert chunker.count_tokens(chunk.text) <= 64


def test_sentence_longer_than_limit_is_split_at_token_boundaries(tokenizer):
    text = "这是一个没有标点的非常长的中文句子" * 40
    chunker = Chunker(tokenizer, max_tokens=32)
    chunks = chunker.chunk(text)
    assert len(chunks) > 5
    assert all(chunker.count_tokens(chunk.text) <= 32 for chunk in chunks)
    assert "".join(chunk.text for chunk in chunks) == text


def test_chunk_language_is_the_dominant_script_and_mixed_a_flag(tokenizer):
    chunker = Chunker(tokenizer, max_tokens=256)
    english, chinese = chunker.chunk("Gold prices rose sharply this year.")[0], chunker.chunk("今年金价大幅上涨。")[0]
    assert (english.lang, english.mixed, chinese.lang, chinese.mixed) == ("en", False, "zh", False)
    both = chunker.chunk("Gold prices rose sharply this year, and exports grew. 今年金价大幅上涨，出口增长。")[0]
    assert both.mixed and both.lang in ("en", "zh")


MIXED_ALPHABET = st.sampled_from(
    list("abcXYZ ") + list("珠宝黄金出口增长韩国") + list(".!?。！？；…,，“”\"'") + ["\n", "\n\n", " ", "8.77", "Dr.", "U.S."]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(MIXED_ALPHABET, max_size=300), limit=st.integers(min_value=8, max_value=40))
def test_offsets_point_at_exact_chunk_text(tokenizer, pieces, limit):
    text = "".join(pieces)
    chunker = Chunker(tokenizer, max_tokens=limit)
    chunks = chunker.chunk(text)
    covered = set()
    for number, chunk in enumerate(chunks):
        assert chunk.chunk_no == number
        assert text[chunk.start:chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip() and chunk.text
        assert chunker.count_tokens(chunk.text) <= limit
        covered.update(range(chunk.start, chunk.end))
    # every non-space character lands in some chunk
    assert all(i in covered for i, char in enumerate(text) if not char.isspace())
    for start, end in split_sentences(text):
        assert text[start:end].strip() == text[start:end]


# -- hostile input: splitting stays linear ------------------------------------------------------
ADVERSARIAL_RUNS = [".", "!", "?", "!?", "...\"", ".)", "。", "！？", "…", "；", "\n", "\n \n", " \t", "e.g.",
                    "U.S.", "Dr.", "Mr. ", "a.", "中\n", "x\n"]
HOSTILE_CHARS = 1_000_000  # quadratic splitting took 24 s at 32k characters, hours at this size


class _Budget(Exception):
    pass


def _split_within(text: str, seconds: int) -> list[tuple[int, int]]:
    """Split ``text``; a hang guard (SIGALRM interrupts the regex engine) turns hours into a failure."""
    import signal

    def stop(*_):
        raise _Budget(f"splitting {len(text)} characters ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        return split_sentences(text)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@settings(max_examples=len(ADVERSARIAL_RUNS) * 2, deadline=None)
@given(run=st.sampled_from(ADVERSARIAL_RUNS), tail=st.sampled_from(["x", "", " y", "中"]))
def test_splitting_is_linear_on_long_runs_of_terminators(run, tail):
    text = run * (HOSTILE_CHARS // len(run)) + tail
    spans = _split_within(text, 20)
    # the work is bounded by the output too: spans are ordered, disjoint and inside the text
    assert all(0 <= start < end <= len(text) for start, end in spans)
    assert all(end <= following for (_, end), (following, _) in zip(spans, spans[1:]))


def test_html_blank_line_folding_is_linear_on_long_space_runs():
    from search.loading import html_to_text

    title, text = html_to_text("<p>" + " \t" * 500_000 + "x</p>")
    assert text == "x"


def test_a_passages_title_is_its_documents_title_and_section():
    from search.chunking import passage_title
    from search.types import Lang, Passage

    def title_of(title: str, section: str | None) -> str:
        return passage_title(Passage("d", 0, 0, 1, "x", Lang.EN, title=title, section=section))

    assert title_of("Debian New Maintainers' Guide", "4.2 changelog") == "Debian New Maintainers' Guide › 4.2 changelog"
    assert title_of("Lead  times\n", "Lead times") == "Lead times"  # a section that says nothing more
    assert title_of("Gold", "Gold prices in 2024") == "Gold prices in 2024"  # a section that holds the title
    assert title_of("", "黄金") == "黄金" and title_of("报告", None) == "报告" and title_of("", None) == ""
