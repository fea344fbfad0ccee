"""Runtime/precision choices, torch's core slices and the bench JSON shape (no model)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from benchmark import RATIOS, sent_sample, with_ratios
from loadtest import distinct_queries, run_load
from search.model.onnx_engine import export_dir
from search.model.openvino_engine import balanced_parts, used_columns
from search.model.engine import ModelEngine, ModelSpec, SplitEngine
from search.model.runtime import check_choice, choose_runtime, resolve_precision
from search.settings import Settings


@pytest.mark.parametrize("precision", ["fp16", "float16", "half"])
def test_fp16_is_refused(precision):
    with pytest.raises(ValueError, match="fp16"):
        check_choice("torch", precision)


def test_choices():
    for runtime, precision in [("torch", "fp32"), ("torch", "bf16"), ("torch", "int8"), ("onnx", "fp32"),
                               ("onnx", "int8"), ("openvino", "fp32"), ("openvino", "bf16"), ("auto", "fp32"),
                               ("auto", "bf16")]:
        check_choice(runtime, precision)
    with pytest.raises(ValueError, match="bf16"):
        check_choice("onnx", "bf16")
    with pytest.raises(ValueError, match="int8"):
        check_choice("openvino", "int8")
    with pytest.raises(ValueError, match="runtime"):
        check_choice("tensorrt", "fp32")


def test_auto_is_openvino_on_a_cpu_onnx_runtime_for_int8_and_torch_on_a_gpu():
    assert choose_runtime("auto", "fp32", "cpu")[0] == "openvino"
    assert choose_runtime("auto", "bf16", "cpu")[0] == "openvino"
    assert choose_runtime("auto", "int8", "cpu")[0] == "onnx"
    runtime, reason = choose_runtime("auto", "fp32", "cuda")
    assert runtime == "torch" and "GPU" in reason
    assert choose_runtime("torch", "fp32", "cpu") == ("torch", "runtime torch asked for")
    for exported in ("onnx", "openvino"):
        with pytest.raises(ValueError, match="CPU"):
            choose_runtime(exported, "fp32", "cuda")


def test_without_openvino_auto_falls_back_to_onnx_runtime_in_fp32(monkeypatch):
    import search.model.runtime

    monkeypatch.setattr(search.model.runtime, "openvino_installed", lambda: False)
    assert choose_runtime("auto", "fp32", "cpu")[0] == "onnx"
    assert resolve_precision("auto", "cpu", flags=frozenset({"amx_bf16"}))[:2] == ("fp32", "fp32")
    with pytest.raises(ValueError, match="openvino package"):
        check_choice("openvino", "fp32")


def test_export_lives_beside_the_model(tmp_path):
    assert export_dir(tmp_path / "embeddinggemma-300m") == tmp_path / "embeddinggemma-300m.onnx"


def test_settings_from_environment(monkeypatch):
    assert (Settings().runtime, Settings().precision) == ("auto", "auto")
    monkeypatch.setenv("BISEARCH_RUNTIME", "torch")
    monkeypatch.setenv("BISEARCH_PRECISION", "int8")
    settings = Settings()
    assert (settings.runtime, settings.precision) == ("torch", "int8")
    assert settings.search_threads >= settings.query_batch  # or batches could never fill


def test_bench_json_has_every_ratio_null_until_measured():
    results = with_ratios({"query": {"p50_ratio": 1.1}, "throughput": {"ratio": 0.9}})
    assert list(results)[:4] == list(RATIOS)
    assert results["query_p50_ratio"] == 1.1 and results["throughput_ratio"] == 0.9
    assert results["ingest_ratio"] is None and results["write_ratio"] is None


def test_load_test_never_repeats_a_query():
    sent = list(itertools.islice(distinct_queries(("a", "b")), 7))
    assert len(set(sent)) == 7 and sent[:2] == ["a", "b"]


def test_load_test_refuses_an_empty_question_list():
    import asyncio

    with pytest.raises(ValueError, match="at least one query"):
        asyncio.run(run_load("http://127.0.0.1:9", 1, 0.1, queries=()))


def test_bare_rates_run_on_the_mix_of_texts_the_load_sent():
    """After one pass the load numbers its texts (longer ones): the bare sample holds them in the
    same share, spread evenly, in the order sent."""
    sent = list(itertools.islice(distinct_queries(("a", "b", "c", "d")), 40))
    sample = sent_sample(["a", "b", "c", "d"], 40, 10)
    assert len(sample) == 10 and sample[0] == "a" and sample[-1] == sent[-1]
    assert [sent.index(text) for text in sample] == sorted(sent.index(text) for text in sample)
    assert sum(text in "abcd" for text in sample) == 1  # 4 of 40 sent were first-pass texts
    assert len(set(sent_sample(["a", "b"], 3, 8))) == 8  # fewer sent than sampled: distinct texts still


@pytest.mark.parametrize("cores", [1, 2])
def test_core_slices_split_big_batches_across_threads_and_keep_order(cores):
    """The thread count is set here, so every assert runs on any machine (one core included)."""
    import threading

    import numpy as np
    import torch

    from search.model.torch_engine import MIN_SLICED_BATCH, CoreSlices

    class Model:
        def preprocess(self, texts):
            return texts

    threads_seen: list[str] = []

    def encode(texts: list[str]) -> np.ndarray:
        threads_seen.append(threading.current_thread().name)
        return np.array([[len(text), torch.get_num_threads()] for text in texts], dtype=np.float32)

    before = torch.get_num_threads()
    torch.set_num_threads(cores)
    try:
        slices = CoreSlices(Model())
        small = ["a" * n for n in range(MIN_SLICED_BATCH - 1)]
        assert slices.encode(encode, small)[:, 1].tolist() == [cores] * len(small)  # a small batch: every core at once
        big = ["b" * n for n in range(3 * MIN_SLICED_BATCH)]
        vectors = slices.encode(encode, big)
        assert vectors[:, 0].tolist() == [len(text) for text in big]  # rows in the callers' order
        if cores == 1:
            assert slices.pool is None and vectors[:, 1].tolist() == [1] * len(big)  # one call on the one core
            assert len(threads_seen) == 2
        else:
            assert set(vectors[:, 1].tolist()) == {1}  # each slice single-threaded
            assert len(threads_seen[1:]) == len(set(threads_seen[1:])) == cores  # one slice per core, each on its own thread
        assert torch.get_num_threads() == cores  # restored for the next lone query
    finally:
        torch.set_num_threads(before)


class RecordingEngine(ModelEngine):
    """An engine that says which precision answered (no model)."""

    def __init__(self, spec: ModelSpec):
        self.spec, self.info, self.tokenizer, self.max_seq_length = spec, None, None, 64
        self.runtime, self.reason = "fake", f"fake {spec.precision}"
        self.closed = False

    def encode_queries(self, texts):
        return [("query", self.spec.precision, text) for text in texts]

    def encode_documents(self, texts, batch_size, prompts=None):
        return [("passage", self.spec.precision, text) for text in texts]

    def encode_with_sentences(self, texts, prompts=None):
        return self.encode_documents(texts, len(texts), prompts), [None] * len(texts)

    def close(self):
        self.closed = True


def test_a_split_engine_answers_queries_on_one_engine_and_loads_the_other_for_the_first_passage():
    opened: list[RecordingEngine] = []

    def open_one(spec: ModelSpec) -> RecordingEngine:
        opened.append(RecordingEngine(spec))
        return opened[-1]

    spec = ModelSpec("m", "here", precision="fp32")
    split = SplitEngine(open_one(spec), replace(spec, precision="bf16"), open_one)
    assert split.encode_queries(["q"]) == [("query", "fp32", "q")] and len(opened) == 1  # passages not loaded
    assert "passages: bf16, loaded for the first passage" in split.reason
    assert split.encode_documents(["p"], 8) == [("passage", "bf16", "p")]
    assert split.encode_with_sentences(["s"])[0] == [("passage", "bf16", "s")]
    assert len(opened) == 2  # loaded once
    split.close()
    assert all(engine.closed for engine in opened)


def test_auto_precision_is_bf16_only_on_a_cpu_with_bf16_matrix_instructions_and_splits_on_torch():
    amx = frozenset({"avx2", "amx_bf16"})
    assert resolve_precision("auto", "cpu", flags=amx)[:2] == ("bf16", "bf16")  # OpenVINO: batch-independent
    assert resolve_precision("auto", "cpu", "openvino", amx)[:2] == ("bf16", "bf16")
    assert resolve_precision("auto", "cpu", "torch", amx)[:2] == ("fp32", "bf16")  # torch bf16 queries move with their batch
    assert resolve_precision("auto", "cpu", flags=frozenset({"avx2", "fma"}))[:2] == ("fp32", "fp32")
    assert resolve_precision("auto", "cpu", "torch", frozenset({"avx2", "fma"}))[:2] == ("fp32", "fp32")
    assert resolve_precision("auto", "cpu", "onnx", amx)[:2] == ("fp32", "fp32")
    assert resolve_precision("auto", "cuda", flags=amx)[:2] == ("fp32", "fp32")
    for precision in ("fp32", "bf16", "int8"):
        assert resolve_precision(precision, "cpu", flags=amx)[:2] == (precision, precision)


@pytest.mark.parametrize("lengths, count", [([5, 3, 9, 1], 2), ([1, 1], 2), ([10] + [1] * 11, 3), ([100, 1, 1, 1], 3),
                                            ([7] * 5, 5), (list(range(1, 33)), 2), ([2, 2, 2, 50, 2], 4)])
def test_balanced_parts_split_a_batch_into_non_empty_parts_of_similar_rows(lengths, count):
    parts = balanced_parts(np.array(lengths), count)
    assert len(parts) == count and all(len(part) for part in parts)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(lengths)))  # every row once
    longest = [max(lengths[row] for row in part) for part in parts]
    assert longest == sorted(longest, reverse=True)  # longest rows first: each part pads little


def test_balanced_parts_even_out_the_tokens():
    parts = balanced_parts(np.array(list(range(1, 33))), 2)
    totals = [sum(row + 1 for row in part) for part in parts]
    assert abs(totals[0] - totals[1]) <= 32


def test_used_columns_cut_the_padding_every_row_shares():
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])
    assert used_columns(mask) == slice(0, 3)
    assert used_columns(mask[1:]) == slice(0, 2)
