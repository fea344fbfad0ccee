"""Which runtime runs the model, and opening it: ONNX Runtime on a CPU, torch on a GPU.

``auto`` (the default) picks ONNX Runtime on a CPU, where it encodes about twice as fast as
torch with the same vectors (docs/performance.md), and torch on a GPU (ONNX Runtime's CUDA
provider has not been measured against torch bf16 here). ONNX needs the model's export (made
once beside the local model and checked against torch, search/model/onnx_engine.py); when the
export is missing it is made now, and when it failed its check the model runs on torch, with
one line saying why.

Precision: ``fp32`` everywhere; ``bf16`` for torch (meant for a GPU); ``int8`` for both (torch:
dynamic Linear layers; ONNX: dynamic quantisation of the export). fp16 is refused:
EmbeddingGemma gives wrong vectors in fp16. An index records nothing about the runtime: the
vectors of either are interchangeable.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from search.errors import InvalidInput
from search.model.engine import ModelEngine, ModelSpec

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "onnx")
PRECISIONS = ("fp32", "bf16", "int8")


def check_choice(runtime: str, precision: str) -> None:
    """Refuse combinations that do not exist or give wrong vectors."""
    if precision in ("fp16", "float16", "half"):
        raise InvalidInput("fp16 gives wrong EmbeddingGemma vectors; use fp32 or bf16")
    if runtime not in RUNTIMES:
        raise InvalidInput(f"runtime must be one of {', '.join(RUNTIMES)}")
    if precision not in PRECISIONS:
        raise InvalidInput(f"precision must be one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and runtime == "onnx":
        raise InvalidInput("bf16 is a torch precision (GPU); ONNX runs fp32 or int8")


def choose_runtime(runtime: str, precision: str, device: str) -> tuple[str, str]:
    """``(torch or onnx, why)`` for the settings' runtime on ``device``, before any export is looked at."""
    check_choice(runtime, precision)
    on_gpu = device != "cpu"
    if runtime == "onnx" and on_gpu:
        raise InvalidInput(f"the onnx runtime runs on the CPU (onnxruntime's CPU build), not on {device}: "
                         f"use runtime torch or auto there")
    if runtime != "auto":
        return runtime, f"runtime {runtime} asked for"
    if on_gpu:
        return "torch", f"auto on a GPU ({device}): torch (ONNX Runtime's CUDA provider is not measured here)"
    if precision == "bf16":
        return "torch", "auto with bf16: torch (ONNX runs fp32 or int8)"
    return "onnx", "auto on a CPU: ONNX Runtime (about twice torch's speed, same vectors)"


def open_engine(spec: ModelSpec) -> ModelEngine:
    """The model of ``spec`` on the runtime chosen for it (on torch when the ONNX export cannot be used)."""
    from search.model.torch_engine import TorchEngine, default_device

    device = spec.device or default_device()
    runtime, reason = choose_runtime(spec.runtime, spec.precision, device)
    spec = replace(spec, device=device)
    if runtime == "onnx":
        folder, verdict = usable_export(spec.location)
        if folder is not None:
            from search.model.onnx_engine import OnnxEngine

            return OnnxEngine(spec, folder, reason)
        log.warning("%s: running on torch", verdict)
        reason = verdict
    return TorchEngine(replace(spec, runtime="torch"), reason)


def usable_export(location: str) -> tuple[Path | None, str]:
    """The ONNX export of the local model at ``location`` (exported and checked first when missing)
    with its check in one line, or ``(None, why it cannot be used)``."""
    from search.model.onnx_engine import ensure_export

    if not Path(location).is_dir():
        return None, f"the ONNX runtime needs a local model folder, not {location!r}"
    folder, check = ensure_export(Path(location))
    if not check.passed:
        return None, f"the ONNX export at {folder} failed its check ({check.summary()}; remove it to export again)"
    return folder, f"export {folder} checked: {check.summary()}"


def model_runtime(model_dir: Path, runtime: str, precision: str, device: str | None) -> str:
    """What ``bisearch model`` says: the runtime the model will run on and why, after making
    what it needs (the ONNX export and its check; the int8 file when int8 is asked for)."""
    from search.model.onnx_engine import ensure_int8
    from search.model.torch_engine import default_device

    chosen, reason = choose_runtime(runtime, precision, device or default_device())
    if chosen == "torch":
        return f"torch ({reason})"
    folder, verdict = usable_export(str(model_dir))
    if folder is None:
        return f"torch ({verdict})"
    if precision == "int8":
        ensure_int8(folder)
    return f"onnx {precision} ({reason}; {verdict})"
