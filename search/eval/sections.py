"""Score the product's own ingest and query path on an EN/ZH benchmark folder.

Layout (``shared/bench/maintguide``): ``docs/en/<id>.txt``, ``docs/zh/<id>.txt`` and
``queries.jsonl`` with ``{"qid", "lang", "text", "target"}``. A query's relevant
documents are ``en/<target>`` and ``zh/<target>``; scores are at document level: a
document is ranked where its first passage is.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from search.service import open_ingester
from search.ranking.query import without_marks
from search.ranking.retriever import Retriever
from search.settings import Settings

CUTOFFS = (1, 5, 10)
LANGS = ("en", "zh")


@dataclass(frozen=True)
class BenchQuery:
    qid: str
    lang: str
    text: str
    target: str

    @property
    def other_lang(self) -> str:
        return "zh" if self.lang == "en" else "en"


def load_queries(bench_dir: Path, path: Path | None = None, unmarked: bool = False) -> list[BenchQuery]:
    """Queries of a benchmark folder (or of ``path``, in the same format, over its documents),
    validated; ``unmarked``: each question without its quotation marks and exclusion signs."""
    path = path or bench_dir / "queries.jsonl"
    if not path.is_file() or not (bench_dir / "docs").is_dir():
        raise FileNotFoundError(f"{bench_dir} is not a benchmark folder (needs docs/ and {path.name})")
    queries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row["lang"] not in LANGS:
                raise ValueError(f"{path}: query {row['qid']} has language {row['lang']!r}")
            text = without_marks(row["text"]) if unmarked else row["text"]
            queries.append(BenchQuery(row["qid"], row["lang"], text, row["target"]))
    return queries


def ranked_documents(retriever: Retriever, query: str, mode: str, lang: str | None = None,
                     k: int = 10) -> list[str]:
    """Document ids in the order of their first passage among the top ``k`` passages."""
    hits = retriever.search(query, k=k, mode=mode, lang=lang).hits
    return list(dict.fromkeys(hit.passage.doc_id for hit in hits))


def first_rank(documents: list[str], relevant: set[str]) -> int | None:
    """1-based rank of the first relevant document, or None."""
    return next((rank for rank, doc in enumerate(documents, start=1) if doc in relevant), None)


def summarise(ranks: list[int | None]) -> dict[str, float]:
    """Recall@1/5/10 and MRR@10 of first-hit ranks."""
    n = len(ranks) or 1
    scores = {f"R@{cut}": sum(1 for r in ranks if r is not None and r <= cut) / n for cut in CUTOFFS}
    scores["MRR@10"] = sum(1 / r for r in ranks if r is not None and r <= 10) / n
    return {key: round(value, 4) for key, value in scores.items()}


def evaluate(retriever: Retriever, queries: list[BenchQuery], mode: str) -> dict[str, object]:
    """Metrics per setting and query language, plus the ``both`` fraction and latency."""
    ranks: dict[str, dict[str, list[int | None]]] = {s: {l: [] for l in LANGS} for s in ("mixed", "cross", "xonly")}
    both: dict[str, list[bool]] = {lang: [] for lang in LANGS}
    timings = []
    for query in queries:
        own, other = f"{query.lang}/{query.target}", f"{query.other_lang}/{query.target}"
        started = time.perf_counter()
        documents = ranked_documents(retriever, query.text, mode)
        timings.append((time.perf_counter() - started) * 1000)
        ranks["mixed"][query.lang].append(first_rank(documents, {own, other}))
        ranks["cross"][query.lang].append(first_rank(documents, {other}))
        both[query.lang].append(own in documents and other in documents)
        filtered = ranked_documents(retriever, query.text, mode, lang=query.other_lang)
        ranks["xonly"][query.lang].append(first_rank(filtered, {other}))
    result: dict[str, object] = {
        setting: {lang: summarise(by_lang[lang]) for lang in LANGS} for setting, by_lang in ranks.items()
    }
    result["both"] = {lang: round(sum(flags) / (len(flags) or 1), 4) for lang, flags in both.items()}
    result["query_ms_p50"] = round(statistics.median(timings), 1) if timings else 0.0
    return result


def run_benchmark(bench_dir: Path, settings: Settings, mode: str = "hybrid", index_dir: Path | None = None,
                  queries_path: Path | None = None, unmarked: bool = False) -> dict[str, object]:
    """Build an index of the benchmark (fresh unless ``index_dir`` is given) and score ``mode``.

    ``settings`` picks the model, vector size and backend (a Milvus collection is used as given);
    ``queries_path`` and ``unmarked`` as for :func:`load_queries`.
    """
    queries = load_queries(bench_dir, queries_path, unmarked)
    with tempfile.TemporaryDirectory(prefix="bisearch-eval-") as scratch:
        settings = settings.with_overrides(index=index_dir or Path(scratch))
        ingester = open_ingester(settings)
        started = time.perf_counter()
        ingester.ingest_paths([bench_dir / "docs"])
        ingest_s = round(time.perf_counter() - started, 1)
        retriever = Retriever(ingester.backend, ingester.embedder)
        docs = ingester.backend.stats()["documents"]
        scores = evaluate(retriever, queries, mode)
        ingester.backend.close()
    return {"mode": mode, "backend": settings.backend, "dimension": ingester.embedder.info.dimension,
            "int8": settings.int8, "runtime": ingester.embedder.runtime,
            "precision": ingester.embedder.precisions,
            "docs": docs, "queries": len(queries), "ingest_s": ingest_s,
            "query_ms_p50": scores.pop("query_ms_p50"), **scores}


def format_table(report: dict[str, object]) -> str:
    """A readable table of an evaluation report."""
    model = f"{report['dimension']}-d{', int8' if report['int8'] else ''}"
    lines = [f"mode {report['mode']} ({model}, {report['backend']}): {report['docs']} docs, {report['queries']} queries, "
             f"ingest {report['ingest_s']} s, query p50 {report['query_ms_p50']} ms",
             f"{'setting':8} {'lang':4} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7}"]
    for setting in ("mixed", "cross", "xonly"):
        for lang in LANGS:
            row = report[setting][lang]
            lines.append(f"{setting:8} {lang:4} {row['R@1']:6.3f} {row['R@5']:6.3f} {row['R@10']:6.3f} {row['MRR@10']:7.3f}")
    lines.append(f"both@10  en {report['both']['en']:.3f}  zh {report['both']['zh']:.3f}")
    return "\n".join(lines)
