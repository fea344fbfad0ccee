"""Sentence-transformers embeddings with the model's own query/document prompts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from search.model_store import DEFAULT_MODEL_NAME, default_model_dir, ensure_model
from search.types import ModelInfo

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


def _prompt(model, names: tuple[str, ...]) -> str:
    for name in names:
        if name in model.prompts:
            return model.prompts[name]
    return ""


class Embedder:
    """Encode queries and passages into L2-normalised float32 vectors."""

    def __init__(self, model: str = DEFAULT_MODEL_NAME, device: str | None = None, max_tokens: int = 256,
                 dimension: int | None = None, quantize: bool = False, model_dir: Path | None = None):
        """``dimension`` truncates Matryoshka vectors (e.g. 256 of 768); ``quantize`` uses int8 Linear layers."""
        from sentence_transformers import SentenceTransformer  # heavy import, done lazily

        name, location = resolve_model(model, model_dir)
        self.model = SentenceTransformer(location, device=device or _default_device(), truncate_dim=dimension,
                                         local_files_only=Path(location).is_dir())
        if quantize:
            self.model = quantize_int8(self.model)
        # Every query runs on this one thread: concurrent queries take turns instead of thrashing,
        # and torch keeps a single OpenMP team instead of one per server worker thread.
        self._query_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bisearch-query")
        self.model.max_seq_length = min(self.model.max_seq_length or 512, max_tokens + PROMPT_MARGIN_TOKENS)
        self.info = ModelInfo(
            name=name,
            dimension=int(self.model.get_embedding_dimension()),
            query_prompt=_prompt(self.model, ("query", "Retrieval-query")),
            document_prompt=_prompt(self.model, ("document", "Retrieval-document")),
        )

    @property
    def tokenizer(self):
        """The model's tokenizer (the chunker counts tokens with it)."""
        return self.model.tokenizer

    def encode_documents(self, texts: list[str], batch_size: int = 16, progress: bool = False) -> np.ndarray:
        """Passage vectors, shape ``(len(texts), dimension)``."""
        if not texts:
            return np.zeros((0, self.info.dimension), dtype=np.float32)
        vectors = self.model.encode(
            texts, prompt=self.info.document_prompt, batch_size=batch_size,
            normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        """One query vector, shape ``(dimension,)``."""
        return self._query_thread.submit(self._encode_query, text).result()

    def _encode_query(self, text: str) -> np.ndarray:
        vector = self.model.encode([text], prompt=self.info.query_prompt, normalize_embeddings=True,
                                   convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vector[0], dtype=np.float32)


def quantize_int8(model):
    """Dynamic int8 quantisation of the model's Linear layers (CPU inference)."""
    import torch
    from torch.ao.quantization import quantize_dynamic

    return quantize_dynamic(model.to("cpu"), {torch.nn.Linear}, dtype=torch.qint8)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
