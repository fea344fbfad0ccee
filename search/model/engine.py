"""The loaded model and every call into it (queries, passages, pooled sentence vectors), wherever
the model lives: on the Embedder's model thread or alone in a model process."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from search.errors import BisearchError
from search.model.download import ModelError
from search.model.runtime import CoreSlices
from search.text.sentences import sentence_spans
from search.types import SENTENCE_DIMENSION, ModelInfo, SentenceVectors, truncate

#: Room left for the document prompt ("title: none | text: ") and special tokens.
PROMPT_MARGIN_TOKENS = 32


def _loaded(spec: "ModelSpec"):
    """The model ``spec`` names; a folder or id that does not hold a loadable model is a :class:`ModelError`."""
    from search.model.runtime import load_model  # heavy imports, done lazily

    try:
        return load_model(spec.location, spec.runtime, spec.precision, device=spec.device or _default_device(),
                          truncate_dim=spec.dimension)
    except (OSError, ValueError) as error:
        if isinstance(error, BisearchError):
            raise
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:500]
        raise ModelError(f"cannot load the model {spec.location!r} (--model / BISEARCH_MODEL): {reason}") from error


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
    Embedder's model thread, or alone in a model process (see search/model/process.py)."""

    def __init__(self, spec: ModelSpec):
        self.model = _loaded(spec)
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


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
