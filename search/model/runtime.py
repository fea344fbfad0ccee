"""Which runtime and precision run the model, and opening it.

Measured on this project's machine (docs/performance.md): on a CPU with bf16 matrix instructions
(AMX or AVX512-BF16), OpenVINO running the checked ONNX export in bf16 encodes queries 2.2–2.9× and
passages 1.8–3× as fast as torch fp32 (AVX512-BF16 the lower figures, AMX the higher), with
vectors at cosine ≥ 0.9999 of fp32's and no dependence on the batch; in fp32 it gives ONNX
Runtime's vectors at about 1.2× its speed. Torch bf16 is slower and a query's vector moves by up
to 2e-3 with the queries batched beside it. So:

* runtime ``auto`` (the default): OpenVINO on a CPU (ONNX Runtime for ``int8``, or when OpenVINO
  is not installed), torch on a GPU (neither ONNX runtime's GPU build is measured here);
* precision ``auto`` (the default): ``bf16`` on a CPU with bf16 matrix instructions and OpenVINO,
  else ``fp32``. Asked to run on torch, ``auto`` keeps queries in fp32 (batch-independent) and
  embeds passages in bf16 (:class:`~search.model.engine.SplitEngine`; the passage model is loaded
  on the first passage, so a server that only answers questions never loads it).

Both ONNX runtimes need the model's export (made once beside the local model and checked against
torch, search/model/onnx_engine.py); when the export is missing it is made now, and when it
failed its check the model runs on torch, with one line saying why.

Precision: ``fp32`` everywhere; ``bf16`` on OpenVINO and torch; ``int8`` on ONNX Runtime (dynamic
quantisation of the export) and torch (dynamic Linear layers). fp16 is refused: EmbeddingGemma
gives wrong vectors in fp16. An index records nothing about the runtime or precision: vectors of
either are interchangeable (fp32 and bf16 within cosine 0.998).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path

from search.errors import InvalidInput
from search.model.engine import ModelEngine, ModelSpec, SplitEngine

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "onnx", "openvino")
#: The runtimes that run the ONNX export.
EXPORT_RUNTIMES = ("onnx", "openvino")
PRECISIONS = ("auto", "fp32", "bf16", "int8")
#: CPU flags of bf16 matrix instructions (Linux /proc/cpuinfo names): bf16 runs fast with either.
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
    """``(query precision, passage precision, why)``. ``auto`` is bf16 on a CPU with bf16 matrix
    instructions, on OpenVINO for both sides and on torch for passages only (torch's bf16 query
    vectors depend on their batch); fp32 elsewhere. Any other value runs on both sides."""
    if precision != "auto":
        return precision, precision, f"precision {precision}"
    if device != "cpu":
        return "fp32", "fp32", f"precision auto on {device}: fp32 (bf16 is not measured on a GPU here)"
    if runtime == "onnx" or (runtime == "auto" and not openvino_installed()):
        return "fp32", "fp32", "precision auto with ONNX Runtime: fp32"
    found = sorted(set(BF16_FLAGS) & (cpu_flags() if flags is None else flags))
    if not found:
        return "fp32", "fp32", "precision auto on a CPU without bf16 matrix instructions: fp32"
    if runtime == "torch":
        return "fp32", "bf16", (f"precision auto on torch on a CPU with {' and '.join(found)}: queries fp32 "
                                f"(batch-independent), passages bf16 (1.8x fp32's ingest, same hybrid R@10)")
    return "bf16", "bf16", (f"precision auto on a CPU with {' and '.join(found)}: bf16 on OpenVINO "
                            f"(vectors at cosine >= 0.9999 of fp32's, batch-independent)")


def openvino_installed() -> bool:
    """Whether the ``openvino`` package can be imported (a main dependency; a platform without its
    wheels has none)."""
    return find_spec("openvino") is not None


def check_choice(runtime: str, precision: str) -> None:
    """Refuse combinations that do not exist or give wrong vectors."""
    if precision in ("fp16", "float16", "half"):
        raise InvalidInput("fp16 gives wrong EmbeddingGemma vectors; use fp32 or bf16")
    if runtime not in RUNTIMES:
        raise InvalidInput(f"runtime must be one of {', '.join(RUNTIMES)}")
    if precision not in PRECISIONS:
        raise InvalidInput(f"precision must be one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and runtime == "onnx":
        raise InvalidInput("ONNX Runtime runs fp32 or int8; bf16 runs on openvino or torch")
    if precision == "int8" and runtime == "openvino":
        raise InvalidInput("int8 runs on onnx or torch; openvino runs fp32 or bf16")
    if runtime == "openvino" and not openvino_installed():
        raise InvalidInput("the openvino runtime needs the openvino package (pip install openvino)")


def choose_runtime(runtime: str, precision: str, device: str) -> tuple[str, str]:
    """``(torch, onnx or openvino, why)`` for the settings' runtime and resolved precision (see
    :func:`resolve_precision`) on ``device``, before any export is looked at."""
    check_choice(runtime, precision)
    on_gpu = device != "cpu"
    if runtime in EXPORT_RUNTIMES and on_gpu:
        raise InvalidInput(f"the {runtime} runtime runs on the CPU, not on {device}: use runtime torch or auto there")
    if runtime != "auto":
        return runtime, f"runtime {runtime} asked for"
    if on_gpu:
        return "torch", f"auto on a GPU ({device}): torch (the ONNX runtimes' GPU builds are not measured here)"
    if precision == "int8":
        return "onnx", "auto with int8: ONNX Runtime (dynamic int8 of the export)"
    if not openvino_installed():
        return "onnx", "auto on a CPU without openvino installed: ONNX Runtime (same vectors as torch)"
    return "openvino", "auto on a CPU: OpenVINO on the ONNX export"


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
    if runtime in EXPORT_RUNTIMES:
        folder, verdict = usable_export(spec.location)
        if folder is not None:
            from search.model.onnx_engine import OnnxEngine
            from search.model.openvino_engine import OpenVinoEngine

            engine = OpenVinoEngine if runtime == "openvino" else OnnxEngine
            try:
                return engine(replace(spec, runtime=runtime), folder, reason)
            except RuntimeError as error:  # the runtime cannot compile the export on this CPU (or as capped)
                reason = f"{runtime} {spec.precision} cannot run the export here ({_cause(error)})"
                log.warning("%s: running on torch fp32", reason)
                return TorchEngine(replace(spec, runtime="torch", precision="fp32"), reason)
        log.warning("%s: running on torch", verdict)
        reason = verdict
    return TorchEngine(replace(spec, runtime="torch"), reason)


def _cause(error: Exception) -> str:
    """The last non-empty line of a runtime's (often multi-line) error, at most 200 characters: the cause."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:200]


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
    return f"{chosen} {precision} ({why}{reason}; {verdict})"
