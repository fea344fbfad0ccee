"""Pack the sentences of mixed English/Chinese text into token-bounded passages.

Every span is a pair of character offsets into the document text, so
``text[passage.start:passage.end] == passage.text`` holds by construction.
"""

from __future__ import annotations

from typing import Callable, Protocol

from search.text.language import detect_language, is_mixed
from search.text.sentences import split_sentences, trimmed
from search.types import Passage

#: Pieces (sentences) between two calls of a chunking run's ``should_stop``.
STOP_CHECK_EVERY = 64


class Tokenizer(Protocol):
    """The slice of a Hugging Face fast tokenizer the chunker needs."""

    def __call__(self, text: str | list[str], **kwargs): ...


class Chunker:
    """Pack sentences into chunks of at most ``max_tokens`` model tokens with overlap.

    Token counts come from tokenising the exact chunk text, so the limit holds for the
    text the model will see (the model's own prompt is added on top of it).
    """

    def __init__(self, tokenizer: Tokenizer, max_tokens: int = 256, overlap_sentences: int = 1):
        if max_tokens < 8:
            raise ValueError("max_tokens must be at least 8")
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap_sentences = overlap_sentences

    def count_tokens(self, text: str) -> int:
        """Number of model tokens in ``text`` (no special tokens)."""
        return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def _split_long(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """Cut an over-long span at token boundaries into spans within the limit."""
        offsets = self.tokenizer(text[start:end], add_special_tokens=False, return_offsets_mapping=True,
                                 verbose=False)["offset_mapping"]  # over-long on purpose: no warning
        spans: list[tuple[int, int]] = []
        first = 0
        while first < len(offsets):
            size = self.max_tokens
            while True:
                last = min(first + size, len(offsets)) - 1
                piece_end = end if last == len(offsets) - 1 else start + offsets[last][1]
                span = trimmed(text, start + (offsets[first][0] if first else 0), piece_end)
                if span is None or size == 1 or self.count_tokens(text[span[0]:span[1]]) <= self.max_tokens:
                    break
                size -= max(1, size // 16)
            if span:
                spans.append(span)
            first += size
        return spans

    def _pieces(self, text: str, should_stop: Callable[[], None]) -> list[tuple[int, int]]:
        """Sentence spans, with sentences over the limit cut into smaller spans."""
        pieces: list[tuple[int, int]] = []
        for number, (start, end) in enumerate(split_sentences(text)):
            if number % STOP_CHECK_EVERY == 0:
                should_stop()
            if self.count_tokens(text[start:end]) <= self.max_tokens:
                pieces.append((start, end))
            else:
                pieces.extend(self._split_long(text, start, end))
        return pieces

    def _fits(self, text: str, group: list[tuple[int, int]], piece: tuple[int, int]) -> bool:
        return not group or self.count_tokens(text[group[0][0]:piece[1]]) <= self.max_tokens

    def _group(self, text: str, pieces: list[tuple[int, int]],
               should_stop: Callable[[], None]) -> list[list[tuple[int, int]]]:
        """Greedy packing; each new group repeats the last sentences of the previous one."""
        groups: list[list[tuple[int, int]]] = []
        current: list[tuple[int, int]] = []
        for number, piece in enumerate(pieces):
            if number % STOP_CHECK_EVERY == 0:
                should_stop()
            if not self._fits(text, current, piece):
                groups.append(current)
                keep = current[-self.overlap_sentences:] if self.overlap_sentences and len(current) > 1 else []
                current = keep if self._fits(text, keep, piece) else []
            current.append(piece)
        if current:
            groups.append(current)
        return groups

    def chunk(self, text: str, doc_id: str = "", should_stop: Callable[[], None] = lambda: None) -> list[Passage]:
        """Passages covering every sentence of ``text``, in order; ``should_stop`` is called every
        few sentences and may raise to abandon a long text (a cancelled job)."""
        passages = []
        for number, group in enumerate(self._group(text, self._pieces(text, should_stop), should_stop)):
            start, end = group[0][0], group[-1][1]
            body = text[start:end]
            passages.append(Passage(doc_id, number, start, end, body, detect_language(body), is_mixed(body)))
        return passages
