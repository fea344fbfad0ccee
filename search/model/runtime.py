"""Which runtime and precision run the model, and opening it.

Measured on this project's machine (docs/performance.md): ONNX Runtime fp32 encodes at 0.95–1.2×
torch fp32's speed with the same vectors; torch bf16 on a CPU with bf16 matrix instructions (AMX or
AVX512-BF16) encodes passages 2.25× and ingests 1.8× faster than fp32, with the same hybrid R@10 on
both dev sets (vectors at cosine ≥ 0.998 of fp32's on 1,200-character passages), but a query's bf16
vector moves by up to 2e-3 with the queries batched beside it. So:

* precision ``auto`` (the default) embeds queries in fp32 (a question's vector never depends on
  the questions batched with it) and passages in ``bf16`` on a CPU with bf16 matrix
  instructions (the ingest is where the time goes), else everything in fp32;
* runtime ``auto`` (default): torch for bf16 and on a GPU (ONNX Runtime's CUDA provider is not
  measured here), ONNX Runtime on a CPU. With ``auto`` precision on such a CPU, queries therefore
  run on ONNX Runtime and passages on torch bf16 (:class:`~search.model.engine.SplitEngine`; the
  passage model is loaded on the first passage, so a server that only answers questions never
  loads it).

ONNX needs the model's export (made once beside the local model and checked against torch,
search/model/onnx_engine.py); when the export is missing it is made now, and when it failed its
check the model runs on torch, with one line saying why.

Precision: ``fp32`` everywhere; ``bf16`` for torch; ``int8`` for both (torch: dynamic Linear
layers; ONNX: dynamic quantisation of the export). fp16 is refused: EmbeddingGemma gives wrong
vectors in fp16. An index records nothing about the runtime or precision: vectors of either are
interchangeable (fp32 and bf16 within cosine 0.998).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from search.errors import InvalidInput
from search.model.engine import ModelEngine, ModelSpec, SplitEngine

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
                      flags: frozenset[str] | None = None) -> tuple[str, str, str]:
    """``(query precision, passage precision, why)``. ``auto`` keeps queries in fp32 and embeds
    passages in bf16 on a CPU with bf16 matrix instructions (unless ONNX Runtime is asked for: it
    runs fp32); elsewhere, and for any other value, both sides run the same precision."""
    if precision != "auto":
        return precision, precision, f"precision {precision}"
    if runtime == "onnx":
        return "fp32", "fp32", "precision auto with runtime onnx: fp32"
    if device != "cpu":
        return "fp32", "fp32", f"precision auto on {device}: fp32 (bf16 is not measured on a GPU here)"
    found = sorted(set(BF16_FLAGS) & (cpu_flags() if flags is None else flags))
    if found:
        return "fp32", "bf16", (f"precision auto on a CPU with {' and '.join(found)}: queries fp32, passages bf16 "
                                f"(1.8x fp32's ingest, same hybrid R@10)")
    return "fp32", "fp32", "precision auto on a CPU without bf16 matrix instructions: fp32"


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
    """The model of ``spec``: one engine, or a :class:`SplitEngine` when its passages run another
    precision than its queries (the passage engine then opens on the first passage)."""
    queries = replace(spec, passage_precision=None)
    if spec.passage_precision in (None, spec.precision):
        return open_single_engine(queries)
    passages = replace(queries, precision=spec.passage_precision)
    return SplitEngine(open_single_engine(queries), passages, open_single_engine)


def open_single_engine(spec: ModelSpec) -> ModelEngine:
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
    """What ``bisearch model`` says: what the model will run on and why (queries and passages apart
    when they differ), after making what it needs (the ONNX export and its check; the int8 file
    when int8 is asked for)."""
    from search.model.torch_engine import default_device

    device = device or default_device()
    queries, passages, why = resolve_precision(precision, device, runtime)
    if queries == passages:
        return _side_runtime(model_dir, runtime, queries, device, f"{why}; ")
    return (f"queries {_side_runtime(model_dir, runtime, queries, device)}, "
            f"passages {_side_runtime(model_dir, runtime, passages, device)}; {why}")


def _side_runtime(model_dir: Path, runtime: str, precision: str, device: str, why: str = "") -> str:
    """``runtime precision (why)`` of one side, its ONNX export made and checked when it needs one."""
    from search.model.onnx_engine import ensure_int8

    chosen, reason = choose_runtime(runtime, precision, device)
    if chosen == "torch":
        return f"torch {precision} ({why}{reason})"
    folder, verdict = usable_export(str(model_dir))
    if folder is None:
        return f"torch {precision} ({why}{verdict})"
    if precision == "int8":
        ensure_int8(folder)
    return f"onnx {precision} ({why}{reason}; {verdict})"
