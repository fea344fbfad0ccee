"""A page-level benchmark from a pair of PDFs (EN + ZH), scored on the product's passages.

Layout written by :func:`build_page_benchmark` (``python -m search.eval.pages build OUT``)::

    OUT/docs/en/maint-guide.pdf         the English PDF (copied)
    OUT/docs/zh/maint-guide.pdf         the Chinese PDF (copied)
    OUT/queries.jsonl                   {"qid", "lang", "text", "target",
                                         "pages": {"en/maint-guide": 34, "zh/maint-guide": 33}}

Queries are the section titles of ``shared/bench/maintguide/queries.jsonl``; a query's
answer in each PDF is the 1-based physical page on which that numbered section heading
stands, found as a line ``<number> <title>`` in the cleaned page texts (table-of-contents
lines, which end in dot leaders and a page number, never match). Only targets found in
both PDFs are kept. A ranked page is a hit when it is the answer page or the page after
(a section heading at a page's foot has its body overleaf).

Settings, as in ``bisearch eval``: ``mixed`` ranks the pages of both PDFs and either
answer counts; ``cross`` ranks only the other-language PDF's pages.

The bare reference (``python docs/bench/tools/pages_bare.py OUT``, outside the product) embeds
each page's raw pypdfium2 text whole with the product's model: the row the passages should beat.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path


from search.loading import Document, load_file

DEFAULT_PDFS = {
    "en": Path("/usr/share/doc/maint-guide/maint-guide.en.pdf"),
    "zh": Path("/usr/share/doc/maint-guide-zh-cn/maint-guide.zh-cn.pdf"),
}
DOC_NAME = "maint-guide"
CUTOFFS = (1, 5, 10)
LANGS = ("en", "zh")
#: A leading section number in a query (``A.1. Shared libraries``).
QUERY_NUMBER_RE = re.compile(r"^(?:[A-Z]|\d+)(?:\.\d+)*\.?\s+")
#: A numbered heading line: ``5.15.3 manpage.xml.ex``, ``A.1 Shared libraries``.
HEADING_LINE_RE = re.compile(r"^(?:[A-Z]|\d+)(?:\.\d+)+\.?\s+(.+)$")
#: Spaced dot leaders (`` . . .``): a table-of-contents line, not the heading itself.
SPACED_LEADERS_RE = re.compile(r"(\s\.){3}")


def _key(text: str) -> str:
    """Comparable form of a heading: NFKC, curly quotes straight, no spaces, case-folded."""
    text = unicodedata.normalize("NFKC", text).replace("’", "'").replace("‘", "'")
    return "".join(text.split()).casefold()


def heading_title(query_text: str) -> str:
    return QUERY_NUMBER_RE.sub("", query_text.strip())


def heading_pages(document: Document) -> dict[str, int]:
    """``{heading key: 1-based page}`` of the numbered heading lines in a paged document (first wins)."""
    found: dict[str, int] = {}
    bounds = list(document.pages) + [len(document.text)]
    for number in range(len(document.pages)):
        for line in document.text[bounds[number]:bounds[number + 1]].split("\n"):
            match = HEADING_LINE_RE.match(line.strip())
            if match and not SPACED_LEADERS_RE.search(line):
                found.setdefault(_key(match.group(1)), number + 1)
    return found


def read_pdfs(pdfs: dict[str, Path]) -> dict[str, Document]:
    return {lang: load_file(path, f"{lang}/{DOC_NAME}").document for lang, path in pdfs.items()}


def build_page_benchmark(out_dir: Path, source_queries: Path, pdfs: dict[str, Path] | None = None) -> dict:
    """Write the page benchmark folder; returns a summary (kept and dropped targets)."""
    pdfs = pdfs or DEFAULT_PDFS
    documents = read_pdfs(pdfs)
    headings = {lang: heading_pages(document) for lang, document in documents.items()}
    rows = [json.loads(line) for line in source_queries.read_text(encoding="utf-8").splitlines() if line.strip()]
    titles: dict[str, dict[str, str]] = {}
    for row in rows:
        titles.setdefault(row["target"], {})[row["lang"]] = heading_title(row["text"])
    answers: dict[str, dict[str, int]] = {}
    dropped = []
    for target, by_lang in titles.items():
        pages = {lang: headings[lang].get(_key(by_lang.get(lang, ""))) for lang in LANGS}
        if all(pages.values()):
            answers[target] = {f"{lang}/{DOC_NAME}": page for lang, page in pages.items()}
        else:
            dropped.append(target)
    out_dir.mkdir(parents=True, exist_ok=True)
    for lang, path in pdfs.items():
        (out_dir / "docs" / lang).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out_dir / "docs" / lang / f"{DOC_NAME}.pdf")
    kept = 0
    with open(out_dir / "queries.jsonl", "w", encoding="utf-8") as out:
        for row in rows:
            if row["target"] in answers:
                out.write(json.dumps({**row, "pages": answers[row["target"]]}, ensure_ascii=False) + "\n")
                kept += 1
    return {"queries": kept, "targets": len(answers), "dropped_targets": sorted(dropped)}


@dataclass(frozen=True)
class PageQuery:
    qid: str
    lang: str
    text: str
    pages: dict[str, int]  # "en/maint-guide" -> 1-based page


def load_page_queries(bench_dir: Path) -> list[PageQuery]:
    rows = [json.loads(line) for line in (bench_dir / "queries.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    return [PageQuery(row["qid"], row["lang"], row["text"], row["pages"]) for row in rows]


def is_hit(doc: str, page: int, answers: dict[str, int]) -> bool:
    """The answer page or the page after, in the same document."""
    answer = answers.get(doc)
    return answer is not None and answer <= page <= answer + 1


def first_hit_rank(ranked: list[tuple], answers: dict[str, int]) -> int | None:
    """Rank of the first ``(doc, page)`` or ``(doc, first page, last page)`` that holds the answer."""
    return next((rank for rank, (doc, *pages) in enumerate(ranked, start=1)
                 if any(is_hit(doc, page, answers) for page in range(pages[0], pages[-1] + 1))), None)


def summarise(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks) or 1
    return {f"hit@{cut}": round(sum(1 for r in ranks if r is not None and r <= cut) / n, 4) for cut in CUTOFFS}


def score_rankings(queries: list[PageQuery], rank: "callable") -> dict[str, dict[str, float]]:
    """Hit@1/5/10 for mixed and cross; ``rank(query, docs)`` returns ``(doc, page)`` best first over ``docs``."""
    ranks: dict[str, list[int | None]] = {"mixed": [], "cross": []}
    for query in queries:
        other = f"{'zh' if query.lang == 'en' else 'en'}/{DOC_NAME}"
        ranks["mixed"].append(first_hit_rank(rank(query, None), query.pages))
        ranks["cross"].append(first_hit_rank(rank(query, other), {other: query.pages[other]}))
    return {setting: {**summarise(values), "queries": len(values)} for setting, values in ranks.items()}


def is_page_benchmark(bench_dir: Path) -> bool:
    """True for this layout (queries carry ``pages``), False for the section layout of ``evaluation``."""
    path = bench_dir / "queries.jsonl"
    first = next((line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()), "{}")
    return "pages" in json.loads(first)


def product_pages(bench_dir: Path, settings, mode: str = "hybrid") -> dict[str, object]:
    """Hit@k of the product's own passages (with their page ranges), ingested from the PDFs."""
    from search.service import open_ingester
    from search.ranking.retriever import Retriever

    ingester = open_ingester(settings)
    started = time.perf_counter()
    summary = ingester.ingest_paths([bench_dir / "docs"])
    ingest_s = time.perf_counter() - started
    retriever = Retriever(ingester.backend, ingester.embedder)

    def rank(query: PageQuery, doc: str | None) -> list[tuple[str, int, int]]:
        """Page ranges of the best passages, each range once (as a reader scanning pages sees them)."""
        hits = retriever.search(query.text, k=5 * max(CUTOFFS), mode=mode, doc_ids=[doc] if doc else None).hits
        ranges = dict.fromkeys((hit.passage.doc_id, hit.passage.page, hit.passage.page_end) for hit in hits)
        return list(ranges)[:max(CUTOFFS)]

    try:
        scores = score_rankings(load_page_queries(bench_dir), rank)
    finally:
        ingester.backend.close()
    return {"row": f"bisearch passages ({mode})", "runtime": ingester.embedder.runtime,
            "precision": ingester.embedder.precisions, "passages": summary.chunks_added,
            "ingest_s": round(ingest_s, 1), **scores}


def format_page_table(rows: list[dict[str, object]]) -> str:
    """Hit@1/5/10 per row and setting."""
    lines = [f"{'row':32} {'setting':7} {'hit@1':>6} {'hit@5':>6} {'hit@10':>6}"]
    for row in rows:
        for setting in ("mixed", "cross"):
            cells = row[setting]
            lines.append(f"{row['row']:32} {setting:7} {cells['hit@1']:6.3f} {cells['hit@5']:6.3f} {cells['hit@10']:6.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or args[0] != "build":
        print("usage: python -m search.eval.pages build OUT [QUERIES.jsonl]", file=sys.stderr)
        return 2
    queries = Path(args[2]) if len(args) > 2 else Path("../shared/bench/maintguide/queries.jsonl")
    result = build_page_benchmark(Path(args[1]), queries)
    print(json.dumps(result, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
