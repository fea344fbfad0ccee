"""Language balance and fusion designs, measured on the dev benchmarks (issue 16, part 4).

Each benchmark is indexed once (``bisearch eval BENCH --keep-index IDX`` builds it), then every
design below is scored with ``search.eval.sections.evaluate`` on the same index and model::

    python docs/bench/tools/balance_sweep.py ../shared/bench/maintguide IDX1 ../shared/bench/debref IDX2

A design is a ``RankingPolicy``: a keyword weight plus switches that turn off one step of the
hybrid order (interleaving, documents first), passed to the retriever (nothing is patched). Output: one line of R@10
per design and benchmark, ``mixed | cross | xonly | both@10``, EN then ZH queries.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from search.ranking.fusion import RankingPolicy
from search.ranking.retriever import Retriever
from search.service import open_retriever
from search.eval.sections import evaluate, load_queries
from search.settings import Settings

DESIGNS: list[tuple[str, str, RankingPolicy]] = [
    ("dense", "dense", RankingPolicy()),
    ("dense, documents first", "hybrid", RankingPolicy(0.0, interleave=False)),
    ("old hybrid (.05, interleave)", "hybrid", RankingPolicy(0.05, documents_first=False)),
    ("hybrid .03, interleave", "hybrid", RankingPolicy(0.03, documents_first=False)),
    ("hybrid .05, interleave, documents first", "hybrid", RankingPolicy(0.05)),
    ("hybrid .03, interleave, documents first (new default)", "hybrid", RankingPolicy(0.03)),
    ("hybrid .02, interleave, documents first", "hybrid", RankingPolicy(0.02)),
    ("hybrid .03, documents first, no interleave", "hybrid", RankingPolicy(0.03, interleave=False)),
]


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
        opened = open_retriever(Settings().with_overrides(index=index_dir))
        queries = load_queries(bench_dir)
        print(f"{bench_dir.name}: R@10 mixed en zh | cross en zh | xonly en zh | both@10 en zh")
        for name, mode, policy in DESIGNS:
            retriever = Retriever(opened.backend, opened.embedder, policy)
            print(f"  {r10_line(evaluate(retriever, queries, mode))}  {name}", flush=True)


if __name__ == "__main__":
    main()
