"""Score fusion/balance variants offline on dumps from ``tools/fusion_dump.py``.

Reproduces ``search.evaluation.evaluate`` (k 10, pool 100, document level) with the
pure functions of ``search.fusion``, so variants are compared on identical candidates.

    .venv/bin/python tools/fusion_sweep.py /tmp/prec/dump-maintguide.npz /tmp/prec/dump-debref.npz
"""
from __future__ import annotations

import json
import sys

import numpy as np

from search import fusion

POOL, K = 100, 10


def load(path):
    from pathlib import Path
    from search.language import dominant_script
    bench = Path("/work/shared/bench") / Path(path).stem.split("-", 1)[1]
    dominant = {json.loads(l)["qid"]: dominant_script(json.loads(l)["text"])
                for l in (bench / "queries.jsonl").read_text().splitlines() if l.strip()}
    data = np.load(path)
    ids = data["ids"]
    return {"ids": ids, "vectors": data["vectors"], "doc": dict(zip(ids.tolist(), data["doc_ids"].tolist())),
            "script": dict(zip(ids.tolist(), data["scripts"].tolist())),
            "scripts": data["scripts"], "dominant": dominant, "queries": json.loads(str(data["queries"]))}


def top(ids, cos, mask, n):
    index = np.flatnonzero(mask)
    order = index[np.argsort(-cos[index], kind="stable")[:n]]
    return {int(ids[i]): float(cos[i]) for i in order}


def ranked_docs(ranked, doc):
    return list(dict.fromkeys(doc[c] for c in ranked[:K]))


def run(data, method, **params):
    ids, cosall = data["ids"], None
    position = {int(c): i for i, c in enumerate(ids.tolist())}
    out = {s: {"en": [], "zh": []} for s in ("mixed", "cross", "xonly")}
    both = {"en": [], "zh": []}
    for q in data["queries"]:
        cos = data["vectors"] @ np.asarray(q["vector"], dtype=np.float32)
        other = "zh" if q["lang"] == "en" else "en"
        own, oth = f"{q['lang']}/{q['target']}", f"{other}/{q['target']}"
        for setting in ("all", "xonly"):
            mask = np.ones(len(ids), bool) if setting == "all" else data["scripts"] == other
            dense = top(ids, cos, mask, POOL)
            keyword = dict((c, s) for c, s in (q["keyword"] if setting == "all" else q["keyword_other"]))
            if method != "dense":
                for c in keyword:
                    dense.setdefault(c, float(cos[position[c]]))
            qlang = q["query_lang"]
            if qlang == "mixed" and params.get("mixed_dominant"):
                qlang = data["dominant"][q["qid"]]
            ranked = order(method, dense, keyword, data["script"], qlang, setting == "all", params)
            docs = ranked_docs(ranked, data["doc"])
            rank_of = lambda rel: next((r for r, d in enumerate(docs, 1) if d in rel), None)
            if setting == "all":
                out["mixed"][q["lang"]].append(rank_of({own, oth}))
                out["cross"][q["lang"]].append(rank_of({oth}))
                both[q["lang"]].append(own in docs and oth in docs)
            else:
                out["xonly"][q["lang"]].append(rank_of({oth}))
    result = {s: {l: summarise(r) for l, r in by.items()} for s, by in out.items()}
    result["both"] = {l: round(sum(v) / len(v), 4) for l, v in both.items()}
    return result


def summarise(ranks):
    n = len(ranks)
    s = {f"R@{c}": sum(1 for r in ranks if r and r <= c) / n for c in (1, 5, 10)}
    s["MRR@10"] = sum(1 / r for r in ranks if r) / n
    return {k: round(v, 4) for k, v in s.items()}


def order(method, dense, keyword, scripts, query_lang, balance, params):
    if method == "dense":
        return fusion.rank(dense)
    weight = params.get("weight", fusion.KEYWORD_WEIGHT)
    scores = fusion.fuse(dense, keyword, scripts, query_lang, weight)
    ranked = fusion.rank(scores)
    if not balance:
        return ranked
    lead = scripts[max(dense, key=dense.__getitem__)]
    if method == "old":
        return fusion.interleave(ranked, scripts, lead)
    if method == "lift":
        return fusion.lift_other_language(ranked, scores, dense, scripts, lead, K, params.get("slots", 3),
                                          params.get("margin", 0.05))
    if method == "calib":
        return fusion.rank(fusion.calibrated(scores, dense, scripts, lead, params.get("strength", 1.0)))
    if method == "calib_lift":
        cal = fusion.calibrated(scores, dense, scripts, lead, params.get("strength", 1.0))
        return fusion.lift_other_language(fusion.rank(cal), cal, dense, scripts, lead, K, params.get("slots", 3),
                                          params.get("margin", 0.05))
    if method == "leaders":
        return fusion.interleave_after_leaders(ranked, scores, scripts, lead, params.get("margin", 0.05))
    if method == "merge":
        base = fusion.calibrated(scores, dense, scripts, lead, params.get("strength", 1.0))
        return fusion.balanced_merge(fusion.rank(base), base, scripts, lead, params.get("margin", 0.05))
    raise ValueError(method)


def line(name, r):
    cells = [f"{r[s][l]['R@10']:.3f}" for s in ("mixed", "cross", "xonly") for l in ("en", "zh")]
    return f"{name:28} " + " ".join(cells) + f"  both {r['both']['en']:.3f} {r['both']['zh']:.3f}"


if __name__ == "__main__":
    sets = {path: load(path) for path in sys.argv[1:]}
    variants = [("dense", {}), ("old", {}), ("nobalance", {})]
    variants = [("dense", {}), ("old", {})]
    variants += [("leaders", {"margin": m}) for m in (0.01, 0.02, 0.03, 0.05)]
    variants += [] and [("lift", {"slots": s, "margin": m}) for s in (2, 3, 4) for m in (0.03, 0.05, 0.1, 1.0)]

    variants += [("old", {"mixed_dominant": True})] + [("leaders", {"margin": m, "mixed_dominant": True}) for m in (0.02, 0.03)]
    for path, data in sets.items():
        print(path, "R@10 mixed en zh | cross en zh | xonly en zh | both@10 en zh")
        for method, params in variants:
            r = run(data, "hybrid" if method == "nobalance" else method, **params) if method != "nobalance" else \
                run(data, "lift", slots=0, margin=0)
            print(line(f"{method} {params}", r))
