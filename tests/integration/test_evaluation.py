"""The eval command on a tiny generated EN/ZH benchmark."""

from __future__ import annotations

import json

import pytest

from search.cli import main
from search.errors import ANSWERS, InvalidInput

TOPICS = {
    "gold": ("Gold prices", "Gold prices rose sharply as investors sought safety from inflation.",
             "金价", "由于投资者躲避通货膨胀，黄金价格大幅上涨。"),
    "pearls": ("Freshwater pearls", "Freshwater pearl farms in Zhuji produce most of the world's pearls.",
               "淡水珍珠", "诸暨的淡水珍珠养殖场生产了世界上大部分的珍珠。"),
    "diamonds": ("Lab-grown diamonds", "Lab-grown diamonds are made in factories in Henan province.",
                 "培育钻石", "培育钻石是在河南省的工厂里生产的。"),
}


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    for lang in ("en", "zh"):
        (root / "docs" / lang).mkdir(parents=True)
    lines = []
    for target, (en_title, en_body, zh_title, zh_body) in TOPICS.items():
        (root / "docs" / "en" / f"{target}.txt").write_text(en_body, encoding="utf-8")
        (root / "docs" / "zh" / f"{target}.txt").write_text(zh_body, encoding="utf-8")
        lines.append(json.dumps({"qid": f"en:{target}", "lang": "en", "text": en_title, "target": target}))
        lines.append(json.dumps({"qid": f"zh:{target}", "lang": "zh", "text": zh_title, "target": target},
                                ensure_ascii=False))
    (root / "queries.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_eval_json_contract(tiny_bench, tmp_path, capsys):
    assert main(["eval", str(tiny_bench), "--json", "--keep-index", str(tmp_path / "idx")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mode"] == "hybrid" and report["docs"] == 6 and report["queries"] == 6
    assert report["ingest_s"] >= 0 and report["query_ms_p50"] > 0
    for setting in ("mixed", "cross", "xonly"):
        for lang in ("en", "zh"):
            assert set(report[setting][lang]) == {"R@1", "R@5", "R@10", "MRR@10"}
    # six documents fit in the top 10: every version is found, and a clear topic ranks first
    assert report["mixed"]["en"]["R@1"] == 1.0 and report["mixed"]["zh"]["R@1"] == 1.0
    assert report["both"] == {"en": 1.0, "zh": 1.0}
    assert report["xonly"]["en"]["R@1"] == 1.0 and report["xonly"]["zh"]["R@1"] == 1.0


@pytest.mark.parametrize("mode", ["dense", "sparse"])
def test_eval_table_for_other_modes(tiny_bench, tmp_path, capsys, mode):
    assert main(["eval", str(tiny_bench), "--mode", mode, "--keep-index", str(tmp_path / "idx")]) == 0
    out = capsys.readouterr().out
    assert f"mode {mode}" in out and "both@10" in out and "xonly" in out


def test_eval_rejects_a_folder_that_is_not_a_benchmark(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == ANSWERS[InvalidInput].exit_code
    assert "not a benchmark folder" in capsys.readouterr().err
