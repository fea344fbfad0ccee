"""evidence@1 / evidence@3 on tests/data/evidence.jsonl, with both baselines, and cost.

For each question the hit is the passage (as the chunker cuts the document) that holds
the answer; the answer lies in the hit's passage ~85% of the time, and this measures
the choice of sentence inside it.

    .venv/bin/python -m search.evidence_eval
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from search import evidence
from search.chunking import Chunker
from search.engine import load_embedder
from search.settings import Settings
from search.language import keyword_tokens, normalize

REPO = Path(__file__).resolve().parent.parent
ROOTS = {"seeds": REPO, "maintguide": REPO.parent / "shared" / "bench"}


def main() -> None:
    rows = [json.loads(line) for line in (REPO / "tests" / "data" / "evidence.jsonl").read_text().splitlines() if line.strip()]
    embedder = load_embedder(Settings())
    chunker = Chunker(embedder.tokenizer)
    results: dict[str, dict[str, list[bool]]] = {}
    by_group: dict[str, list[int]] = {"same": [], "cross": []}
    encode_sentences_s = encode_passages_s = 0.0
    n_sentences = n_passages = 0
    seen_docs = set()
    for number, row in enumerate(rows):
        text = (ROOTS[row["doc"].split("/")[0]] / f"{row['doc']}.txt").read_text(encoding="utf-8")
        chunks = chunker.chunk(text)
        a_start = text.index(row["answer"])
        a_end = a_start + len(row["answer"])
        chunk = next(c for c in chunks if c.start <= a_start and a_end <= c.end)
        spans = evidence.sentence_spans(chunk.text, chunk.start)
        sentences = [text[s:e] for s, e in spans]
        started = time.perf_counter()
        vectors = embedder.encode_documents(sentences)
        if row["doc"] not in seen_docs:  # ingest cost: every sentence vs every passage of the document
            seen_docs.add(row["doc"])
            started = time.perf_counter()
            all_sentences = [text[s:e] for c in chunks for s, e in evidence.sentence_spans(c.text, c.start)]
            embedder.encode_documents(all_sentences)
            encode_sentences_s += time.perf_counter() - started
            started = time.perf_counter()
            embedder.encode_documents([c.text for c in chunks])
            encode_passages_s += time.perf_counter() - started
            n_sentences += len(all_sentences)
            n_passages += len(chunks)
        query = embedder.encode_query(normalize(row["question"]))
        methods = {
            "first sentence": evidence.first_sentence(spans),
            "word overlap": evidence.overlap_ranked(keyword_tokens(row["question"]),
                                                    [keyword_tokens(s) for s in sentences], spans),
        }
        for dim in (768, 256, 128):
            methods[f"sentence vectors {dim}-d"] = evidence.evidence_spans(query, vectors, spans, dimension=dim)
            methods[f"sentence vectors {dim}-d, top 3"] = evidence.evidence_spans(query, vectors, spans, margin=1.0,
                                                                                   dimension=dim)
        group = "cross" if row["question_lang"] != row["answer_lang"] else "same"
        by_group[group].append(number)
        for name, found in methods.items():
            flags = results.setdefault(name, {"@1": [], "@3": []})
            flags["@1"].append(bool(found) and evidence.contains(found[0], a_start, a_end))
            flags["@3"].append(any(evidence.contains(span, a_start, a_end) for span in found[:3]))
        results.setdefault("_sentences_per_passage", {"n": []})["n"].append(len(spans))
    sizes = results.pop("_sentences_per_passage")["n"]
    print(f"{len(rows)} questions ({len(by_group['cross'])} cross-language), "
          f"{statistics.mean(sizes):.1f} sentences per answering passage")
    print(f"{'method':34} {'ev@1':>6} {'ev@3':>6} {'same@1':>7} {'cross@1':>8}")
    for name, flags in results.items():
        share = lambda f, idx=None: sum(f[i] for i in (idx or range(len(f)))) / len(idx or f)
        print(f"{name:34} {share(flags['@1']):6.3f} {share(flags['@3']):6.3f} "
              f"{share(flags['@1'], by_group['same']):7.3f} {share(flags['@1'], by_group['cross']):8.3f}")
    print(f"ingest cost on these {len(seen_docs)} documents: {n_passages} passages encoded in {encode_passages_s:.1f} s, "
          f"{n_sentences} sentences in {encode_sentences_s:.1f} s "
          f"(ingest with sentence vectors = {(encode_passages_s + encode_sentences_s) / encode_passages_s:.2f}x)")
    # query-time alternative: encode the sentences of the top hits per query
    sample = [json.loads(line) for line in (REPO / "tests" / "data" / "evidence.jsonl").read_text().splitlines()][:8]
    timings, q_timings = [], []
    for row in sample:
        text = (ROOTS[row["doc"].split("/")[0]] / f"{row['doc']}.txt").read_text(encoding="utf-8")
        chunks = chunker.chunk(text)[:3]
        sentences = [text[s:e] for c in chunks for s, e in evidence.sentence_spans(c.text, c.start)]
        started = time.perf_counter()
        embedder.encode_query(normalize(row["question"]))
        q_timings.append(time.perf_counter() - started)
        started = time.perf_counter()
        embedder.encode_documents(sentences)
        timings.append(time.perf_counter() - started)
    print(f"query-time alternative: encode the sentences of 3 passages: p50 {statistics.median(timings) * 1000:.0f} ms "
          f"vs query encode p50 {statistics.median(q_timings) * 1000:.0f} ms")
    # scoring cost with stored vectors: 10 hits x ~10 sentences, 256-d
    vectors = np.random.default_rng(0).standard_normal((100, 768)).astype(np.float32)
    q = vectors[0]
    started = time.perf_counter()
    for _ in range(1000):
        evidence.evidence_spans(q, vectors, [(i, i + 1) for i in range(100)], dimension=256)
    print(f"scoring 100 stored sentence vectors (256-d) per query: {(time.perf_counter() - started):.3f} ms")


if __name__ == "__main__":
    main()
