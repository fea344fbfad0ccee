"""Language balance and fusion designs, measured on the dev benchmarks (issue 16, part 4).

Each benchmark is indexed once (``bisearch eval BENCH --keep-index IDX`` builds it), then every
design below is scored with ``search.evaluation.evaluate`` on the same index and model::

    python docs/bench/tools/balance_sweep.py ../shared/bench/maintguide IDX1 ../shared/bench/debref IDX2

A design is a keyword weight plus switches that replace one step of ``Retriever._ranked`` by
the step it had before (no interleaving, no documents-first order). Output: one line of R@10
per design and benchmark, ``mixed | cross | xonly | both@10``, EN then ZH queries.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Iterator

from search import retrieval
from search.engine import open_retriever
from search.evaluation import evaluate, load_queries
from search.settings import Settings

DESIGNS: list[tuple[str, str, dict[str, object]]] = [
    ("dense", "dense", {}),
    ("dense, documents first", "hybrid", {"weight": 0.0, "interleave": False}),
    ("old hybrid (.05, interleave)", "hybrid", {"weight": 0.05, "documents_first": False}),
    ("hybrid .03, interleave", "hybrid", {"weight": 0.03, "documents_first": False}),
    ("hybrid .05, interleave, documents first", "hybrid", {"weight": 0.05}),
    ("hybrid .03, interleave, documents first (new default)", "hybrid", {"weight": 0.03}),
    ("hybrid .02, interleave, documents first", "hybrid", {"weight": 0.02}),
    ("hybrid .03, documents first, no interleave", "hybrid", {"weight": 0.03, "interleave": False}),
]


@contextlib.contextmanager
def design(retriever: retrieval.Retriever, weight: float = retrieval.KEYWORD_WEIGHT, interleave: bool = True,
           documents_first: bool = True) -> Iterator[None]:
    """The retriever ranking as the design says, restored afterwards."""
    saved = retriever.keyword_weight, retrieval.interleave, retrieval.documents_first
    retriever.keyword_weight = weight
    if not interleave:
        retrieval.interleave = lambda ranked, groups, lead: list(ranked)
    if not documents_first:
        retrieval.documents_first = lambda ranked, documents: list(ranked)
    try:
        yield
    finally:
        retriever.keyword_weight, retrieval.interleave, retrieval.documents_first = saved


def r10_line(report: dict) -> str:
    """R@10 per setting and query language, then both@10."""
    cells = [f"{report[setting][lang]['R@10']:.3f}" for setting in ("mixed", "cross", "xonly") for lang in ("en", "zh")]
    return (f"{cells[0]} {cells[1]} | {cells[2]} {cells[3]} | {cells[4]} {cells[5]} | "
            f"{report['both']['en']:.3f} {report['both']['zh']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", type=Path, help="BENCH_DIR INDEX_DIR, repeated")
    args = parser.parse_args()
    for bench_dir, index_dir in zip(args.pairs[::2], args.pairs[1::2]):
        retriever = open_retriever(Settings().with_overrides(index=index_dir))
        queries = load_queries(bench_dir)
        print(f"{bench_dir.name}: R@10 mixed en zh | cross en zh | xonly en zh | both@10 en zh")
        for name, mode, switches in DESIGNS:
            with design(retriever, **switches):
                print(f"  {r10_line(evaluate(retriever, queries, mode))}  {name}", flush=True)


if __name__ == "__main__":
    main()
