"""Sentence-transformers embeddings with the model's own query/document prompts."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import numpy as np
from tqdm import tqdm

from search.batching import DEFAULT_CACHE_SIZE, DEFAULT_GATHER_MS, DEFAULT_MAX_BATCH, QueryBatcher
from search.evidence import SENTENCE_DIMENSION, SentenceVectors, sentence_spans, truncate
from search.runtime import CoreSlices
from search.model_store import DEFAULT_MODEL_NAME, default_model_dir, ensure_model
from search.types import ModelInfo

T = TypeVar("T")

#: Room left for the document prompt ("title: none | text: ") and special tokens.
PROMPT_MARGIN_TOKENS = 32


def resolve_model(model: str, model_dir: Path | None = None) -> tuple[str, str]:
    """Map a model choice to ``(name recorded in the index, path or id to load)``.

    The default model is assembled offline (into ``model_dir`` or the user cache).
    """
    if model == DEFAULT_MODEL_NAME:
        return DEFAULT_MODEL_NAME, str(ensure_model(default_model_dir(model_dir)))
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve().name, str(path.resolve())
    return model, model


def load_tokenizer(model: str = DEFAULT_MODEL_NAME, model_dir: Path | None = None):
    """The model's tokenizer alone, from the same folder the :class:`Embedder` loads (what the
    chunker needs where no model runs: the CPU workers of a Ray ingest)."""
    from transformers import AutoTokenizer

    _, location = resolve_model(model, model_dir)
    return AutoTokenizer.from_pretrained(location, local_files_only=Path(location).is_dir())


def _prompt(model, names: tuple[str, ...]) -> str:
    for name in names:
        if name in model.prompts:
            return model.prompts[name]
    return ""


@dataclass(frozen=True)
class ModelSpec:
    """What to load: everything a model process needs to load the same model (picklable)."""

    name: str  # recorded in the index
    location: str  # folder or id to load
    runtime: str = "torch"
    precision: str = "fp32"
    device: str | None = None
    dimension: int | None = None
    max_tokens: int = 256


class ModelEngine:
    """The loaded model and every call into it. It lives where the model does: on the
    Embedder's model thread, or alone in a model process (see search/model_process.py)."""

    def __init__(self, spec: ModelSpec):
        from search.runtime import load_model  # heavy imports, done lazily

        self.model = load_model(spec.location, spec.runtime, spec.precision,
                                device=spec.device or _default_device(), truncate_dim=spec.dimension)
        self.model.max_seq_length = min(self.model.max_seq_length or 512, spec.max_tokens + PROMPT_MARGIN_TOKENS)
        self.slices = (CoreSlices(self.model) if spec.runtime == "torch" and self.model.device.type == "cpu"
                       else None)
        self.info = ModelInfo(
            name=spec.name,
            dimension=int(self.model.get_embedding_dimension()),
            query_prompt=_prompt(self.model, ("query", "Retrieval-query")),
            document_prompt=_prompt(self.model, ("document", "Retrieval-document")),
        )

    def describe(self) -> tuple[ModelInfo, int, object]:
        """``(info, max_seq_length, a copy of the tokenizer)``: what callers need without the model."""
        return self.info, int(self.model.max_seq_length), copy.deepcopy(self.model.tokenizer)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """A batch of queries in one model call, or one per core for a big batch on a CPU."""
        vectors = self.slices.encode(self._encode_queries_now, texts) if self.slices else self._encode_queries_now(texts)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _encode_queries_now(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, prompt=self.info.query_prompt, batch_size=len(texts),
                                 normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)

    def encode_documents(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Passage vectors of one batch."""
        return self.model.encode(texts, prompt=self.info.document_prompt, batch_size=batch_size,
                                 normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)

    def encode_with_sentences(self, texts: list[str]) -> tuple[np.ndarray, list[SentenceVectors | None]]:
        """One model call: passage vectors and pooled sentence vectors."""
        import torch

        outputs = self.model.encode(texts, prompt=self.info.document_prompt, batch_size=len(texts),
                                    output_value=None, convert_to_numpy=False, show_progress_bar=False)
        vectors = np.stack([_unit(output["sentence_embedding"].float().cpu().numpy()[:self.info.dimension])
                            for output in outputs])
        projection = _projection_after_pooling(self.model)
        if projection is None:  # not a mean-pooled model: no sentence vectors to pool
            return vectors, [None] * len(texts)
        with torch.inference_mode():
            sentences = [self._pooled_sentences(text, output, projection) for text, output in zip(texts, outputs)]
        return vectors, sentences

    def _pooled_sentences(self, text: str, output: dict, projection: list) -> SentenceVectors | None:
        """Each sentence's tokens averaged (as the model pools a passage) and sent through ``projection``."""
        import torch

        tokens = output["token_embeddings"][output["attention_mask"].bool()]
        found = sentence_token_masks(self.model.tokenizer, self.info.document_prompt, text,
                                     self.model.max_seq_length, len(tokens))
        if not found:
            return None
        features = {"sentence_embedding": torch.stack([tokens[torch.from_numpy(mask)].mean(dim=0)
                                                       for _, mask in found])}
        for module in projection:
            features = module(features)
        sentence_vectors = truncate(features["sentence_embedding"].float().cpu().numpy(),
                                    min(SENTENCE_DIMENSION, self.info.dimension))
        return SentenceVectors(np.array([span for span, _ in found], dtype=np.int32),
                               sentence_vectors.astype(np.float16))

    def close(self) -> None:
        """Nothing to release in-process (the model process stops its own)."""


class Embedder:
    """Encode queries and passages into L2-normalised float32 vectors."""

    def __init__(self, model: str = DEFAULT_MODEL_NAME, device: str | None = None, max_tokens: int = 256,
                 dimension: int | None = None, quantize: bool = False, *, model_dir: Path | None = None,
                 runtime: str = "torch", precision: str = "fp32", query_batch: int = DEFAULT_MAX_BATCH,
                 query_gather_ms: float = DEFAULT_GATHER_MS, query_cache: int = DEFAULT_CACHE_SIZE,
                 model_process: bool = False):
        """``dimension`` truncates Matryoshka vectors (e.g. 256 of 768); ``quantize`` uses int8 Linear layers
        (the same as ``precision="int8"``). ``runtime`` is torch, onnx or openvino (see search/runtime.py);
        ``precision`` fp32, bf16 (torch, for a GPU) or int8; fp16 is refused.

        Queries go through one :class:`QueryBatcher` thread: concurrent queries share one
        model call (at most ``query_batch`` of them), a lone query is encoded at once.
        ``model_process`` loads the model in a process of its own (the server's choice: see
        search/model_process.py); ``model`` is then not available here.
        """
        from search.runtime import check_choice

        precision = "int8" if quantize else precision
        check_choice(runtime, precision)
        name, location = resolve_model(model, model_dir)
        spec = ModelSpec(name, location, runtime, precision, device, dimension, max_tokens)
        self.runtime, self.precision = runtime, precision
        # One thread owns the model: it loads it, encodes every query batch and every document
        # batch (see search/batching.py for why a second torch thread costs ~20%).
        self.batcher = QueryBatcher(self._encode_query_batch, max_batch=query_batch, gather_ms=query_gather_ms,
                                    cache_size=query_cache, max_tokens=query_batch * 64,
                                    count_tokens=self._query_tokens)
        self.engine: ModelEngine | None = None
        try:
            self.engine = self._start_engine(spec, model_process)
            # The model's own tokenizer is used where the model is only: it keeps padding state that a
            # call from another thread (token counts, the chunker) would flip mid-batch. Other threads
            # share a copy that is never asked to pad or truncate, so its state never changes.
            self.info, self.max_seq_length, self.tokenizer = self.run(self.engine.describe)
        except BaseException:
            self.close()
            raise
        self._prompt_tokens = len(self.tokenizer(self.info.query_prompt)["input_ids"])

    def _start_engine(self, spec: ModelSpec, model_process: bool):
        if model_process:
            from search.model_process import EngineProcess

            return EngineProcess(spec)
        return self.batcher.run(lambda: ModelEngine(spec))

    @property
    def model(self):
        """The loaded SentenceTransformer (in-process only; call it through :meth:`run`)."""
        if not isinstance(self.engine, ModelEngine):
            raise RuntimeError("the model runs in its own process: use the Embedder's methods")
        return self.engine.model

    def run(self, task: Callable[[], T]) -> T:
        """Run ``task`` (anything that calls the model) on the model's own thread."""
        return self.batcher.run(task)

    def close(self) -> None:
        """Stop the model thread (and the model process)."""
        self.batcher.close()
        if self.engine is not None:
            self.engine.close()

    def encode_documents(self, texts: list[str], batch_size: int = 16, progress: bool = False) -> np.ndarray:
        """Passage vectors, shape ``(len(texts), dimension)``."""
        vectors = np.zeros((len(texts), self.info.dimension), dtype=np.float32)
        for rows in self._batches(texts, batch_size, progress):
            vectors[rows] = self.run(lambda: self.engine.encode_documents([texts[row] for row in rows], batch_size))
        return vectors

    def encode_passages(self, texts: list[str], batch_size: int = 16,
                        progress: bool = False) -> tuple[np.ndarray, list[SentenceVectors | None]]:
        """Passage vectors (as :meth:`encode_documents`) and, from the same forward pass, a vector
        per sentence: the passage's token embeddings averaged over the sentence and projected like
        the passage's. No extra model call; a passage whose tokens cannot be aligned gets None."""
        vectors = np.zeros((len(texts), self.info.dimension), dtype=np.float32)
        sentences: list[SentenceVectors | None] = [None] * len(texts)
        for rows in self._batches(texts, batch_size, progress):
            batch_vectors, batch_sentences = self.run(lambda: self.engine.encode_with_sentences([texts[r] for r in rows]))
            vectors[rows] = batch_vectors
            for row, found in zip(rows, batch_sentences):
                sentences[row] = found
        return vectors, sentences

    @staticmethod
    def _batches(texts: list[str], batch_size: int, progress: bool) -> Iterator[list[int]]:
        """Row numbers in batches, longest texts first (as sentence-transformers orders them), so
        each batch is one call on the model thread and queries arriving meanwhile wait one batch."""
        order = sorted(range(len(texts)), key=lambda row: -len(texts[row]))
        for start in tqdm(range(0, len(order), batch_size), desc="embedding", unit="batch", disable=not progress):
            yield order[start:start + batch_size]

    def encode_query(self, text: str) -> np.ndarray:
        """One query vector, shape ``(dimension,)`` (read-only; it may be shared through the cache)."""
        return self.batcher.encode(text)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Query vectors, shape ``(len(texts), dimension)``, encoded in batches on the query thread."""
        if not texts:
            return np.zeros((0, self.info.dimension), dtype=np.float32)
        return self.batcher.encode_many(texts)

    def _query_tokens(self, text: str) -> int:
        """Tokens the query takes in a batch (prompt included, capped at the sequence limit)."""
        tokens = len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) + self._prompt_tokens
        return min(tokens, self.max_seq_length)

    def _encode_query_batch(self, texts: list[str]) -> np.ndarray:
        """The batcher's encoder: one batch of queries, wherever the model is."""
        return self.engine.encode_queries(texts)

    @classmethod
    def from_settings(cls, settings, dimension: int | None = None) -> "Embedder":
        """The embedder ``Settings`` describe (model, device, runtime, precision, query batching)."""
        return cls(settings.model, device=settings.device, max_tokens=settings.chunk_tokens,
                   dimension=dimension if dimension is not None else settings.dim, quantize=settings.int8,
                   model_dir=settings.model_dir, runtime=settings.runtime, precision=settings.precision,
                   query_batch=settings.query_batch, query_gather_ms=settings.query_gather_ms,
                   query_cache=settings.query_cache, model_process=bool(settings.model_process))


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(vector)
    return vector / norm if norm else vector


def sentence_token_masks(tokenizer, prompt: str, text: str, max_length: int,
                         token_count: int) -> list[tuple[tuple[int, int], np.ndarray]]:
    """Each sentence of ``text`` (offsets into it) with the mask of its tokens among the
    ``token_count`` tokens the model saw for ``prompt + text``. A token belongs to the sentence
    holding its last character: the tokenizer folds a word's leading space into the word, so the
    first word of a sentence starts one character before it. Special and prompt tokens belong to
    none; sentences past the truncated tokens are left out. Empty when this tokenisation does not
    give the model's ``token_count`` tokens (nothing can be aligned)."""
    offsets = tokenizer(prompt + text, return_offsets_mapping=True, truncation=True,
                        max_length=max_length)["offset_mapping"]
    if len(offsets) != token_count:
        return []
    bounds = np.asarray(offsets, dtype=np.int64).reshape(-1, 2) - len(prompt)
    starts, ends = bounds[:, 0], bounds[:, 1]
    real = ends > starts  # special tokens have empty offsets
    found = []
    for a, b in sentence_spans(text):
        mask = real & (ends > a) & (ends <= b)
        if mask.any():
            found.append(((a, b), mask))
    return found


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


def quantize_int8(model):
    """Dynamic int8 quantisation of the model's Linear layers (CPU inference)."""
    import torch
    from torch.ao.quantization import quantize_dynamic

    return quantize_dynamic(model.to("cpu"), {torch.nn.Linear}, dtype=torch.qint8)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
