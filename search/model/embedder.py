"""The model's embeddings (queries, passages, sentence vectors) with its own query/document prompts,
on the runtime chosen for it (search/model/runtime.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, TypeVar

import numpy as np
from tqdm import tqdm

from search.model.batching import DEFAULT_CACHE_SIZE, DEFAULT_GATHER_MS, DEFAULT_MAX_BATCH, QueryBatcher
from search.model.download import default_model_dir, ensure_model
from search.model.engine import TITLE_TOKENS, ModelEngine, ModelSpec, titled_prompt
from search.model.runtime import open_engine
from search.settings import DEFAULT_MODEL_NAME
from search.types import ModelInfo, SentenceVectors

T = TypeVar("T")

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


class Embedder:
    """Encode queries and passages into L2-normalised float32 vectors."""

    def __init__(self, model: str = DEFAULT_MODEL_NAME, device: str | None = None, max_tokens: int = 256,
                 dimension: int | None = None, quantize: bool = False, *, model_dir: Path | None = None,
                 runtime: str = "auto", precision: str = "auto", query_batch: int = DEFAULT_MAX_BATCH,
                 query_gather_ms: float = DEFAULT_GATHER_MS, query_cache: int = DEFAULT_CACHE_SIZE,
                 model_process: bool = False):
        """``dimension`` truncates Matryoshka vectors (e.g. 256 of 768); ``quantize`` uses int8 Linear layers
        (the same as ``precision="int8"``). ``runtime`` is auto, torch or onnx; ``precision`` auto, fp32, bf16
        (torch) or int8; fp16 is refused (see search/model/runtime.py for what auto picks: fp32 queries and,
        on a CPU with bf16 matrix instructions, bf16 passages). ``runtime`` (of the queries), ``precision``
        (of the queries), ``passage_precision`` and ``runtime_reason`` then say what runs and why.

        Queries go through one :class:`QueryBatcher` thread: concurrent queries share one
        model call (at most ``query_batch`` of them), a lone query is encoded at once.
        ``model_process`` loads the model in a process of its own (the server's choice: see
        search/model/process.py); ``model`` is then not available here.
        """
        from search.model.runtime import check_choice, resolve_precision
        from search.model.torch_engine import default_device

        precision = "int8" if quantize else precision
        check_choice(runtime, precision)
        precision, passage_precision, precision_reason = resolve_precision(precision, device or default_device(), runtime)
        name, location = resolve_model(model, model_dir)
        spec = ModelSpec(name, location, runtime, precision, passage_precision, device, dimension, max_tokens)
        self.precision, self.passage_precision = precision, passage_precision
        # One thread owns the model: it loads it, encodes every query batch and every document
        # batch (see search/model/batching.py for why a second torch thread costs ~20%).
        self.batcher = QueryBatcher(self._encode_query_batch, max_batch=query_batch, gather_ms=query_gather_ms,
                                    cache_size=query_cache, max_tokens=query_batch * 64,
                                    count_tokens=self._query_tokens)
        self.engine: ModelEngine | None = None  # in a model process: an EngineProcess with the same calls
        try:
            self.engine = self._start_engine(spec, model_process)
            # The model's own tokenizer is used where the model is only: it keeps padding state that a
            # call from another thread (token counts, the chunker) would flip mid-batch. Other threads
            # share a copy that is never asked to pad or truncate, so its state never changes.
            described = self.run(self.engine.describe)
            self.info, self.max_seq_length, self.tokenizer = described.info, described.max_seq_length, described.tokenizer
            self.runtime, self.runtime_reason = described.runtime, f"{precision_reason}; {described.reason}"
        except BaseException:
            self.close()
            raise
        self._prompt_tokens = len(self.tokenizer(self.info.query_prompt)["input_ids"])

    @property
    def precisions(self) -> dict[str, str]:
        """The precision of each side, as eval reports record it."""
        return {"queries": self.precision, "passages": self.passage_precision}

    def _start_engine(self, spec: ModelSpec, model_process: bool):
        if model_process:
            from search.model.process import EngineProcess

            return EngineProcess(spec)
        return self.batcher.run(lambda: open_engine(spec))

    def run(self, task: Callable[[], T]) -> T:
        """Run ``task`` (anything that calls the model) on the model's own thread."""
        return self.batcher.run(task)

    def close(self) -> None:
        """Stop the model thread (and the model process)."""
        self.batcher.close()
        if self.engine is not None:
            self.engine.close()

    def encode_documents(self, texts: list[str], batch_size: int = 16, progress: bool = False,
                         titles: list[str] | None = None) -> np.ndarray:
        """Passage vectors, shape ``(len(texts), dimension)``; ``titles``: each text's title for the
        document prompt's title slot (see :meth:`document_prompts`), else ``title: none``."""
        prompts = self.document_prompts(titles)
        vectors = np.zeros((len(texts), self.info.dimension), dtype=np.float32)
        for rows in self._batches(texts, batch_size, progress):
            vectors[rows] = self.run(lambda: self.engine.encode_documents(
                [texts[row] for row in rows], batch_size, None if prompts is None else [prompts[row] for row in rows]))
        return vectors

    def encode_passages(self, texts: list[str], batch_size: int = 16, progress: bool = False,
                        titles: list[str] | None = None) -> tuple[np.ndarray, list[SentenceVectors | None]]:
        """Passage vectors (as :meth:`encode_documents`) and, from the same forward pass, a vector
        per sentence: the passage's token embeddings averaged over the sentence and projected like
        the passage's. No extra model call; a passage whose tokens cannot be aligned gets None."""
        prompts = self.document_prompts(titles)
        vectors = np.zeros((len(texts), self.info.dimension), dtype=np.float32)
        sentences: list[SentenceVectors | None] = [None] * len(texts)
        for rows in self._batches(texts, batch_size, progress):
            batch_vectors, batch_sentences = self.run(lambda: self.engine.encode_with_sentences(
                [texts[r] for r in rows], None if prompts is None else [prompts[r] for r in rows]))
            vectors[rows] = batch_vectors
            for row, found in zip(rows, batch_sentences):
                sentences[row] = found
        return vectors, sentences

    def document_prompts(self, titles: list[str] | None) -> list[str] | None:
        """The document prompt of each title (its first :data:`TITLE_TOKENS` tokens in the prompt's
        title slot), or None for the model's own prompt (``title: none``) on every text."""
        if titles is None:
            return None
        prompts = {title: titled_prompt(self.info.document_prompt, self._clipped(title)) for title in set(titles)}
        return [prompts[title] for title in titles]  # a document's passages share a few titles: each cut once

    def _clipped(self, title: str) -> str:
        """``title`` cut after its first :data:`TITLE_TOKENS` tokens (whitespace runs as one space)."""
        title = " ".join(title.split())
        offsets = self.tokenizer(title, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        return title if len(offsets) <= TITLE_TOKENS else title[:offsets[TITLE_TOKENS - 1][1]].rstrip()

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
