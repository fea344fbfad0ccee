"""Precision variants of the ONNX export against its fp32 vectors on ONNX Runtime (issue 24: can
int8 be the default? how close is OpenVINO's bf16?). A tool, not the product.

    python docs/bench/tools/int8_variants.py OUT_DIR fp32 dynamic-per-channel keep-down-fp32 weight-only-8bit ...

Each variant is quantised from the checked export (``bisearch model``) into ``OUT_DIR`` once, then
measured in this process against the fp32 export on 64 maintguide questions (one batch, and 16 of
them alone) and 24 maintguide passages (first 1,200 characters): min / mean cosine and max abs
difference of the unit vectors, how far a question alone is from the same question in the batch
(``batch_dependence``, max abs), and queries/s at batch 1 and 32 and passages/s (one pass each;
compare rows of one run only). Variants:

* ``dynamic-per-tensor``: ``quantize_dynamic``, int8 weights per tensor (what ``--int8`` runs);
* ``dynamic-per-channel``: the same, weights per output channel;
* ``keep-down-fp32``: per channel, every MLP down projection left in fp32 (its input has the
  largest activation outliers);
* ``weight-only-8bit`` / ``weight-only-4bit``: ``MatMulNBits`` (blocks of 32, symmetric,
  ``accuracy_level`` 4: int8 activations per block);
* ``openvino-fp32`` / ``openvino-bf16``: the export itself on OpenVINO (the default runtime on a
  CPU; bf16 where the CPU has bf16 matrix instructions).
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from search.model.download import default_model_dir  # noqa: E402
from search.model.engine import ModelSpec  # noqa: E402
from search.model.onnx_engine import MODEL_FILE, OnnxEngine, _session_options, export_dir  # noqa: E402
from search.model.openvino_engine import OpenVinoEngine  # noqa: E402

BENCH = ROOT.parent / "shared" / "bench" / "maintguide"
#: Linear layers per decoder layer, in the export's node order: q, k, v, o, gate, up, down.
DOWN = 6
PER_LAYER = 7


def linear_node(number: int) -> str:
    """The export's name of its ``number``-th Linear node."""
    return "node_linear" if number == 0 else f"node_linear_{number}"


def quantise(variant: str, source: Path, target: Path, layers: int = 24) -> None:
    """Write ``variant`` of ``source`` to ``target`` (see the module docstring)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if variant.startswith("dynamic") or variant == "keep-down-fp32":
        excluded = [linear_node(PER_LAYER * layer + DOWN) for layer in range(layers)] if variant == "keep-down-fp32" else []
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=variant != "dynamic-per-tensor",
                         op_types_to_quantize=["MatMul"], nodes_to_exclude=excluded)
        return
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    bits = {"weight-only-8bit": 8, "weight-only-4bit": 4}[variant]
    config = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, accuracy_level=4, bits=bits)
    quantizer = MatMulNBitsQuantizer(onnx.load(source), bits=bits, block_size=32, is_symmetric=True,
                                     accuracy_level=4, algo_config=config)
    quantizer.process()
    quantizer.model.save_model_to_file(str(target), use_external_data_format=True)


def workload() -> tuple[list[str], list[str]]:
    questions = [json.loads(line)["text"] for line in (BENCH / "queries.jsonl").read_text(encoding="utf-8").splitlines()][:64]
    passages = [Path(name).read_text(encoding="utf-8")[:1200] for name in sorted(glob.glob(str(BENCH / "docs/*/*")))[:24]]
    return questions, passages


def vectors(engine: OnnxEngine, questions: list[str], passages: list[str]) -> np.ndarray:
    alone = [engine.encode_queries([question]) for question in questions[:16]]
    return np.concatenate([engine.encode_queries(questions), *alone, engine.encode_documents(passages, 16)])


def rates(engine: OnnxEngine, questions: list[str], passages: list[str]) -> dict[str, float]:
    found = {}
    for batch in (1, 32):
        started = time.perf_counter()
        for start in range(0, len(questions), batch):
            engine.encode_queries(questions[start:start + batch])
        found[f"queries_per_s_b{batch}"] = round(len(questions) / (time.perf_counter() - started), 1)
    started = time.perf_counter()
    engine.encode_documents(passages, 16)
    found["passages_per_s"] = round(len(passages) / (time.perf_counter() - started), 2)
    return found


def main() -> None:
    import onnxruntime

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("variants", nargs="+")
    args = parser.parse_args()
    model_dir = default_model_dir()
    folder = export_dir(model_dir)
    engine = OnnxEngine(ModelSpec("model", str(model_dir), runtime="onnx"), folder)
    questions, passages = workload()
    reference = vectors(engine, questions, passages)
    args.out.mkdir(parents=True, exist_ok=True)
    for variant in args.variants:
        measured = engine
        if variant.startswith("openvino-"):
            measured = OpenVinoEngine(ModelSpec("model", str(model_dir), runtime="openvino",
                                                precision=variant.removeprefix("openvino-")), folder)
        elif variant != "fp32":
            target = args.out / f"{variant}.onnx"
            if not target.is_file():
                quantise(variant, folder / MODEL_FILE, target)
            engine.session = onnxruntime.InferenceSession(str(target), _session_options(),
                                                          providers=["CPUExecutionProvider"])
        found = vectors(measured, questions, passages)
        cosines = np.einsum("ij,ij->i", found, reference)
        alone, in_batch = found[len(questions):len(questions) + 16], found[:16]
        print(json.dumps({"variant": variant, "min_cosine": round(float(cosines.min()), 5),
                          "mean_cosine": round(float(cosines.mean()), 5),
                          "max_abs_diff": round(float(np.abs(found - reference).max()), 4),
                          "batch_dependence": float(f"{np.abs(alone - in_batch).max():.1e}"),
                          **rates(measured, questions, passages)}), flush=True)


if __name__ == "__main__":
    main()
