"""The ONNX Runtime runtime: the model's transformer exported with torch's own exporter, run by
``onnxruntime``; mean pooling, the layers after it (EmbeddingGemma: two Dense layers) and the
normalisation in numpy.

The export is made once from the verified local weights into a folder beside the model,
``<model dir>.onnx``, through a staging folder and a rename, and checked there against torch on
a fixed probe set (:data:`PROBE_QUERIES`, :data:`PROBE_PASSAGES`: English, Chinese and mixed):
every vector within :data:`MAX_ABS_DIFF` of torch's and at cosine :data:`MIN_COSINE` or more.
The check's result is kept in the folder (``export.json``); an export that failed it is never
used (search/model/runtime.py runs torch instead and says so).

The graph's output is the token embeddings, not only the pooled vector: the sentence vectors
behind evidence spans are pooled from them (:meth:`ModelEngine.sentence_vectors`).

The folder holds ``model.onnx`` (+ ``model.onnx.data``, the weights), ``projection.npz`` (the
Dense layers' weights), ``export.json`` (prompts, limits, the check) and, once int8 is asked
for, ``model.int8.onnx`` (dynamic quantisation with ``onnxruntime.quantization``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from search.errors import Unavailable
from search.model.engine import ModelEngine, ModelSpec, max_seq_length_for, model_info
from search.model.torch_engine import TorchEngine
from search.types import SentenceVectors, truncate

log = logging.getLogger(__name__)

#: The export's output: every token's embedding, pooled outside the graph (evidence spans need them).
TOKEN_OUTPUT = "token_embeddings"
MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
PROJECTION_FILE = "projection.npz"
EXPORT_FILE = "export.json"
#: What an export must match torch by, on every probe vector.
MAX_ABS_DIFF = 1e-4
MIN_COSINE = 0.9999

#: The fixed probe set: queries (with the query prompt) and passages (with the document prompt),
#: English, Chinese and mixed, of different lengths (padding), one longer than the passage limit
#: (truncation), and lone queries (batch 1).
PROBE_QUERIES = [
    "How do I build a Debian package from source?",
    "如何从源代码构建 Debian 软件包？",
    "dpkg-buildpackage 的 -us -uc 选项是什么意思",
    "gold",
    "水贝",
    "Why does lintian warn about a missing copyright file? 为什么 lintian 会警告？",
]
PROBE_PASSAGES = [
    "The maintainer scripts run as root during installation; postinst configures the package after it is unpacked.",
    "维护者脚本在安装期间以 root 身份运行；postinst 在软件包解包之后对其进行配置。",
    "用 dpkg-buildpackage 构建 the package，然后用 dput 上传到 archive。Check it with lintian first.",
    "短句。",
    ("Shuibei is a jewellery district in Shenzhen. Its production lead times are approximately 30% faster "
     "than the global average. 深圳的黄金价格在2024年上涨。 ") * 12,
]


class ExportError(Unavailable):
    """The model cannot be exported (not Transformer → mean Pooling → Dense… → Normalize)."""


@dataclass(frozen=True)
class ExportCheck:
    """How the export compared with torch on the probe set."""

    passed: bool
    max_abs_diff: float | None = None
    min_cosine: float | None = None
    vectors: int = 0
    failure: str | None = None  # why no comparison could be made (the export failed)

    def summary(self) -> str:
        """One line: what was compared and against which limits."""
        if self.failure:
            return f"the export failed: {self.failure}"
        return (f"{self.vectors} probe vectors against torch: max abs diff {self.max_abs_diff:.1e} "
                f"(limit {MAX_ABS_DIFF:.0e}), min cosine {self.min_cosine:.7f} (limit {MIN_COSINE})")


def export_dir(model_dir: Path) -> Path:
    """Where the ONNX export of the local model ``model_dir`` lives: beside it."""
    return model_dir.with_name(f"{model_dir.name}.onnx")


def read_check(folder: Path) -> ExportCheck | None:
    """The check recorded in an export folder (None when there is no finished export)."""
    try:
        return ExportCheck(**json.loads((folder / EXPORT_FILE).read_text(encoding="utf-8"))["check"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ensure_export(model_dir: Path) -> tuple[Path, ExportCheck]:
    """The export folder of ``model_dir`` and its check, exporting and checking once when missing.

    The export is made and checked in a staging folder, then renamed into place: a process that
    stops half-way leaves no export behind, and two processes exporting at once both end up
    with one finished folder.
    """
    target = export_dir(Path(model_dir))
    check = read_check(target)
    if check is not None:
        return target, check
    log.warning("exporting the model to ONNX once (a few minutes): %s", target)
    staging = target.with_name(f".{target.name}.staging-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        reference = TorchEngine(ModelSpec(Path(model_dir).name, str(model_dir), "torch", device="cpu"))
        try:
            exported = export_model(reference.model, reference.model_limit, staging)
        except Exception as error:  # an exporter failure is recorded, so commands run on torch
            exported, check = {}, ExportCheck(False, failure=f"{type(error).__name__}: {error}".splitlines()[0][:300])
        else:
            (staging / EXPORT_FILE).write_text(json.dumps(exported), encoding="utf-8")  # what the engine loads
            candidate = OnnxEngine(replace(reference.spec, runtime="onnx"), staging, tokenizer=reference.tokenizer)
            check = check_export(candidate, reference)
            del candidate, reference  # free both models before the caller loads its own
        (staging / EXPORT_FILE).write_text(json.dumps({**exported, "check": asdict(check)}, ensure_ascii=False,
                                                      indent=2) + "\n", encoding="utf-8")
        if target.exists() and read_check(target) is None:  # left by an older version (optimum's export)
            shutil.rmtree(target)
        try:
            os.replace(staging, target)
        except OSError:  # another process finished first: use its export
            if read_check(target) is None:
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target, read_check(target)


def export_model(model, model_limit: int | None, folder: Path) -> dict[str, object]:
    """Export a loaded fp32 SentenceTransformer into ``folder``: the transformer as ONNX (token
    embeddings out; dynamic batch and sequence axes), the Dense layers after pooling as matrices.
    Returns what the ONNX engine needs besides (prompts, the model's token limit, vector size)."""
    import torch

    transformer, projection = _parts(model)

    class TokenEmbeddings(torch.nn.Module):
        """The transformer with plain tensors in and out: token embeddings ``(batch, sequence, hidden)``."""

        def __init__(self):
            super().__init__()
            self.transformer = transformer.auto_model

        def forward(self, input_ids, attention_mask):
            return self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    example = model.tokenizer(["title: none | text: an example passage", "例子"], padding=True, return_tensors="pt")
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    with torch.no_grad(), _exporter_quiet():
        torch.onnx.export(TokenEmbeddings().eval(), (example["input_ids"], example["attention_mask"]),
                          str(folder / MODEL_FILE), dynamo=True, external_data=True, optimize=True, verbose=False,
                          input_names=["input_ids", "attention_mask"], output_names=[TOKEN_OUTPUT],
                          dynamic_shapes={"input_ids": {0: batch, 1: sequence},
                                          "attention_mask": {0: batch, 1: sequence}})
    layers = {}
    for number, dense in enumerate(projection):
        layers[f"weight_{number}"] = dense.linear.weight.detach().float().cpu().numpy()
        if dense.linear.bias is not None:
            layers[f"bias_{number}"] = dense.linear.bias.detach().float().cpu().numpy()
    np.savez(folder / PROJECTION_FILE, **layers)
    return {"exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}",
            "prompts": dict(model.prompts), "max_seq_length": int(model_limit or 512),
            "dimension": int(model.get_embedding_dimension()), "layers": len(projection)}


@contextmanager
def _exporter_quiet() -> Iterator[None]:
    """The exporter's progress lines, warnings and notes (missing torchvision ops) kept off the terminal."""
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        exporter_log.setLevel(level)


def _parts(model) -> tuple[object, list]:
    """The transformer and the Dense layers after its mean pooling; ExportError for any other shape."""
    import torch

    modules = list(model)
    names = [type(module).__name__ for module in modules]
    if names[:2] != ["Transformer", "Pooling"] or any(name not in ("Dense", "Normalize") for name in names[2:]):
        raise ExportError(f"only Transformer → Pooling → Dense… → Normalize models are exported, not {names}")
    pooling = modules[1]
    mode = getattr(pooling, "pooling_mode", None)
    mean = mode in ("mean", ("mean",)) or getattr(pooling, "pooling_mode_mean_tokens", False) is True
    if not mean or getattr(pooling, "include_prompt", True) is not True:
        raise ExportError("only mean pooling over every token (prompt included) is exported")
    dense = [module for module in modules[2:] if type(module).__name__ == "Dense"]
    if any(not isinstance(module.activation_function, torch.nn.Identity) for module in dense):
        raise ExportError("only Dense layers without an activation are exported")
    return modules[0], dense


def check_export(candidate: ModelEngine, reference: ModelEngine) -> ExportCheck:
    """Compare ``candidate`` (the export, on ONNX) with ``reference`` (the same model on torch, at
    the same size) on the probe set: lone queries, a query batch, and passages in batches."""
    pairs = [(candidate.encode_queries(PROBE_QUERIES), reference.encode_queries(PROBE_QUERIES)),
             (candidate.encode_documents(PROBE_PASSAGES, 4), reference.encode_documents(PROBE_PASSAGES, 4))]
    pairs += [(candidate.encode_queries([query]), reference.encode_queries([query])) for query in PROBE_QUERIES[:2]]
    got, want = (np.concatenate(side) for side in zip(*pairs))
    max_abs_diff = float(np.abs(got - want).max())
    min_cosine = float(np.einsum("ij,ij->i", got, want).min())
    return ExportCheck(max_abs_diff <= MAX_ABS_DIFF and min_cosine >= MIN_COSINE, max_abs_diff, min_cosine, len(got))


def ensure_int8(folder: Path) -> Path:
    """The dynamically quantised int8 model of an export folder (made once, then reused)."""
    target = folder / INT8_FILE
    if not target.is_file():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        log.warning("quantising the ONNX export to int8 once: %s", target)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".int8-") as work:
            staging = Path(work) / INT8_FILE
            quantize_dynamic(folder / MODEL_FILE, staging, weight_type=QuantType.QInt8)
            os.replace(staging, target)
    return target


class OnnxEngine(ModelEngine):
    """The exported model on onnxruntime's CPU provider."""

    runtime = "onnx"

    def __init__(self, spec: ModelSpec, folder: Path, reason: str = "onnx asked for", tokenizer=None):
        exported = json.loads((folder / EXPORT_FILE).read_text(encoding="utf-8"))
        self.max_seq_length = max_seq_length_for(exported["max_seq_length"], spec)
        self.tokenizer = tokenizer if tokenizer is not None else _load_tokenizer(spec.location)
        self.spec, self.reason = spec, reason
        with np.load(folder / PROJECTION_FILE) as layers:
            self.layers = [(layers[f"weight_{n}"], layers.get(f"bias_{n}")) for n in range(exported["layers"])]
        full = int(exported["dimension"])
        self.info = model_info(spec.name, min(spec.dimension or full, full), exported["prompts"])
        self._open(ensure_int8(folder) if spec.precision == "int8" else folder / MODEL_FILE)

    def _open(self, model_file: Path) -> None:
        """Load ``model_file`` into this runtime (here: an onnxruntime CPU session)."""
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(model_file), _session_options(),
                                                    providers=["CPUExecutionProvider"])

    def _infer(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """The graph's token embeddings for one padded batch."""
        return self.session.run([TOKEN_OUTPUT], {"input_ids": input_ids, "attention_mask": attention_mask})[0]

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._vectors(*self._token_embeddings([self.info.query_prompt + text for text in texts]))

    def encode_documents(self, texts: list[str], batch_size: int, prompts: list[str] | None = None) -> np.ndarray:
        """Passage vectors, longest first in batches of ``batch_size`` (less padding), in the callers' order."""
        inputs = [prompt + text for prompt, text in zip(self.document_prompts(texts, prompts), texts)]
        order = sorted(range(len(inputs)), key=lambda row: -len(inputs[row]))
        vectors = np.zeros((len(inputs), self.info.dimension), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            vectors[rows] = self._vectors(*self._token_embeddings([inputs[row] for row in rows]))
        return vectors

    def encode_with_sentences(self, texts: list[str], prompts: list[str] | None = None,
                              ) -> tuple[np.ndarray, list[SentenceVectors | None]]:
        prompts = self.document_prompts(texts, prompts)
        tokens, mask = self._token_embeddings([prompt + text for prompt, text in zip(prompts, texts)])
        sentences = [self.sentence_vectors(text, row[row_mask.astype(bool)], prompt)
                     for text, prompt, row, row_mask in zip(texts, prompts, tokens, mask)]
        return self._vectors(tokens, mask), sentences

    def project(self, pooled: np.ndarray) -> np.ndarray:
        for weight, bias in self.layers:
            pooled = pooled @ weight.T
            if bias is not None:
                pooled = pooled + bias
        return pooled

    def _token_embeddings(self, inputs: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """One forward pass over prompted texts: ``(batch, sequence, hidden)`` token embeddings and the
        attention mask."""
        batch = self.tokenizer(inputs, padding=True, truncation=True,
                               max_length=self.max_seq_length, return_tensors="np")
        mask = batch["attention_mask"].astype(np.int64)
        return self._infer(batch["input_ids"].astype(np.int64), mask), mask

    def _vectors(self, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean pooling over the real tokens, the projection, Matryoshka truncation, unit length."""
        weights = mask.astype(np.float32)
        pooled = np.einsum("bth,bt->bh", tokens, weights) / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
        return truncate(self.project(pooled), self.info.dimension)


def _session_options():
    """As many threads as torch uses (one knob for both runtimes; a Ray actor sets it per actor)."""
    import onnxruntime
    import torch

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: no warnings about unused initialisers
    return options


def _load_tokenizer(location: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(location, local_files_only=Path(location).is_dir())
