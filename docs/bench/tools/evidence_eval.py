"""evidence@1 / evidence@3 on tests/data/evidence.jsonl, with both baselines, and cost.

For each question the hit is the passage (as the chunker cuts the document) that holds
the answer; the answer lies in the hit's passage ~85% of the time, and this measures
the choice of sentence inside it.

Rows: the two baselines and the retriever's fallback without vectors ("shared words": content
words only, no sentence when none is shared); sentences encoded on their own ("sentence vectors"); and vectors
taken from the passage's own forward pass ("pooled": each sentence's token embeddings
averaged, then the model's Dense layers, as the model pools a whole passage; "stored" is
exactly what ingest keeps, 256-d float16; "no Dense" compares the averaged token embeddings
with the query's averaged token embeddings; "max-sim" scores a sentence by its best single
token, each token projected through the Dense layers).

    .venv/bin/python docs/bench/tools/evidence_eval.py
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np

from search.ranking import evidence
from search.ranking.evidence import stored_evidence
from search.chunking import Chunker
from search.model.embedder import Embedder
from search.model.engine import sentence_token_masks
from search.model.torch_engine import _projection_after_pooling
from search.service import load_embedder
from search.settings import Settings
from search.text.language import keyword_tokens, normalize

REPO = Path(__file__).resolve().parents[3]  # the repository (this file: docs/bench/tools/)
ROOTS = {"seeds": REPO, "maintguide": REPO.parent / "shared" / "bench"}


def forward(embedder: Embedder, text: str, prompt: str) -> dict:
    """The model's outputs for one text (token embeddings, attention mask, sentence embedding)."""
    return embedder.run(lambda: embedder.engine.model.encode([text], prompt=prompt, output_value=None,
                                                      convert_to_numpy=False, show_progress_bar=False))[0]


def project(embedder: Embedder, vectors):
    """Rows of token-embedding space through the model's layers after pooling (Dense, Dense)."""
    import torch

    features = {"sentence_embedding": vectors}
    with torch.inference_mode():
        for module in _projection_after_pooling(embedder.engine.model):
            features = module(features)
    return features["sentence_embedding"].float().cpu().numpy()


def pooled_methods(embedder: Embedder, text: str, start: int, question: str,
                   query: np.ndarray) -> dict[str, list[evidence.Span]]:
    """Evidence from the passage's own forward pass, every variant (see the module docstring)."""
    import torch

    passage = forward(embedder, text, embedder.info.document_prompt)
    tokens = passage["token_embeddings"][passage["attention_mask"].bool()]
    found = sentence_token_masks(embedder.engine.tokenizer, embedder.info.document_prompt, text,
                                 embedder.max_seq_length, len(tokens))
    spans = [(start + a, start + b) for (a, b), _ in found]
    hidden = torch.stack([tokens[torch.from_numpy(mask)].mean(dim=0) for _, mask in found])
    pooled = project(embedder, hidden)
    asked = forward(embedder, question, embedder.info.query_prompt)
    query_hidden = asked["token_embeddings"][asked["attention_mask"].bool()].mean(dim=0).float().cpu().numpy()
    projected_tokens = project(embedder, tokens)
    methods = {}
    for dim in (768, 256, 128):
        methods[f"pooled {dim}-d"] = evidence.evidence_spans(query, pooled, spans, dimension=dim)
    methods["pooled 256-d, top 3"] = evidence.evidence_spans(query, pooled, spans, margin=1.0, dimension=256)
    methods["pooled, no Dense (hidden 768-d)"] = evidence.evidence_spans(
        query_hidden, hidden.float().cpu().numpy(), spans)
    for dim in (768, 256):
        scores = evidence.truncate(projected_tokens, dim) @ evidence.truncate(query, dim)
        best = np.array([scores[mask].max() for _, mask in found])
        methods[f"max-sim tokens {dim}-d"] = evidence.ranked_spans(best, spans)
    stored = embedder.encode_passages([text])[1][0]
    methods["stored (ingest: pooled 256-d fp16)"] = stored_evidence(stored, query, start) if stored else []
    return methods


def main() -> None:
    rows = [json.loads(line) for line in (REPO / "tests" / "data" / "evidence.jsonl").read_text().splitlines() if line.strip()]
    embedder = load_embedder(Settings(runtime="torch"))  # the study reads torch's forward outputs
    chunker = Chunker(embedder.tokenizer)
    results: dict[str, dict[str, list[bool]]] = {}
    by_group: dict[str, list[int]] = {"same": [], "cross": []}
    encode_sentences_s = encode_passages_s = pooled_s = 0.0
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
            started = time.perf_counter()
            embedder.encode_passages([c.text for c in chunks])
            pooled_s += time.perf_counter() - started
            n_sentences += len(all_sentences)
            n_passages += len(chunks)
        query = embedder.encode_query(normalize(row["question"]))
        methods = {
            "first sentence": evidence.first_sentence(spans),
            "word overlap": evidence.overlap_ranked(keyword_tokens(row["question"]),
                                                    [keyword_tokens(s) for s in sentences], spans),
            "shared words (fallback; none if 0)": evidence.shared_words_evidence(keyword_tokens(row["question"]),
                                                                                 chunk.text, chunk.start),
        }
        for dim in (768, 256, 128):
            methods[f"sentence vectors {dim}-d"] = evidence.evidence_spans(query, vectors, spans, dimension=dim)
            methods[f"sentence vectors {dim}-d, top 3"] = evidence.evidence_spans(query, vectors, spans, margin=1.0,
                                                                                   dimension=dim)
        methods.update(pooled_methods(embedder, chunk.text, chunk.start, normalize(row["question"]), query))
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
    print(f"{'method':36} {'ev@1':>6} {'ev@3':>6} {'same@1':>7} {'cross@1':>8}")
    for name, flags in results.items():
        share = lambda f, idx=None: sum(f[i] for i in (idx or range(len(f)))) / len(idx or f)
        print(f"{name:36} {share(flags['@1']):6.3f} {share(flags['@3']):6.3f} "
              f"{share(flags['@1'], by_group['same']):7.3f} {share(flags['@1'], by_group['cross']):8.3f}")
    print(f"ingest cost on these {len(seen_docs)} documents: {n_passages} passages encoded in {encode_passages_s:.1f} s, "
          f"{n_sentences} sentences in {encode_sentences_s:.1f} s "
          f"(ingest with sentence vectors = {(encode_passages_s + encode_sentences_s) / encode_passages_s:.2f}x); "
          f"passages with pooled sentence vectors in {pooled_s:.1f} s ({pooled_s / encode_passages_s:.2f}x)")
    # query-time alternative: encode the sentences of the top hits per query
    sample = [json.loads(line) for line in (REPO / "tests" / "data" / "evidence.jsonl").read_text().splitlines()][:8]
    timings, q_timings = [], []
    for row in sample:
        text = (ROOTS[row["doc"].split("/")[0]] / f"{row['doc']}.txt").read_text(encoding="utf-8")
        chunks = chunker.chunk(text)[:3]
        sentences = [text[s:e] for c in chunks for s, e in evidence.sentence_spans(c.text, c.start)]
        started = time.perf_counter()
        question = normalize(row["question"])  # the bare model call: the query cache already holds it
        embedder.run(lambda: embedder.engine.encode_queries([question]))
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
