"""The phrase benchmark measures what it says: real sentences, every phrase found by a full scan."""

from __future__ import annotations

from pathlib import Path

from bench_phrases import corpus_sentences, measure_phrases

SEEDS = Path(__file__).resolve().parents[2] / "seeds"


def test_phrase_benchmark_finds_every_phrase_on_a_small_corpus():
    sentences = corpus_sentences([SEEDS])
    assert len(sentences) > 20 and any("\u4e00" <= c <= "\u9fff" for c in "".join(sentences))
    row = measure_phrases(1500, [SEEDS], queries=12)
    assert row["passages"] == 1500 and row["queries"] == 12
    assert row["phrase_ms_p50"] > 0 and row["plain_ms_p50"] > 0
    assert 0.5 <= row["phrase_recall_at_10"] <= 1.0
