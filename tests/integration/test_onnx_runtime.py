"""The ONNX export and the two runtimes that run it: OpenVINO (the default on a CPU, in bf16 where
the CPU has bf16 matrix instructions) and ONNX Runtime. The export check against torch, the
fall-back to torch, vectors interchangeable with torch's (in an index too) and independent of their
batch, evidence spans pooled from the export's tokens; and which runtime and precision the default
picks.

The export is the one ``bisearch model`` made once beside the model (``make install``): no test
exports again.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from conftest import SEEDS, index_settings
from search.cli import main
from search.model.download import default_model_dir
from search.model.embedder import Embedder
from search.model.runtime import BF16_FLAGS, cpu_flags
from search.model.onnx_engine import (EXPORT_FILE, MAX_ABS_DIFF, MIN_COSINE, PROBE_PASSAGES, ExportCheck,
                                      check_export, export_dir, read_check)
from search.model.torch_engine import default_device
from search.ranking.evidence import stored_evidence
from search.service import open_ingester, open_retriever
from search.settings import Settings

#: The ONNX runtimes run on a CPU only (torch on a GPU).
pytestmark = pytest.mark.skipif(default_device() != "cpu", reason="the onnx runtimes run on a CPU")

QUESTIONS = ["How much faster are Shuibei lead times?", "水贝珠宝的生产周期比全球平均快多少？", "gold price",
             "黄金", "freshwater pearls", "淡水珍珠"]


@pytest.fixture(scope="module")
def failed_check(onnx_embedder, torch_embedder) -> ExportCheck:
    """The real check of an export whose Dense layers were damaged (noise of 1% of their scale)."""
    damaged = copy.copy(onnx_embedder.engine)
    generator = np.random.default_rng(0)
    damaged.layers = [(weight + generator.normal(0, 0.01 * weight.std(), weight.shape).astype(np.float32), bias)
                      for weight, bias in onnx_embedder.engine.layers]
    return torch_embedder.run(lambda: check_export(damaged, torch_embedder.engine))


def _has_bf16_instructions() -> bool:
    return bool(set(BF16_FLAGS) & cpu_flags())


def _cosines(found: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", found, reference)


def test_the_default_is_openvino_in_bf16_where_the_cpu_has_bf16_instructions(embedder, onnx_embedder):
    """The default runs the checked export on OpenVINO, queries and passages in one precision: bf16 on
    a CPU with bf16 matrix instructions, else fp32."""
    expected = "bf16" if _has_bf16_instructions() else "fp32"
    assert (embedder.runtime, embedder.precision, embedder.passage_precision) == ("openvino", expected, expected)
    assert "auto on a CPU: OpenVINO on the ONNX export" in embedder.runtime_reason
    assert onnx_embedder.runtime == "onnx"
    check = read_check(export_dir(default_model_dir(Settings().model_dir)))
    assert check.passed and check.max_abs_diff <= MAX_ABS_DIFF and check.min_cosine >= MIN_COSINE


def test_the_defaults_vectors_stay_close_to_fp32_and_never_depend_on_their_batch(embedder, onnx_embedder):
    """Measured here: OpenVINO bf16 at cosine 0.99991 or more of fp32's on 1,200-character passages;
    the test allows 0.9995 (another CPU's bf16 kernels round differently). A question alone and in
    a batch of others gets the same vector (measured: 8e-8 apart; torch bf16's move by 2e-3)."""
    together = embedder.encode_queries(QUESTIONS)
    alone = np.concatenate([embedder.encode_queries([question]) for question in QUESTIONS])
    np.testing.assert_allclose(alone, together, atol=1e-6)
    assert _cosines(together, onnx_embedder.encode_queries(QUESTIONS)).min() >= 0.9995
    passages = [QUESTIONS[0] + " Lead times are 30% faster.", "深圳的黄金价格在2024年上涨。", PROBE_PASSAGES[-1]]
    ours, reference = embedder.encode_documents(passages), onnx_embedder.encode_documents(passages)
    assert _cosines(ours, reference).min() >= 0.9995
    if embedder.precision == "bf16":
        assert np.abs(ours - reference).max() > 1e-5  # bf16 indeed, not fp32 again


def test_a_batch_on_single_threaded_streams_gets_the_vectors_of_one_request(embedder):
    """With two threads or more, OpenVINO splits a batch across single-threaded streams, each part cut
    to its own longest row; the vectors are those of the whole batch on one request, passages of very
    different lengths included."""
    import torch

    engine = embedder.engine
    if embedder.runtime != "openvino" or torch.get_num_threads() < 2:
        pytest.skip("streams: OpenVINO on two threads or more")
    assert len(engine.streams) == torch.get_num_threads()
    passages = ["黄金。", PROBE_PASSAGES[-1], QUESTIONS[0] + " Lead times are 30% faster.", "gold " * 120]

    def both() -> list[np.ndarray]:
        split = [engine.encode_queries(QUESTIONS), engine.encode_documents(passages, batch_size=4)]
        streams, engine.streams = engine.streams, []
        try:
            return split + [engine.encode_queries(QUESTIONS), engine.encode_documents(passages, batch_size=4)]
        finally:
            engine.streams = streams

    split_queries, split_passages, one_queries, one_passages = embedder.run(both)
    np.testing.assert_allclose(split_queries, one_queries, atol=1e-6)
    np.testing.assert_allclose(split_passages, one_passages, atol=1e-6)


def test_openvino_fp32_gives_onnx_runtimes_vectors(onnx_embedder):
    fp32 = Embedder(runtime="openvino", precision="fp32", query_cache=0)
    try:
        assert (fp32.runtime, fp32.precision) == ("openvino", "fp32")
        np.testing.assert_allclose(fp32.encode_queries(QUESTIONS), onnx_embedder.encode_queries(QUESTIONS), atol=1e-5)
    finally:
        fp32.close()


@pytest.mark.skipif(not _has_bf16_instructions(), reason="auto splits only on a CPU with bf16 matrix instructions")
def test_auto_on_torch_keeps_queries_in_fp32_and_embeds_passages_in_bf16(torch_embedder):
    """On torch a bf16 query vector moves with its batch, so ``auto`` splits: queries on torch fp32,
    passages on torch bf16, loaded for the first passage."""
    split = Embedder(runtime="torch", query_cache=0)
    try:
        assert (split.runtime, split.precision, split.passage_precision) == ("torch", "fp32", "bf16")
        np.testing.assert_allclose(split.encode_queries(QUESTIONS), torch_embedder.encode_queries(QUESTIONS), atol=1e-6)
        passages = [QUESTIONS[0] + " Lead times are 30% faster.", "深圳的黄金价格在2024年上涨。"]
        ours, reference = split.encode_documents(passages), torch_embedder.encode_documents(passages)
        assert _cosines(ours, reference).min() >= 0.9995 and np.abs(ours - reference).max() > 1e-5
        assert split.run(lambda: split.engine.passages.spec.precision) == "bf16"
    finally:
        split.close()


def test_the_export_check_passes_the_export_and_fails_a_damaged_one(onnx_embedder, torch_embedder, failed_check):
    check = torch_embedder.run(lambda: check_export(onnx_embedder.engine, torch_embedder.engine))
    assert check.passed and check.max_abs_diff <= MAX_ABS_DIFF and check.min_cosine >= MIN_COSINE
    assert check.vectors > len(PROBE_PASSAGES)
    assert not failed_check.passed and failed_check.max_abs_diff > MAX_ABS_DIFF
    assert "probe vectors against torch" in failed_check.summary()


def _model_with_failed_export(folder: Path, check: ExportCheck) -> Path:
    """A copy of the default model (links to its files) whose export failed ``check``."""
    source = default_model_dir(Settings().model_dir)
    model_dir = folder / source.name
    for path in source.rglob("*"):
        if path.is_file():
            (model_dir / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            (model_dir / path.relative_to(source)).symlink_to(path)
    exported = export_dir(source)
    target = export_dir(model_dir)
    target.mkdir()
    for path in exported.iterdir():
        if path.name != EXPORT_FILE:
            (target / path.name).symlink_to(path)
    record = json.loads((exported / EXPORT_FILE).read_text(encoding="utf-8"))
    (target / EXPORT_FILE).write_text(json.dumps({**record, "check": asdict(check)}), encoding="utf-8")
    return model_dir


def test_an_export_that_failed_its_check_is_not_used(tmp_path, failed_check, onnx_embedder, caplog, capsys):
    """The model runs on torch, and the commands say so in one line."""
    model_dir = _model_with_failed_export(tmp_path, failed_check)
    assert main(["model", "--dir", str(model_dir), "--runtime", "onnx"]) == 0
    said = capsys.readouterr().out.splitlines()[-1]
    assert said.startswith("runtime: torch fp32 (precision auto with ONNX Runtime: fp32; the ONNX export at")
    assert "failed its check" in said
    assert main(["model", "--dir", str(model_dir)]) == 0  # the default (OpenVINO) falls back the same way
    said = capsys.readouterr().out.splitlines()[-1]
    assert said.startswith("runtime: torch ") and "the ONNX export at" in said and "failed its check" in said
    with caplog.at_level(logging.WARNING, logger="search.model.runtime"):
        fallback = Embedder(model_dir=model_dir, runtime="onnx")
    try:
        assert fallback.runtime == "torch" and "failed its check" in fallback.runtime_reason
        warned = [record.getMessage() for record in caplog.records if record.name == "search.model.runtime"]
        assert len(warned) == 1 and "\n" not in warned[0] and warned[0].endswith("running on torch")
        np.testing.assert_allclose(fallback.encode_queries(QUESTIONS), onnx_embedder.encode_queries(QUESTIONS), atol=1e-5)
    finally:
        fallback.close()


def test_bisearch_model_says_which_runtime_and_why(capsys, embedder):
    assert main(["model"]) == 0
    said = capsys.readouterr().out.splitlines()[-1]
    if _has_bf16_instructions():
        assert said.startswith("runtime: openvino bf16 (precision auto on a CPU with ")
        assert ": bf16 on OpenVINO (vectors at cosine >= 0.9999 of fp32's, batch-independent); " in said
    else:
        assert said.startswith("runtime: openvino fp32 (precision auto on a CPU without bf16 matrix instructions: fp32; ")
    assert "auto on a CPU: OpenVINO on the ONNX export; export " in said and "checked" in said
    assert main(["model", "--runtime", "torch", "--precision", "fp32"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == ("runtime: torch fp32 (precision fp32; "
                                                         "runtime torch asked for)")
    if _has_bf16_instructions():
        assert main(["model", "--runtime", "torch"]) == 0
        said = capsys.readouterr().out.splitlines()[-1]
        assert said.startswith("runtime: queries torch fp32 (runtime torch asked for), passages torch bf16 ")


def _top_hits(retriever, question: str) -> list[tuple[str, int]]:
    return [(hit.passage.doc_id, hit.passage.chunk_no) for hit in retriever.search(question, k=5).hits]


def test_an_index_built_by_one_runtime_is_searched_by_the_other(tmp_path, embedder, onnx_embedder, torch_embedder,
                                                                seed_index_dir, seed_retriever):
    """Nothing in an index names the runtime: the default's index (OpenVINO) searched by torch fp32,
    and torch's by ONNX Runtime and by the default, give the same top hits as the runtime that built it."""
    by_torch = open_retriever(index_settings(seed_index_dir), embedder=torch_embedder)
    for question in QUESTIONS:
        assert _top_hits(by_torch, question) == _top_hits(seed_retriever, question), question
    ingester = open_ingester(index_settings(tmp_path / "torch-index"), embedder=torch_embedder)
    assert ingester.ingest_paths([SEEDS]).count("added") == 2
    torch_index = ingester.backend
    onnx_on_torch_index = open_retriever(index_settings(torch_index.folder), embedder=onnx_embedder)
    torch_on_torch_index = open_retriever(index_settings(torch_index.folder), embedder=torch_embedder)
    default_on_torch_index = open_retriever(index_settings(torch_index.folder), embedder=embedder)
    for question in QUESTIONS:
        assert _top_hits(onnx_on_torch_index, question) == _top_hits(torch_on_torch_index, question), question
        assert _top_hits(default_on_torch_index, question) == _top_hits(torch_on_torch_index, question), question


@pytest.mark.parametrize("runtime", ["onnx_embedder", "embedder"])
def test_evidence_spans_come_from_the_exports_token_embeddings(runtime, request, torch_embedder):
    """On ONNX Runtime and on the default (OpenVINO, bf16 here) the sentence vectors behind evidence
    spans are pooled from the export's token embeddings: torch's spans, vectors close to torch's."""
    embedder = request.getfixturevalue(runtime)
    passage = ("Shuibei is a jewellery district in Shenzhen. Its production lead times are approximately "
               "30% faster than the global average. 深圳的黄金价格在2024年上涨。")
    vectors, sentences = embedder.encode_passages([passage])
    torch_vectors, torch_sentences = torch_embedder.encode_passages([passage])
    assert _cosines(vectors, torch_vectors).min() >= 0.9995
    if embedder.precision == "fp32":
        np.testing.assert_allclose(vectors, torch_vectors, atol=1e-5)
    found, expected = sentences[0], torch_sentences[0]
    assert np.array_equal(found.spans, expected.spans) and len(found.spans) == 3
    tolerance = 2e-3 if embedder.precision == "fp32" else 5e-3  # float16 sentence vectors; bf16 adds its rounding
    np.testing.assert_allclose(found.vectors.astype(np.float32), expected.vectors.astype(np.float32), atol=tolerance)
    for question in ("How much faster are Shuibei's lead times?", "水贝珠宝的生产周期比全球平均快多少？"):
        start, end = stored_evidence(found, embedder.encode_query(question), 0)[0]
        assert "30% faster" in passage[start:end], question


def test_a_runtime_that_cannot_compile_the_export_runs_on_torch_fp32(monkeypatch, caplog, onnx_embedder):
    """OpenVINO refuses to compile the export in bf16 when oneDNN is capped below bf16's instructions
    (``ONEDNN_MAX_CPU_ISA=AVX2``: "Supported primitive descriptors list is empty for node: …
    Softmax"): the model then runs on torch fp32, and says why in one line."""
    from search.model.openvino_engine import OpenVinoEngine

    def refuse(self, model_file):
        raise RuntimeError("Exception from src/inference/src/cpp/core.cpp:117:\n"
                           "Supported primitive descriptors list is empty for node: node_Softmax_312 type: Softmax\n")

    monkeypatch.setattr(OpenVinoEngine, "_open", refuse)
    with caplog.at_level(logging.WARNING, logger="search.model.runtime"):
        fallback = Embedder(runtime="openvino", precision="bf16", query_cache=0)
    try:
        assert fallback.runtime == "torch"
        assert "openvino bf16 cannot run the export here (Supported primitive descriptors" in fallback.runtime_reason
        warned = [record.getMessage() for record in caplog.records if record.name == "search.model.runtime"]
        assert len(warned) == 1 and "\n" not in warned[0] and warned[0].endswith("running on torch fp32")
        # fp32's vectors (torch bf16's would be ~1e-3 away)
        np.testing.assert_allclose(fallback.encode_queries(QUESTIONS), onnx_embedder.encode_queries(QUESTIONS), atol=1e-5)
    finally:
        fallback.close()
