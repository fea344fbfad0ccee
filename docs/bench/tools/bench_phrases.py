"""Cost and recall of exact phrases and -exclusions as the corpus grows (no model).

A local index of ``count`` passages is bulk-loaded from real EN/ZH sentences (the benchmark
documents' sentences, drawn five at a time, so every passage is distinct text with real words
and real BM25 statistics) and random unit vectors: the model plays no part in what is measured
(the filter reads the candidates' texts after dense and keyword search). Queries are phrases
cut from random passages: two or three English words, or four Chinese characters.

Per query kind, the median ``Retriever.search`` time (plain words, the same words as a
``"phrase"``, and with a ``-word`` exclusion), and phrase recall@10: of the passages that hold
the phrase (found by scanning every text), the share the top 10 returns (up to 10), overall and
for English and Chinese phrases.
"""

from __future__ import annotations

import hashlib
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from search.backends.base import PreparedDocument
from search.backends.local import LocalBackend
from search.backends.local.vectors import IndexSettings
from search.text.sentences import split_sentences
from search.text.language import HAN_RE, detect_language, is_mixed, keyword_tokens
from search.ranking.query import parse_query, passage_matches
from search.text.language import fold
from search.ranking.retriever import Retriever
from search.types import Document, Lang, ModelInfo, Passage

DIMENSION = 128
SENTENCES_PER_PASSAGE = 5
PASSAGES_PER_DOCUMENT = 1000


class RandomQueryVectors:
    """Stands in for the model when only the text filter is timed: one fixed random unit vector per text."""

    info = ModelInfo("random", DIMENSION, "", "")

    def encode_query(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        vector = np.random.default_rng(seed).standard_normal(DIMENSION).astype(np.float32)
        return vector / np.linalg.norm(vector)


def corpus_sentences(folders: list[Path]) -> list[str]:
    """Every sentence of the ``*.txt`` files under ``folders`` (12 characters or more), whitespace runs as one space."""
    sentences = []
    for path in sorted(file for folder in folders for file in folder.rglob("*.txt")):
        text = path.read_text(encoding="utf-8")
        sentences += [" ".join(text[a:b].split()) for a, b in split_sentences(text) if b - a >= 12]
    return sentences


def synthetic_document(doc_id: str, sentences: list[str], rng: np.random.Generator, count: int) -> PreparedDocument:
    """``count`` passages of sentences drawn at random, with random unit vectors."""
    texts = [" ".join(sentences[i] for i in rng.integers(0, len(sentences), SENTENCES_PER_PASSAGE))
             for _ in range(count)]
    starts = np.cumsum([0] + [len(text) + 1 for text in texts[:-1]])
    passages = tuple(Passage(doc_id, number, int(start), int(start) + len(text), text, detect_language(text),
                             is_mixed(text), doc_id, "bench")
                     for number, (start, text) in enumerate(zip(starts, texts)))
    vectors = rng.standard_normal((count, DIMENSION)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return PreparedDocument(Document(doc_id, doc_id, "bench", "\n".join(texts)), passages,
                            tuple(tuple(keyword_tokens(text)) for text in texts), vectors)


def build(folder: Path, sentences: list[str], count: int, seed: int = 0) -> LocalBackend:
    """A local index of ``count`` synthetic passages (exact FAISS, one base snapshot)."""
    rng = np.random.default_rng(seed)
    backend = LocalBackend(folder, IndexSettings(kind="flat"))
    backend.record_model(RandomQueryVectors.info)
    for start in tqdm(range(0, count, PASSAGES_PER_DOCUMENT), desc=f"load {count:,}", unit="doc"):
        document = synthetic_document(f"doc-{start}", sentences, rng, min(PASSAGES_PER_DOCUMENT, count - start))
        with backend.store.transaction():
            backend.store.insert_document(document)
    backend.merge()
    return backend


def phrase_from(text: str, rng: random.Random) -> str | None:
    """Two or three consecutive English words, or four consecutive Chinese characters, of ``text``."""
    if detect_language(text) == Lang.ZH:
        runs = [run for run in "".join(c if HAN_RE.match(c) else " " for c in text).split() if len(run) >= 4]
        if not runs:
            return None
        run = rng.choice(runs)
        start = rng.randrange(len(run) - 3)
        return run[start:start + 4]
    words = text.split()
    size = rng.choice((2, 3))
    starts = [start for start in range(len(words) - size + 1)
              if all(word.isascii() and word.isalpha() for word in words[start:start + size])]
    return " ".join(words[(start := rng.choice(starts)):start + size]) if starts else None


def measure_phrases(count: int, folders: list[Path], queries: int = 100, seed: int = 0) -> dict[str, object]:
    """Median search times and phrase recall@10 over ``count`` passages made of the sentences in ``folders``."""
    sentences = corpus_sentences(folders)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="bisearch-phrases-") as scratch:
        backend = build(Path(scratch), sentences, count, seed)
        retriever = Retriever(backend, RandomQueryVectors())
        texts = dict(backend.store.db.execute("SELECT id, text FROM chunks").fetchall())
        ids = list(texts)
        folded = [fold(text) for text in texts.values()]
        times: dict[str, list[float]] = {"plain": [], "phrase": [], "phrase_excluding": []}
        recalls: dict[str, list[float]] = {"en": [], "zh": []}  # by the phrase's script
        while sum(map(len, recalls.values())) < queries:
            phrase = phrase_from(texts[rng.choice(ids)], rng)
            if not phrase:
                continue
            other = phrase_from(texts[rng.choice(ids)], rng) or "debian"
            exclusion = f"-{other.split()[0]}"
            for kind, query in (("plain", phrase), ("phrase", f'"{phrase}"'),
                                ("phrase_excluding", f'"{phrase}" {exclusion}')):
                started = time.perf_counter()
                hits = retriever.search(query, k=10).hits
                times[kind].append(time.perf_counter() - started)
                if kind == "phrase":
                    parsed = parse_query(query)
                    holding = sum(1 for text in folded if passage_matches(parsed, text, None, folded=True))
                    recalls["en" if phrase.isascii() else "zh"].append(len(hits) / min(10, holding))
        backend.close()
    return {"passages": count, "queries": queries,
            **{f"{kind}_ms_p50": round(statistics.median(values) * 1000, 1) for kind, values in times.items()},
            **{f"{kind}_ms_p99": round(float(np.percentile(values, 99)) * 1000, 1) for kind, values in times.items()},
            "phrase_recall_at_10": round(statistics.mean(recalls["en"] + recalls["zh"]), 3),
            **{f"phrase_recall_at_10_{script}": round(statistics.mean(values), 3) if values else None
               for script, values in recalls.items()},
            "phrases_en_zh": [len(recalls["en"]), len(recalls["zh"])]}


def measure_phrase_sizes(sizes: list[int], bench_dirs: list[Path]) -> dict[str, object]:
    """The phrase table at each corpus size, from the benchmark folders' documents."""
    return {"rows": [measure_phrases(size, [directory / "docs" for directory in bench_dirs]) for size in sizes]}
