"""The bare per-page reference of the PDF page benchmark: each page's raw pypdfium2 text embedded
whole (up to the model's 2,048 tokens) with the product's model, pages ranked by cosine.

    .venv/bin/python docs/bench/tools/pages_bare.py OUT     # OUT: built by python -m search.eval.pages build
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from search.eval.pages import CUTOFFS, DOC_NAME, LANGS, PageQuery, load_page_queries, score_rankings

#: Model tokens of a whole page (EmbeddingGemma's context).
PAGE_TOKENS = 2048


def raw_pages(path: Path) -> list[str]:
    """Each page's raw pypdfium2 text (no cleaning), for the bare reference."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    try:
        texts = []
        for index in range(len(pdf)):
            page = pdf[index]
            textpage = page.get_textpage()
            texts.append(textpage.get_text_range().replace("\r\n", "\n"))
            textpage.close()
            page.close()
        return texts
    finally:
        pdf.close()


def bare_reference(bench_dir: Path, embedder=None) -> dict[str, object]:
    """Hit@k of whole raw pages ranked by cosine to the query (the product's model, no chunking)."""
    if embedder is None:
        from search.service import load_embedder
        from search.settings import Settings

        embedder = load_embedder(Settings().with_overrides(chunk_tokens=PAGE_TOKENS))
    queries = load_page_queries(bench_dir)
    keys: list[tuple[str, int]] = []
    texts: list[str] = []
    for lang in LANGS:
        for number, text in enumerate(raw_pages(bench_dir / "docs" / lang / f"{DOC_NAME}.pdf"), start=1):
            keys.append((f"{lang}/{DOC_NAME}", number))
            texts.append(text.strip() or " ")
    started = time.perf_counter()
    vectors = embedder.encode_documents(texts, batch_size=4)
    encode_s = time.perf_counter() - started
    query_vectors = {query.qid: embedder.encode_query(query.text) for query in queries}

    def rank(query: PageQuery, doc: str | None) -> list[tuple[str, int]]:
        scores = vectors @ query_vectors[query.qid]
        order = np.argsort(-scores, kind="stable")
        return [keys[i] for i in order if doc is None or keys[i][0] == doc][:max(CUTOFFS)]

    return {"row": "bare per-page reference", "model": embedder.info.name, "pages": len(texts),
            "page_tokens": PAGE_TOKENS, "encode_pages_s": round(encode_s, 1), **score_rankings(queries, rank)}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python docs/bench/tools/pages_bare.py OUT")
    print(json.dumps(bare_reference(Path(sys.argv[1])), ensure_ascii=False, indent=1))
