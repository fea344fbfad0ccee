"""The loaded model and every call into it (queries, passages, pooled sentence vectors), wherever
the model lives: on the Embedder's model thread or alone in a model process.

Two runtimes implement :class:`ModelEngine`: torch (search/model/torch_engine.py) and ONNX Runtime
(search/model/onnx_engine.py); search/model/runtime.py chooses one. What they share is here: the
spec of what to load, what an engine tells its callers, and the pooled sentence vectors behind
evidence spans (each sentence's token embeddings averaged, as the model pools a passage, and sent
through the model's projection after pooling).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np

from search.text.sentences import sentence_spans
from search.types import SENTENCE_DIMENSION, ModelInfo, SentenceVectors, truncate

#: Room left for the document prompt ("title: {title} | text: ") and special tokens.
PROMPT_MARGIN_TOKENS = 48
#: Tokens a passage's title (document title › section) may take in the document prompt.
TITLE_TOKENS = 24
#: The title slot of a document prompt that has one (EmbeddingGemma: "title: none | text: ").
UNTITLED = "title: none"


@dataclass(frozen=True)
class ModelSpec:
    """What to load: everything a model process needs to load the same model (picklable)."""

    name: str  # recorded in the index
    location: str  # folder or id to load
    runtime: str = "auto"  # auto, torch or onnx (search/model/runtime.py)
    precision: str = "fp32"
    passage_precision: str | None = None  # passages in another precision than queries (None: the same)
    device: str | None = None
    dimension: int | None = None
    max_tokens: int = 256


@dataclass(frozen=True)
class EngineDescription:
    """What callers need without the model (picklable, so it crosses the model process's pipe)."""

    info: ModelInfo
    max_seq_length: int
    tokenizer: object  # a copy: the engine's own keeps padding state between calls
    runtime: str  # the runtime that runs: torch or onnx
    reason: str  # why this one (one line)


class ModelEngine:
    """The loaded model and every call into it. It lives where the model does: on the
    Embedder's model thread, or alone in a model process (see search/model/process.py).

    A runtime sets ``spec``, ``info``, ``tokenizer``, ``max_seq_length``, ``runtime`` and ``reason``,
    and implements the three encode calls and :meth:`project`.
    """

    spec: ModelSpec
    info: ModelInfo
    tokenizer: object
    max_seq_length: int
    runtime: str
    reason: str

    def describe(self) -> EngineDescription:
        return EngineDescription(self.info, int(self.max_seq_length), copy.deepcopy(self.tokenizer),
                                 self.runtime, self.reason)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Unit query vectors of one batch, shape ``(len(texts), dimension)``."""
        raise NotImplementedError

    def encode_documents(self, texts: list[str], batch_size: int, prompts: list[str] | None = None) -> np.ndarray:
        """Unit passage vectors, in batches of ``batch_size``; ``prompts``: one document prompt per
        text (see :func:`titled_prompt`), else the model's own."""
        raise NotImplementedError

    def encode_with_sentences(self, texts: list[str], prompts: list[str] | None = None,
                              ) -> tuple[np.ndarray, list[SentenceVectors | None]]:
        """One model call: passage vectors and pooled sentence vectors (``prompts`` as above)."""
        raise NotImplementedError

    def document_prompts(self, texts: list[str], prompts: list[str] | None) -> list[str]:
        """The document prompt of each text: the given ones, else the model's own for all."""
        return list(prompts) if prompts is not None else [self.info.document_prompt] * len(texts)

    def project(self, pooled: np.ndarray) -> np.ndarray | None:
        """Mean-pooled token embeddings ``(n, hidden)`` through the model's layers after pooling
        (EmbeddingGemma: two Dense layers), not normalised; None when the model is not mean-pooled."""
        raise NotImplementedError

    def sentence_vectors(self, text: str, tokens: np.ndarray, prompt: str) -> SentenceVectors | None:
        """Each sentence of ``text`` pooled from the passage's own token embeddings ``tokens``
        (``(n, hidden)``, the real tokens the model saw for ``prompt + text``)."""
        found = sentence_token_masks(self.tokenizer, prompt, text, self.max_seq_length, len(tokens))
        if not found:
            return None
        pooled = np.stack([tokens[mask].mean(axis=0, dtype=np.float32) for _, mask in found])
        projected = self.project(pooled)
        if projected is None:
            return None
        vectors = truncate(projected, min(SENTENCE_DIMENSION, self.info.dimension))
        return SentenceVectors(np.array([span for span, _ in found], dtype=np.int32), vectors.astype(np.float16))

    def close(self) -> None:
        """Nothing to release in-process (the model process stops its own)."""


class SplitEngine(ModelEngine):
    """Queries on one engine, passages (and their sentence vectors) on another, opened on the first
    passage: fp32 questions whose vectors never move with their batch, passages in bf16 on the CPU's
    matrix units. Both load the same model, so they share its info, tokenizer and length limit."""

    def __init__(self, queries: ModelEngine, passage_spec: ModelSpec, open_engine: Callable[[ModelSpec], ModelEngine]):
        self.queries, self.passage_spec, self._open_engine = queries, passage_spec, open_engine
        self._passages: ModelEngine | None = None
        self.spec, self.info, self.tokenizer = queries.spec, queries.info, queries.tokenizer
        self.max_seq_length, self.runtime = queries.max_seq_length, queries.runtime
        self.reason = f"queries: {queries.reason}; passages: {passage_spec.precision}, loaded for the first passage"

    @property
    def passages(self) -> ModelEngine:
        """The passage engine (loaded on first use)."""
        if self._passages is None:
            self._passages = self._open_engine(self.passage_spec)
        return self._passages

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self.queries.encode_queries(texts)

    def encode_documents(self, texts: list[str], batch_size: int, prompts: list[str] | None = None) -> np.ndarray:
        return self.passages.encode_documents(texts, batch_size, prompts)

    def encode_with_sentences(self, texts: list[str], prompts: list[str] | None = None,
                              ) -> tuple[np.ndarray, list[SentenceVectors | None]]:
        return self.passages.encode_with_sentences(texts, prompts)

    def project(self, pooled: np.ndarray) -> np.ndarray | None:
        return self.passages.project(pooled)

    def close(self) -> None:
        self.queries.close()
        if self._passages is not None:
            self._passages.close()


def prompt_of(prompts: dict[str, str], names: tuple[str, ...]) -> str:
    """The first of ``names`` the model has a prompt for, else no prompt."""
    for name in names:
        if name in prompts:
            return prompts[name]
    return ""


def titled_prompt(document_prompt: str, title: str) -> str:
    """The model's document prompt with ``title`` in its title slot; the prompt unchanged when it has
    no slot or the title is empty."""
    title = " ".join(title.split())
    if not title or UNTITLED not in document_prompt:
        return document_prompt
    return document_prompt.replace(UNTITLED, f"title: {title}", 1)


def model_info(name: str, dimension: int, prompts: dict[str, str]) -> ModelInfo:
    """What an index records about a model: its name, vector size and its own prompts."""
    return ModelInfo(name=name, dimension=dimension,
                     query_prompt=prompt_of(prompts, ("query", "Retrieval-query")),
                     document_prompt=prompt_of(prompts, ("document", "Retrieval-document")))


def max_seq_length_for(model_limit: int | None, spec: ModelSpec) -> int:
    """Tokens the model reads: a passage's tokens and the prompt, within the model's own limit."""
    return min(model_limit or 512, spec.max_tokens + PROMPT_MARGIN_TOKENS)


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
