"""The OpenVINO runtime: the same checked ONNX export as :mod:`search.model.onnx_engine`, compiled
by OpenVINO's CPU plugin instead of run by onnxruntime. Tokenising, pooling, the Dense layers and
the sentence vectors behind evidence spans are the ONNX engine's; only the forward pass differs.

Why it is the default on a CPU (docs/performance.md): in fp32 it gives ONNX Runtime's vectors
(max abs difference 3e-7) at about 1.2× its speed, and in bf16 on a CPU with bf16 matrix
instructions (AMX, AVX512-BF16) it runs the matrix products on them while keeping vectors at
cosine ≥ 0.9999 of fp32's. Its kernels compute each row alone, so a question's vector does not
depend on the questions batched beside it (torch bf16's moves by up to 2e-3).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from search.model.onnx_engine import OnnxEngine

#: OpenVINO's name of each precision it runs (``INFERENCE_PRECISION_HINT``).
PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"}


class OpenVinoEngine(OnnxEngine):
    """The exported model compiled by OpenVINO for the CPU, in fp32 or bf16."""

    runtime = "openvino"

    def _open(self, model_file: Path) -> None:
        """Compile ``model_file`` for the CPU in the spec's precision, on as many threads as torch uses."""
        import openvino
        import torch

        core = openvino.Core()
        self.compiled = core.compile_model(core.read_model(str(model_file)), "CPU", {
            "INFERENCE_PRECISION_HINT": PRECISION_HINTS[self.spec.precision],
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),
            "PERFORMANCE_HINT": "LATENCY",
        })
        self.request = self.compiled.create_infer_request()  # one thread owns the engine (search/model/embedder.py)

    def _infer(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        outputs = self.request.infer({"input_ids": input_ids, "attention_mask": attention_mask})
        return outputs[self.compiled.output("token_embeddings")]
