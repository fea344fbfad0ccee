"""Near-duplicate folding (collapse=doc), measured on real files: the same guide as HTML, PDF and text.

Index (one index, formats told apart by the first path segment of the document id)::

    SRC/html/{en,zh}/*.html        Debian New Maintainers' Guide chapters (/usr/share/doc/maint-guide*/html)
    SRC/pdf/{en,zh}/*.pdf          the same guide as PDF
    SRC/republished/*.html         one chapter per language, other <title>, header and footer
    SRC2/txt/{en,zh}/*.txt         shared/bench/maintguide/docs (the guide's sections as text)

    bisearch ingest SRC --index IDX && bisearch ingest SRC2 --index IDX
    python docs/bench/tools/duplicates.py IDX [--queries shared/bench/maintguide/queries.jsonl] [--json OUT]

Ground truth (independent of the candidate rules' 3-gram measures): two passages *share text*
when the fraction of the shorter one's character 12-grams found in the other (``verbatim``) is
high: >= .5 is a true duplicate (at least half the text is the same, whatever the chunk
boundaries, page furniture or line breaks), < .2 is distinct, between is partial.

Pairs measured:
  duplicates    each passage of one format, its best-``verbatim`` passage of another format of the
                same language (kept when >= .5)
  translations  each passage, its best-cosine passage in the other language (any format)
  nearest       each passage, its best-cosine same-language passage of another document that is
                distinct (verbatim < .2): the hardest non-duplicate
  co-ranked     pairs of different documents in the top 10 of collapse=doc for the benchmark queries
Then each candidate rule's folded fraction per kind, and what happens in the real result lists
(the per-document best hits the product folds, captured from ``Retriever.search(collapse=True)``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sqlite3
import sys
from pathlib import Path

import numpy as np

from search.ranking import collapse
from search.text.language import HAN_RE
from search.text.language import fold

VERBATIM = 12
DUPLICATE, DISTINCT = 0.5, 0.2


def grams(text: str, size: int) -> frozenset[str]:
    folded = "".join(fold(text).split())
    return frozenset(folded[i:i + size] for i in range(max(1, len(folded) - size + 1)))


def contained(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / (min(len(a), len(b)) or 1)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / (len(a | b) or 1)


class Passages:
    def __init__(self, index: Path):
        db = sqlite3.connect(index / "index.sqlite")
        rows = db.execute('SELECT id, doc_id, chunk_no, lang, text, vector FROM chunks ORDER BY id').fetchall()
        self.ids = [r[0] for r in rows]
        self.row = {r[0]: i for i, r in enumerate(rows)}
        self.doc = [r[1] for r in rows]
        self.chunk = [r[2] for r in rows]
        self.plang = [r[3] for r in rows]
        self.text = [r[4] for r in rows]
        self.format = [d.split("/", 1)[0] for d in self.doc]
        self.lang = [_doc_lang(d) for d in self.doc]
        dim = len(rows[0][5]) // 4
        self.vectors = np.stack([np.frombuffer(r[5], dtype=np.float32, count=dim) for r in rows])
        self.vectors /= np.linalg.norm(self.vectors, axis=1, keepdims=True)
        self.cos = self.vectors @ self.vectors.T
        self.g3 = [grams(t, 3) for t in self.text]
        self.g5 = [grams(t, 5) for t in self.text]
        self.g12 = [grams(t, VERBATIM) for t in self.text]
        self.han = [len(HAN_RE.findall(t)) for t in self.text]
        self._measured: dict[tuple[int, int], dict[str, float]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def measures(self, i: int, j: int) -> dict[str, float]:
        if (i, j) not in self._measured:
            self._measured[i, j] = self._measures(i, j)
        return self._measured[i, j]

    def _measures(self, i: int, j: int) -> dict[str, float]:
        return {"same_chinese": collapse.same_chinese(self.han[i], self.han[j]), "cosine": float(self.cos[i, j]), "jaccard3": jaccard(self.g3[i], self.g3[j]),
                "contain3": contained(self.g3[i], self.g3[j]),
                "contain5": contained(self.g5[i], self.g5[j]), "verbatim": contained(self.g12[i], self.g12[j])}


def _doc_lang(doc_id: str) -> str:
    parts = doc_id.split("/")
    if parts[0] == "republished":
        return "zh" if doc_id.endswith("zh-cn") else "en"
    return parts[1]


def pair_sets(p: Passages) -> dict[str, list[tuple[int, int]]]:
    n = len(p)
    fmt, lang = np.array(p.format), np.array(p.lang)
    out: dict[str, list[tuple[int, int]]] = {"duplicate": [], "partial": [], "translation": [], "nearest": [],
                                             "republished": []}
    for i in range(n):
        # true duplicates: best verbatim match in each other format of the same language
        for other in sorted(set(p.format) - {p.format[i]}):
            if (p.format[i], other) not in (("html", "pdf"), ("txt", "pdf"), ("html", "txt"), ("republished", "html")):
                continue
            cands = np.flatnonzero((fmt == other) & (lang == p.lang[i]))
            if not len(cands):
                continue
            scores = [contained(p.g12[i], p.g12[j]) for j in cands]
            j = int(cands[int(np.argmax(scores))])
            v = max(scores)
            if p.format[i] == "republished":
                out["republished"].append((i, j))
            elif v >= DUPLICATE:
                out["duplicate"].append((i, j))
            elif v >= DISTINCT:
                out["partial"].append((i, j))
        # translations: best cosine in the other language
        cands = np.flatnonzero(lang != p.lang[i])
        out["translation"].append((i, int(cands[int(np.argmax(p.cos[i, cands]))])))
        # nearest distinct passage of another document, same language
        cands = np.flatnonzero((lang == p.lang[i]) & (np.array(p.doc) != p.doc[i]))
        for j in cands[np.argsort(-p.cos[i, cands])]:
            if contained(p.g12[i], p.g12[int(j)]) < DISTINCT:
                out["nearest"].append((i, int(j)))
                break
    return out


def quantiles(values: list[float]) -> str:
    if not values:
        return "-"
    q = np.quantile(values, [0.05, 0.5, 0.95])
    return f"{q[0]:.3f} / {q[1]:.3f} / {q[2]:.3f}"


MEASURES = ("cosine", "jaccard3", "contain3", "contain5", "verbatim")
RULES = {
    "cos>=.95 & jaccard3>=.8 (before)": lambda m: m["cosine"] >= .95 and m["jaccard3"] >= .8,
    "cos>=.90 & jaccard3>=.5": lambda m: m["cosine"] >= .90 and m["jaccard3"] >= .5,
    "cos>=.95 & contain3>=.8": lambda m: m["cosine"] >= .95 and m["contain3"] >= .8,
    "cos>=.85 & contain3>=.7": lambda m: m["cosine"] >= .85 and m["contain3"] >= .7,
    "cos>=.80 & contain3>=.7": lambda m: m["cosine"] >= .80 and m["contain3"] >= .7,
    "contain3>=.7 (no cosine)": lambda m: m["contain3"] >= .7,
    "cos>=.85 & contain5>=.6": lambda m: m["cosine"] >= .85 and m["contain5"] >= .6,
    "contain3>=.7 & same Chinese": lambda m: m["contain3"] >= .7 and m["same_chinese"],
    "cos>=.85 & contain3>=.7 & same Chinese": lambda m: m["cosine"] >= .85 and m["contain3"] >= .7 and m["same_chinese"],
    "cos>=.80 & contain3>=.7 & same Chinese (now)": lambda m: (
        m["cosine"] >= collapse.DUPLICATE_COSINE and m["contain3"] >= collapse.DUPLICATE_CONTAINMENT
        and m["same_chinese"]),
}


def capture_result_lists(index: Path, queries: list[str]) -> list[list[int]]:
    """The per-document best hits that collapse=doc folds, for each query: the first 100 hits of the
    plain search, one per document (the product folds the same leaders, drawn from every candidate)."""
    from search.service import open_retriever
    from search.settings import Settings

    retriever = open_retriever(Settings(index=index))
    lists = []
    for query in queries:
        hits = retriever.search(query, k=100).hits
        leaders = collapse.collapse_by_doc([hit.passage.doc_id for hit in hits])
        lists.append([(hits[group.index].passage.doc_id, hits[group.index].passage.text) for group in leaders])
    return lists


def fold_with(rule, rows: list[int], p: Passages) -> list[tuple[int, list[int]]]:
    """The product's folding (first of each group kept, compared with group leaders), with ``rule``."""
    kept: list[tuple[int, list[int]]] = []
    for r in rows:
        for leader, members in kept:
            if p.doc[leader] != p.doc[r] and rule(p.measures(leader, r)):
                members.append(r)
                break
        else:
            kept.append((r, []))
    return kept


def kind(p: Passages, i: int, j: int) -> str:
    if p.lang[i] != p.lang[j]:
        return "translation"
    v = max(contained(p.g12[i], p.g12[j]), contained(p.g12[j], p.g12[i]))
    return "duplicate" if v >= DUPLICATE else "distinct" if v < DISTINCT else "partial"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", type=Path)
    parser.add_argument("--queries", type=Path,
                        default=Path(__file__).resolve().parents[4] / "shared/bench/maintguide/queries.jsonl")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--cache", type=Path, help="result lists captured by an earlier run (written when absent)")
    args = parser.parse_args()
    p = Passages(args.index)
    lines = []
    say = lambda s="": (lines.append(s), print(s, flush=True))
    counts = {}
    for d, f in zip(p.doc, p.format):
        counts.setdefault(f, set()).add(d)
    say(f"index {args.index}: {len(p)} passages; " + ", ".join(
        f"{f} {len(ds)} docs {sum(1 for x in p.format if x == f)} passages" for f, ds in sorted(counts.items())))
    pairs = pair_sets(p)
    # co-ranked pairs from the real result lists
    queries = [json.loads(line)["text"] for line in args.queries.read_text(encoding="utf-8").splitlines() if line.strip()]
    if args.cache and args.cache.exists():
        lists = json.loads(args.cache.read_text(encoding="utf-8"))
    else:
        lists = capture_result_lists(args.index, queries)
        if args.cache:
            args.cache.write_text(json.dumps(lists, ensure_ascii=False), encoding="utf-8")
    row_of = {}
    for i, (d, t) in enumerate(zip(p.doc, p.text)):
        row_of[(d, t)] = i
    lists = [[row_of[(d, t)] for d, t in hits] for hits in lists]
    coranked = {"duplicate": set(), "partial": set(), "translation": set(), "distinct": set()}
    for rows in lists:
        for a, b in itertools.combinations(rows[:10], 2):
            if p.doc[a] != p.doc[b]:
                coranked[kind(p, a, b)].add((a, b))
    pairs["co-ranked distinct"] = sorted(coranked["distinct"])
    pairs["co-ranked duplicate"] = sorted(coranked["duplicate"])
    pairs["co-ranked translation"] = sorted(coranked["translation"])
    measured = {name: [p.measures(i, j) for i, j in ps] for name, ps in pairs.items()}

    say()
    say("Distributions, p5 / median / p95 (verbatim: share of the shorter passage's 12-grams in the other)")
    say(f"{'pairs':<24}{'n':>5}  " + "".join(f"{k:<22}" for k in MEASURES))
    for name, ms in measured.items():
        say(f"{name:<24}{len(ms):>5}  " + "".join(f"{quantiles([m[k] for m in ms]):<22}"
                                                 for k in MEASURES))
    by_format = {}
    for (i, j), m in zip(pairs["duplicate"], measured["duplicate"]):
        by_format.setdefault(f"{p.format[i]}->{p.format[j]} {p.lang[i]}", []).append(m)
    say()
    say("Duplicates by format pair")
    for name, ms in sorted(by_format.items()):
        say(f"  {name:<20}{len(ms):>5}  cos {quantiles([m['cosine'] for m in ms])}  "
            f"jac3 {quantiles([m['jaccard3'] for m in ms])}  con3 {quantiles([m['contain3'] for m in ms])}  "
            f"con5 {quantiles([m['contain5'] for m in ms])}")

    say()
    say("Folded fraction per rule (pairs as above)")
    header = ["duplicate", "partial", "republished", "translation", "nearest", "co-ranked distinct",
              "co-ranked duplicate", "co-ranked translation"]
    say(f"{'rule':<36}" + "".join(f"{h[:12]:>13}" for h in header))
    for name, rule in RULES.items():
        say(f"{name:<36}" + "".join(
            f"{(sum(map(rule, measured[h])) / len(measured[h]) if measured[h] else float('nan')):>13.3f}"
            for h in header))

    chinese = [(i, j) for i, j in pairs["translation"] if max(p.han[i], p.han[j]) >= 1]
    say(f"translation pairs with any Chinese character: {len(chinese)}; folded by each rule: " + ", ".join(
        f"{n.split(' (')[0]}: {sum(rule(p.measures(i, j)) for i, j in chinese)}" for n, rule in RULES.items()))
    say()
    say(f"Result lists: {len(lists)} benchmark queries, collapse=doc, top 10 after folding")
    say(f"{'rule':<36}{'dup pairs shown':>16}{'dup folded':>11}{'partial folded':>15}"
        f"{'transl. folded':>15}{'distinct folded':>16}")
    shown = sum(kind(p, a, b) == "duplicate" for rows in lists for a, b in itertools.combinations(rows[:10], 2)
                if p.doc[a] != p.doc[b])
    say(f"{'no folding':<36}{shown:>16}")
    for name, rule in RULES.items():
        totals = dict.fromkeys(("shown", "duplicate", "partial", "translation", "distinct"), 0)
        for rows in lists:
            kept = fold_with(rule, rows, p)
            top = [leader for leader, _ in kept[:10]]
            totals["shown"] += sum(kind(p, a, b) == "duplicate" for a, b in itertools.combinations(top, 2)
                                   if p.doc[a] != p.doc[b])
            for leader, members in kept[:10]:
                for member in members:
                    totals[kind(p, leader, member)] += 1
        say(f"{name:<36}{totals['shown']:>16}{totals['duplicate']:>11}{totals['partial']:>15}"
            f"{totals['translation']:>15}{totals['distinct']:>16}")
    if args.json:
        args.json.write_text(json.dumps({"lines": lines}, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
