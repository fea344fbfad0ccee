"""Dump what fusion needs for a benchmark index, so fusion variants are scored offline.

For every chunk: id, doc_id, script, vector. For every query: its vector, language,
and the BM25 candidate pools (unfiltered and filtered to the other script), exactly
as ``Retriever._candidates`` asks for them (pool 100).

    flock /tmp/bisearch-cpu.lock .venv/bin/python tools/fusion_dump.py BENCH_DIR INDEX_DIR OUT.npz
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from search.engine import open_retriever
from search.evaluation import load_queries
from search.language import detect_language, keyword_tokens, normalize

POOL = 100


def main(bench: str, index: str, out: str) -> None:
    retriever = open_retriever(Path(index))
    store = retriever.index.store
    ids, vectors = [], []
    for batch_ids, batch in store.iter_vectors():
        ids.append(batch_ids)
        vectors.append(batch)
    ids = np.concatenate(ids)
    meta = store.chunks_by_id(ids.tolist())
    queries = []
    for query in load_queries(Path(bench)):
        tokens = keyword_tokens(query.text)
        other = "zh" if query.lang == "en" else "en"
        queries.append({
            "qid": query.qid, "lang": query.lang, "target": query.target,
            "query_lang": detect_language(query.text),
            "vector": retriever.embedder.encode_query(normalize(query.text)).tolist(),
            "keyword": store.keyword_search(tokens, POOL),
            "keyword_other": store.keyword_search(tokens, POOL, other),
        })
    np.savez_compressed(out, ids=ids, vectors=np.concatenate(vectors),
                        doc_ids=np.array([meta[i].doc_id for i in ids.tolist()]),
                        scripts=np.array([meta[i].script for i in ids.tolist()]),
                        queries=np.array(json.dumps(queries)))


if __name__ == "__main__":
    main(*sys.argv[1:4])
