"""Which runtime and precision run the model, and opening it.

Measured on this project's machine (docs/performance.md): ONNX Runtime fp32 encodes at 0.9–1.0×
torch fp32's speed with the same vectors; torch bf16 on a CPU with bf16 matrix instructions (AMX or
AVX512-BF16) encodes passages 2.6× and batches of queries 2.3× faster than fp32, with the same
R@10 on maintguide (vectors at cosine ≥ 0.9999 of fp32's), but a query's bf16 vector moves by up
to 2e-3 with the queries batched beside it. So:

* precision ``fp32`` by default; ``auto`` (opt-in) is ``bf16`` on a CPU with bf16 matrix
  instructions, else ``fp32``: worth it for a large ingest;
* runtime ``auto`` (default): torch for bf16 and on a GPU (ONNX Runtime's CUDA provider is not
  measured here), ONNX Runtime on a CPU.

ONNX needs the model's export (made once beside the local model and checked against torch,
search/model/onnx_engine.py); when the export is missing it is made now, and when it failed its
check the model runs on torch, with one line saying why.

Precision: ``fp32`` everywhere; ``bf16`` for torch; ``int8`` for both (torch: dynamic Linear
layers; ONNX: dynamic quantisation of the export). fp16 is refused: EmbeddingGemma gives wrong
vectors in fp16. An index records nothing about the runtime or precision: vectors of either are
interchangeable (fp32 and bf16 within cosine 0.9999).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from search.errors import InvalidInput
from search.model.engine import ModelEngine, ModelSpec

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "onnx")
PRECISIONS = ("auto", "fp32", "bf16", "int8")
#: CPU flags of bf16 matrix instructions (Linux /proc/cpuinfo names): torch bf16 runs fast with either.
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags (empty where /proc/cpuinfo cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    return frozenset(next((line.split(":", 1)[1].split() for line in text.splitlines()
                           if line.startswith("flags")), []))


def resolve_precision(precision: str, device: str, runtime: str = "auto",
                      flags: frozenset[str] | None = None) -> tuple[str, str]:
    """``(fp32, bf16 or int8, why)``: ``auto`` is bf16 on a CPU with bf16 matrix instructions (unless
    ONNX Runtime is asked for: it runs fp32), else fp32."""
    if precision != "auto":
        return precision, f"precision {precision}"
    if runtime == "onnx":
        return "fp32", "auto with runtime onnx: fp32"
    if device != "cpu":
        return "fp32", f"auto on {device}: fp32 (bf16 is not measured on a GPU here)"
    found = sorted(set(BF16_FLAGS) & (cpu_flags() if flags is None else flags))
    if found:
        return "bf16", f"auto on a CPU with {' and '.join(found)}: bf16 (2.6x fp32's ingest, same R@10)"
    return "fp32", "auto on a CPU without bf16 matrix instructions: fp32"


def check_choice(runtime: str, precision: str) -> None:
    """Refuse combinations that do not exist or give wrong vectors."""
    if precision in ("fp16", "float16", "half"):
        raise InvalidInput("fp16 gives wrong EmbeddingGemma vectors; use fp32 or bf16")
    if runtime not in RUNTIMES:
        raise InvalidInput(f"runtime must be one of {', '.join(RUNTIMES)}")
    if precision not in PRECISIONS:
        raise InvalidInput(f"precision must be one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and runtime == "onnx":
        raise InvalidInput("bf16 is a torch precision; ONNX runs fp32 or int8")


def choose_runtime(runtime: str, precision: str, device: str) -> tuple[str, str]:
    """``(torch or onnx, why)`` for the settings' runtime and resolved precision (see
    :func:`resolve_precision`) on ``device``, before any export is looked at."""
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
    return "onnx", "auto on a CPU: ONNX Runtime (same vectors as torch)"


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

    device = device or default_device()
    precision, why = resolve_precision(precision, device, runtime)
    chosen, reason = choose_runtime(runtime, precision, device)
    if chosen == "torch":
        return f"torch {precision} ({why}; {reason})"
    folder, verdict = usable_export(str(model_dir))
    if folder is None:
        return f"torch ({verdict})"
    if precision == "int8":
        ensure_int8(folder)
    return f"onnx {precision} ({why}; {reason}; {verdict})"
