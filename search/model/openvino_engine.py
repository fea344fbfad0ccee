"""The OpenVINO runtime: the same checked ONNX export as :mod:`search.model.onnx_engine`, compiled
by OpenVINO's CPU plugin instead of run by onnxruntime. Tokenising, pooling, the Dense layers and
the sentence vectors behind evidence spans are the ONNX engine's; only the forward pass differs.

Why it is the default on a CPU (docs/performance.md): in fp32 it gives ONNX Runtime's vectors
(max abs difference 3e-7) at about 1.2× its speed, and in bf16 on a CPU with bf16 matrix
instructions (AMX, AVX512-BF16) it runs the matrix products on them while keeping vectors at
cosine ≥ 0.9999 of fp32's. Its kernels compute each row alone, so a question's vector does not
depend on the questions batched beside it (torch bf16's moves by up to 2e-3).

Two compiled forms of the one read model, sharing its weights file:

* a lone text runs on one request over all the threads (lowest latency);
* a batch is split into as many parts as there are threads, each part on a single-threaded
  stream of its own. A multi-threaded request waits at every layer for its slowest thread, so
  whenever anything else on the machine takes a core for a moment (the server's own work under
  load), every thread waits; single-threaded streams just run on. Measured on 2 cores with
  another process taking 0.4 of one: batches of 32 at 80.3 questions/s on two streams against
  67.1 on one request (98.7 and 79.7 idle; ``docs/bench/openvino-streams.jsonl``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from search.model.onnx_engine import TOKEN_OUTPUT, OnnxEngine

#: OpenVINO's name of each precision it runs (``INFERENCE_PRECISION_HINT``).
PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"}


class OpenVinoEngine(OnnxEngine):
    """The exported model compiled by OpenVINO for the CPU, in fp32 or bf16."""

    runtime = "openvino"

    def _open(self, model_file: Path) -> None:
        """Compile ``model_file`` for the CPU in the spec's precision, on as many threads as torch uses:
        once for lone texts (one request, every thread) and, with two threads or more, once for
        batches (one single-threaded stream per thread)."""
        import openvino
        import torch

        core, threads = openvino.Core(), torch.get_num_threads()
        model = core.read_model(str(model_file))  # read once: both compiled forms share its weights
        common = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[self.spec.precision], "INFERENCE_NUM_THREADS": threads}
        self.compiled = core.compile_model(model, "CPU", {**common, "PERFORMANCE_HINT": "LATENCY"})
        self.request = self.compiled.create_infer_request()  # one thread owns the engine (search/model/embedder.py)
        self.streams = []
        if threads > 1:
            batches = core.compile_model(model, "CPU", {**common, "NUM_STREAMS": threads})
            self.streams = [batches.create_infer_request() for _ in range(threads)]

    def _infer(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        if not self.streams or len(input_ids) < len(self.streams):  # a lone text: one request, every thread
            return self.request.infer({"input_ids": input_ids, "attention_mask": attention_mask})[TOKEN_OUTPUT]
        parts = [(request, rows, used_columns(attention_mask[rows])) for request, rows
                 in zip(self.streams, balanced_parts(attention_mask.sum(axis=1), len(self.streams)))]
        for request, rows, columns in parts:
            request.start_async({"input_ids": np.ascontiguousarray(input_ids[rows, columns]),
                                 "attention_mask": np.ascontiguousarray(attention_mask[rows, columns])})
        failures = []
        for request, _, _ in parts:  # every part finishes before any failure is raised: no request left running
            try:
                request.wait()
            except Exception as error:  # noqa: BLE001 - raised below, once all have stopped
                failures.append(error)
        if failures:
            raise failures[0]
        tokens = None
        for request, rows, columns in parts:
            part = request.get_tensor(TOKEN_OUTPUT).data
            if tokens is None:
                tokens = np.zeros((*input_ids.shape, part.shape[-1]), dtype=np.float32)
            tokens[rows, columns] = part
        return tokens


def balanced_parts(lengths: np.ndarray, count: int) -> list[np.ndarray]:
    """Row indices in ``count`` non-empty parts of about equal token totals, longest rows first, so
    each part pads little (its rows are of similar length). Needs ``len(lengths) >= count``."""
    order = np.argsort(-lengths, kind="stable")
    totals = np.cumsum(lengths[order])
    cuts = np.searchsorted(totals, totals[-1] * np.arange(1, count) / count).tolist()
    for part in range(count - 1):  # every part keeps at least one row
        cuts[part] = min(max(cuts[part], cuts[part - 1] + 1 if part else 1), len(order) - (count - 1 - part))
    return np.split(order, cuts)


def used_columns(mask: np.ndarray) -> slice:
    """The token positions any row of ``mask`` uses (the padding every row shares cut off)."""
    used = np.flatnonzero(mask.any(axis=0))
    return slice(int(used[0]), int(used[-1]) + 1)
