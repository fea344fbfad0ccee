"""Concurrent queries share one model call, on the one thread that owns the model.

One thread owns the model. Callers hand it a text and wait for the vector; the thread
takes whatever is waiting (up to ``max_batch`` texts and ``max_tokens`` padded tokens),
encodes it in ONE call, and gives every caller its own row. Other model work (loading,
document batches) is handed to the same thread with :meth:`QueryBatcher.run` and runs
between query batches, waiting queries first.

Why one thread for everything: torch's OpenMP runtime keeps a team of worker threads per
thread that has run a parallel operation. With a second team in the process there are
more OpenMP threads than cores and every operation wakes its workers from sleep instead
of finding them spinning: on a 2-core CPU a query encoded off the loading thread took
~20% longer (a small GELU 21 µs → 70 µs). One owner thread keeps one team.

* An idle server pays nothing: a lone query is encoded the moment it arrives. Only when
  other queries are already queued does the thread wait ``gather_ms`` (a few ms) for
  more, so a burst fills one batch instead of several small ones.
* Repeated queries are answered from a small LRU cache keyed by the normalised text
  (NFC, whitespace collapsed), and a text already waiting or being encoded is not
  queued twice: its callers share one row.
* If the encode call fails, every caller waiting on that batch gets the exception.

The batcher knows nothing about models: ``encode_batch(list[str]) -> (n, d) array`` is
all it calls, so tests drive it with a fake.
"""

from __future__ import annotations

import atexit
import threading
import time
import unicodedata
from collections import OrderedDict, deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

DEFAULT_MAX_BATCH = 32
DEFAULT_MAX_TOKENS = 32 * 64  # padded tokens per call: 32 queries of 64 tokens
DEFAULT_GATHER_MS = 3.0
DEFAULT_CACHE_SIZE = 1024


def query_key(text: str) -> str:
    """The normalised form a query is cached and encoded under."""
    return " ".join(unicodedata.normalize("NFC", text).split())


@dataclass
class BatcherStats:
    """Counters for tests and the benchmark (read without a lock: approximate under load)."""

    calls: int = 0
    encoded: int = 0
    cache_hits: int = 0
    batch_sizes: deque = field(default_factory=lambda: deque(maxlen=10_000))  # the latest ones


class QueryBatcher:
    """One model thread that encodes waiting queries together."""

    def __init__(self, encode_batch: Callable[[list[str]], np.ndarray], *, max_batch: int = DEFAULT_MAX_BATCH,
                 max_tokens: int = DEFAULT_MAX_TOKENS, count_tokens: Callable[[str], int] | None = None,
                 gather_ms: float = DEFAULT_GATHER_MS, cache_size: int = DEFAULT_CACHE_SIZE,
                 name: str = "bisearch-query"):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._encode_batch = encode_batch
        self.max_batch = max_batch
        self.max_tokens = max_tokens
        self._count_tokens = count_tokens or (lambda text: len(text) // 2 + 1)
        self.gather_s = max(0.0, gather_ms) / 1000
        self.cache_size = cache_size
        self.stats = BatcherStats()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._pending: deque[tuple[str, int]] = deque()  # (key, tokens), oldest first
        self._waiting: dict[str, Future] = {}  # key -> the future its callers share
        self._tasks: deque[tuple[Callable[[], object], Future]] = deque()  # other model work, oldest first
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        # The thread ends before the interpreter does: a model thread still alive while the
        # C++ runtime tears down aborts the process ("terminate called without an active exception").
        atexit.register(self.close)

    # -- callers --------------------------------------------------------------------------
    def submit(self, text: str) -> Future:
        """A future of the query's vector (a read-only ``(d,)`` float32 array)."""
        key = query_key(text)
        tokens = self._count_tokens(key)  # outside the lock: tokenising is not free
        with self._cond:
            if self._closed:
                raise RuntimeError("the query batcher is closed")
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                self.stats.cache_hits += 1
                done: Future = Future()
                done.set_result(cached)
                return done
            future = self._waiting.get(key)
            if future is None:
                future = self._waiting[key] = Future()
                self._pending.append((key, tokens))
                self._cond.notify()
            return future

    def run(self, task: Callable[[], object]) -> object:
        """Run ``task`` on the model thread (after the queries already waiting) and return its result."""
        if threading.current_thread() is self._thread:
            return task()
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the query batcher is closed")
            self._tasks.append((task, future))
            self._cond.notify()
        return future.result()

    def encode(self, text: str) -> np.ndarray:
        """One query vector, waiting for the batch it rides in."""
        return self.submit(text).result()

    def encode_many(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of many queries, shape ``(len(texts), d)``; they are batched like any others."""
        futures = [self.submit(text) for text in texts]
        return np.stack([future.result() for future in futures]) if futures else np.zeros((0, 0), np.float32)

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    # -- the model thread -------------------------------------------------------------------
    def _fits(self, batch: list[tuple[str, int]], tokens: int) -> bool:
        if len(batch) >= self.max_batch:
            return False
        longest = max([tokens, *(t for _, t in batch)])
        return not batch or (len(batch) + 1) * longest <= self.max_tokens

    def _take(self, batch: list[tuple[str, int]]) -> None:
        """Move waiting queries into ``batch`` while they fit (the lock is held)."""
        while self._pending and self._fits(batch, self._pending[0][1]):
            batch.append(self._pending.popleft())

    def _next_work(self) -> list[str] | tuple[Callable[[], object], Future] | None:
        """Waiting queries as one batch, else the oldest task; None once closed and drained."""
        with self._cond:
            while not self._pending and not self._tasks and not self._closed:
                self._cond.wait()
            if not self._pending:
                return self._tasks.popleft() if self._tasks else None
            batch: list[tuple[str, int]] = []
            self._take(batch)
            # Others already queued means load: wait a few ms for the rest of the burst.
            # A lone query on an idle server goes at once.
            if len(batch) > 1 and self.gather_s and not self._pending:
                deadline = time.monotonic() + self.gather_s
                while not self._closed and self._fits(batch, 0):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                    self._take(batch)
                    if self._pending:  # the next one does not fit: this batch is full
                        break
            return [key for key, _ in batch]

    def _run(self) -> None:
        while (work := self._next_work()) is not None:
            if isinstance(work, tuple):
                self._run_task(*work)
            else:
                self._encode(work)

    @staticmethod
    def _run_task(task: Callable[[], object], future: Future) -> None:
        try:
            result = task()
        except BaseException as error:  # noqa: BLE001 - the caller hears of it
            future.set_exception(error)
        else:
            future.set_result(result)

    def _encode(self, keys: list[str]) -> None:
        try:
            vectors = np.asarray(self._encode_batch(keys), dtype=np.float32)
            if vectors.ndim != 2 or len(vectors) != len(keys):
                raise RuntimeError(f"encoder returned shape {vectors.shape} for {len(keys)} queries")
        except BaseException as error:  # noqa: BLE001 - every caller must hear of it
            self._finish(keys, error=error)
        else:
            self._finish(keys, vectors=vectors)

    def _finish(self, keys: list[str], vectors: np.ndarray | None = None,
                error: BaseException | None = None) -> None:
        with self._cond:
            self.stats.calls += 1
            self.stats.batch_sizes.append(len(keys))
            futures = [self._waiting.pop(key) for key in keys]
            if error is None:
                self.stats.encoded += len(keys)
                rows = []
                for key, row in zip(keys, vectors):
                    row = np.array(row, dtype=np.float32)  # own copy, no view into the batch
                    row.flags.writeable = False
                    rows.append(row)
                    if self.cache_size:
                        self._cache[key] = row
                        self._cache.move_to_end(key)
                        while len(self._cache) > self.cache_size:
                            self._cache.popitem(last=False)
        for position, future in enumerate(futures):
            if error is None:
                future.set_result(rows[position])
            else:
                future.set_exception(error)
