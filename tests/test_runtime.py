"""Runtime/precision choices and the bench JSON shape (no model)."""

from __future__ import annotations

import itertools

import pytest

from search.benchmark import RATIOS, with_ratios
from search.loadtest import distinct_queries
from search.runtime import check_choice, export_dir, int8_file
from search.settings import Settings


@pytest.mark.parametrize("precision", ["fp16", "float16", "half"])
def test_fp16_is_refused(precision):
    with pytest.raises(ValueError, match="fp16"):
        check_choice("torch", precision)


def test_choices():
    for runtime, precision in [("torch", "fp32"), ("torch", "bf16"), ("torch", "int8"), ("onnx", "fp32"),
                               ("onnx", "int8"), ("openvino", "fp32")]:
        check_choice(runtime, precision)
    with pytest.raises(ValueError, match="bf16"):
        check_choice("onnx", "bf16")
    with pytest.raises(ValueError, match="runtime"):
        check_choice("tensorrt", "fp32")


def test_export_lives_beside_the_model(tmp_path):
    assert export_dir(tmp_path / "embeddinggemma-300m", "onnx") == tmp_path / "embeddinggemma-300m.onnx"
    assert int8_file("onnx").startswith("onnx/model_qint8_")


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("BISEARCH_RUNTIME", "onnx")
    monkeypatch.setenv("BISEARCH_PRECISION", "int8")
    settings = Settings()
    assert (settings.runtime, settings.precision) == ("onnx", "int8")
    assert settings.search_threads >= settings.query_batch  # or batches could never fill


def test_bench_json_has_every_ratio_null_until_measured():
    results = with_ratios({"query": {"p50_ratio": 1.1}, "throughput": {"ratio": 0.9}})
    assert list(results)[:4] == list(RATIOS)
    assert results["query_p50_ratio"] == 1.1 and results["throughput_ratio"] == 0.9
    assert results["ingest_ratio"] is None and results["write_ratio"] is None


def test_load_test_never_repeats_a_query():
    sent = list(itertools.islice(distinct_queries(("a", "b")), 7))
    assert len(set(sent)) == 7 and sent[:2] == ["a", "b"]
