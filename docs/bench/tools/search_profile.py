"""Where a search's own time goes, the model left out: each question is embedded once, then
``Retriever.search`` runs again with its vector cached (ms per search), and once more under
cProfile (the top functions by cumulative time). A tool, not the product.

    python docs/bench/tools/search_profile.py INDEX_DIR [QUERIES.jsonl] [--top N]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from search.service import load_embedder, open_retriever  # noqa: E402
from search.settings import Settings  # noqa: E402

QUERIES = ROOT.parent / "shared" / "bench" / "maintguide" / "queries.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("index", type=Path)
    parser.add_argument("queries", type=Path, nargs="?", default=QUERIES)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    questions = [json.loads(line)["text"] for line in args.queries.read_text(encoding="utf-8").splitlines() if line.strip()]
    settings = Settings(index=args.index)
    embedder = load_embedder(settings)
    retriever = open_retriever(settings, embedder=embedder)
    vectors: dict[str, object] = {}
    encode = embedder.encode_query
    embedder.encode_query = lambda text: vectors[text] if text in vectors else vectors.setdefault(text, encode(text))
    for question in questions:  # embeds each question once, warms SQLite and FAISS
        retriever.search(question, k=10)
    started = time.perf_counter()
    for question in questions * 3:
        retriever.search(question, k=10)
    print(f"{(time.perf_counter() - started) * 1000 / (3 * len(questions)):.2f} ms per search, the model left out "
          f"({len(questions)} questions x 3)")
    profile = cProfile.Profile()
    profile.enable()
    for question in questions:
        retriever.search(question, k=10)
    profile.disable()
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
