"""How the model runs: torch (default), ONNX Runtime or OpenVINO, and at which precision.

The ONNX / OpenVINO copies are exported once from the verified local weights (never a
hub) into a folder beside the model, ``<model dir>.onnx`` / ``<model dir>.openvino``,
through a staging folder and a rename, so an interrupted export leaves nothing half-made.
int8 adds a dynamically quantised file to the same folder.

Precision: ``fp32`` everywhere; ``bf16`` for torch (meant for a GPU); ``int8`` for torch
(dynamic Linear layers) and ONNX (dynamic quantisation). OpenVINO goes through the same
sentence-transformers export path but has not been measured here.
fp16 is refused: EmbeddingGemma gives wrong vectors in fp16.

ONNX / OpenVINO need ``optimum-onnx[onnxruntime]`` / ``optimum-intel[openvino]``
(sentence-transformers loads them through optimum), which today pin transformers < 4.58:
install them in their own environment (see README).
"""

from __future__ import annotations

import os
import platform
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from search.errors import InvalidInput

RUNTIMES = ("torch", "onnx", "openvino")
PRECISIONS = ("fp32", "bf16", "int8")


def check_choice(runtime: str, precision: str) -> None:
    """Refuse combinations that do not exist or give wrong vectors."""
    if precision in ("fp16", "float16", "half"):
        raise InvalidInput("fp16 gives wrong EmbeddingGemma vectors; use fp32 or bf16")
    if runtime not in RUNTIMES:
        raise InvalidInput(f"runtime must be one of {', '.join(RUNTIMES)}")
    if precision not in PRECISIONS:
        raise InvalidInput(f"precision must be one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and runtime != "torch":
        raise InvalidInput("bf16 is a torch precision (GPU); ONNX and OpenVINO run fp32 or int8")


def onnx_quantization_config() -> str:
    """The dynamic int8 flavour this CPU runs best."""
    if platform.machine().lower() in ("arm64", "aarch64"):
        return "arm64"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    return "avx512_vnni" if "avx512_vnni" in flags else "avx512" if "avx512f" in flags else "avx2"


def int8_file(runtime: str) -> str:
    """The quantised model file inside an export folder (ONNX only)."""
    return f"onnx/model_qint8_{onnx_quantization_config()}.onnx"


def export_dir(model_dir: Path, runtime: str) -> Path:
    return model_dir.with_name(f"{model_dir.name}.{runtime}")


def ensure_export(model_dir: Path, runtime: str, int8: bool = False) -> Path:
    """The export of the local model ``model_dir`` for ``runtime`` (made once, then reused)."""
    from sentence_transformers import SentenceTransformer

    target = export_dir(Path(model_dir), runtime)
    if not (target / "modules.json").is_file():
        staging = target.with_name(target.name + ".staging")
        shutil.rmtree(staging, ignore_errors=True)
        model = SentenceTransformer(str(model_dir), backend=runtime, device="cpu", local_files_only=True,
                                    model_kwargs={"export": True})  # from the local weights, never a hub
        model.save_pretrained(str(staging))
        os.replace(staging, target)
    if int8 and not (target / int8_file(runtime)).is_file():
        _quantize(target, runtime)
    return target


def _quantize(target: Path, runtime: str) -> None:
    from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

    if runtime != "onnx":
        raise InvalidInput("int8 is measured for the onnx runtime only; openvino runs fp32 here")
    model = SentenceTransformer(str(target), backend=runtime, device="cpu")
    export_dynamic_quantized_onnx_model(model, onnx_quantization_config(), str(target))


def load_model(location: str, runtime: str = "torch", precision: str = "fp32", device: str | None = None,
               truncate_dim: int | None = None):
    """A SentenceTransformer for ``location`` on the chosen runtime and precision."""
    from sentence_transformers import SentenceTransformer

    check_choice(runtime, precision)
    if runtime == "torch":
        kwargs = {}
        if precision == "bf16":
            import torch

            kwargs["model_kwargs"] = {"torch_dtype": torch.bfloat16}
        model = SentenceTransformer(location, device=device, truncate_dim=truncate_dim,
                                    local_files_only=Path(location).is_dir(), **kwargs)
        if precision == "int8":
            model = quantize_int8(model)
        return model
    source = Path(location)
    if not source.is_dir():
        raise InvalidInput(f"the {runtime} runtime needs a local model folder, not {location!r}")
    folder = ensure_export(source, runtime, int8=precision == "int8")
    kwargs = {"file_name": int8_file(runtime)} if precision == "int8" else {}
    return SentenceTransformer(str(folder), backend=runtime, device="cpu", truncate_dim=truncate_dim,
                               model_kwargs=kwargs)


#: Query batches at least this big are sliced across the cores (see :class:`CoreSlices`).
MIN_SLICED_BATCH = 8


def _single_threaded() -> None:
    """A slice thread's torch runs one thread: it starts no OpenMP team of its own."""
    import torch

    torch.get_num_threads()  # torch's per-thread init happens now, not later with the global count
    torch.set_num_threads(1)


class CoreSlices:
    """Big batches run as one single-threaded slice per core instead of one batch on all cores.

    A torch model on a CPU with ``n`` threads waits at a barrier after every operation for
    the slowest thread: when anything else needs a core for a moment (the server handling
    requests, the load generator) every operation waits. Independent slices lose only the
    time taken from them. Measured on 2 cores with 10% of the machine busy elsewhere: batch-32
    queries/s 31.5 → 35.7. A small batch (a lone query) still uses every core at once.

    Call :meth:`encode` from the model thread only. The model's ``preprocess`` (tokenising)
    is serialised, as a tokenizer keeps padding state between calls; forward passes run in
    parallel, reading the same weights.
    """

    def __init__(self, model, min_batch: int = MIN_SLICED_BATCH):
        import torch

        self.threads = torch.get_num_threads()
        self.min_batch = min_batch
        self.pool = (ThreadPoolExecutor(self.threads - 1, thread_name_prefix="bisearch-model-slice",
                                        initializer=_single_threaded) if self.threads > 1 else None)
        lock, preprocess = threading.Lock(), model.preprocess

        def serialised_preprocess(*args, **kwargs):
            with lock:
                return preprocess(*args, **kwargs)

        model.preprocess = serialised_preprocess

    def encode(self, encode: Callable[[list[str]], np.ndarray], texts: list[str]) -> np.ndarray:
        """``encode(texts)``, sliced across the cores when the batch is big enough."""
        if self.pool is None or len(texts) < self.min_batch:
            return encode(texts)
        import torch

        bounds = np.linspace(0, len(texts), self.threads + 1).astype(int)
        torch.set_num_threads(1)
        try:
            others = [self.pool.submit(encode, texts[a:b]) for a, b in zip(bounds[1:-1], bounds[2:])]
            first = encode(texts[:bounds[1]])
            return np.concatenate([first, *(future.result() for future in others)])
        finally:
            torch.set_num_threads(self.threads)


def quantize_int8(model):
    """Dynamic int8 quantisation of the model's Linear layers (CPU inference)."""
    import torch
    from torch.ao.quantization import quantize_dynamic

    return quantize_dynamic(model.to("cpu"), {torch.nn.Linear}, dtype=torch.qint8)
