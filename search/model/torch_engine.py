"""The torch runtime: the model as sentence-transformers loads it (the reference the ONNX export is
checked against; the default on a GPU), at fp32, bf16 (GPU) or int8 (dynamic Linear layers)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from search.model.download import ModelError
from search.model.engine import ModelEngine, ModelSpec, max_seq_length_for, model_info
from search.types import SentenceVectors, truncate


def default_device() -> str:
    """cuda when torch sees a GPU, else cpu."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_torch_model(location: str, precision: str = "fp32", device: str | None = None):
    """A SentenceTransformer for ``location`` (a local folder, never a hub, when it is one)."""
    from sentence_transformers import SentenceTransformer

    kwargs = {}
    if precision == "bf16":
        import torch

        kwargs["model_kwargs"] = {"torch_dtype": torch.bfloat16}
    try:
        model = SentenceTransformer(location, device=device, local_files_only=Path(location).is_dir(), **kwargs)
    except (OSError, ValueError) as error:  # a folder or id that holds no loadable model
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:500]
        raise ModelError(f"cannot load the model {location!r} (--model / BISEARCH_MODEL): {reason}") from error
    return quantize_int8(model) if precision == "int8" else model


class TorchEngine(ModelEngine):
    """The model on torch, through sentence-transformers."""

    runtime = "torch"

    def __init__(self, spec: ModelSpec, reason: str = "torch asked for"):
        self.model = load_torch_model(spec.location, spec.precision, spec.device or default_device())
        self.model_limit = self.model.max_seq_length  # the model's own token limit
        self.model.max_seq_length = max_seq_length_for(self.model.max_seq_length, spec)
        self.max_seq_length = self.model.max_seq_length
        self.tokenizer = self.model.tokenizer
        self.spec, self.reason = spec, reason
        self.slices = CoreSlices(self.model) if self.model.device.type == "cpu" else None
        self.projection = _projection_after_pooling(self.model)
        full = int(self.model.get_embedding_dimension())
        self.info = model_info(spec.name, min(spec.dimension or full, full), self.model.prompts)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """A batch of queries in one model call, or one per core for a big batch on a CPU."""
        vectors = self.slices.encode(self._encode_queries_now, texts) if self.slices else self._encode_queries_now(texts)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _encode_queries_now(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.info.query_prompt, len(texts))

    def encode_documents(self, texts: list[str], batch_size: int, prompts: list[str] | None = None) -> np.ndarray:
        if prompts is None:
            return self._encode(texts, self.info.document_prompt, batch_size)
        # the pooling includes the prompt's tokens, so a prompt written into the text is the same input
        return self._encode([prompt + text for prompt, text in zip(prompts, texts)], None, batch_size)

    def _encode(self, texts: list[str], prompt: str | None, batch_size: int) -> np.ndarray:
        vectors = self.model.encode(texts, prompt=prompt, batch_size=batch_size, convert_to_numpy=True,
                                    show_progress_bar=False)
        return truncate(vectors, self.info.dimension)

    def encode_with_sentences(self, texts: list[str], prompts: list[str] | None = None,
                              ) -> tuple[np.ndarray, list[SentenceVectors | None]]:
        prompts = self.document_prompts(texts, prompts)
        outputs = self.model.encode([prompt + text for prompt, text in zip(prompts, texts)], prompt=None,
                                    batch_size=len(texts), output_value=None, convert_to_numpy=False,
                                    show_progress_bar=False)
        vectors = truncate(np.stack([output["sentence_embedding"].float().cpu().numpy() for output in outputs]),
                           self.info.dimension)
        sentences = [self.sentence_vectors(text, output["token_embeddings"][output["attention_mask"].bool()]
                                           .float().cpu().numpy(), prompt)
                     for text, prompt, output in zip(texts, prompts, outputs)]
        return vectors, sentences

    def project(self, pooled: np.ndarray) -> np.ndarray | None:
        if self.projection is None:  # not a mean-pooled model: no sentence vectors to pool
            return None
        import torch

        parameter = next(self.model.parameters())
        with torch.inference_mode():
            features = {"sentence_embedding": torch.from_numpy(pooled).to(parameter.device, parameter.dtype)}
            for module in self.projection:
                features = module(features)
        return features["sentence_embedding"].float().cpu().numpy()


def _projection_after_pooling(model) -> list | None:
    """The modules between mean pooling and normalisation (EmbeddingGemma: two Dense layers), or
    None when the model is not Transformer → mean Pooling → … (sentence vectors cannot be pooled)."""
    names = [type(module).__name__ for module in model]
    if "Pooling" not in names:
        return None
    pooling = model[names.index("Pooling")]
    mode = getattr(pooling, "pooling_mode", None)  # sentence-transformers 6; 5 has pooling_mode_mean_tokens
    if not (mode in ("mean", ("mean",)) or getattr(pooling, "pooling_mode_mean_tokens", False) is True):
        return None
    return [module for module in list(model)[names.index("Pooling") + 1:] if type(module).__name__ != "Normalize"]


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
