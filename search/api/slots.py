"""Slots weighed by cost: searches (``search_threads`` slots), writes (one) and uploads being read.

A call holds as many slots as its weight. A plain search's first page weighs one; a deep
window, a narrowed search or evidence embedded now weighs more
(:attr:`search.ranking.budget.SearchPlan.slots`), so a burst of expensive requests fills the
search slots long before it fills the machine, and plain searches keep their share. Waiters
are served in arrival order (a heavy search is not starved by a stream of light ones), on the
event loop: a queued call holds no thread.
"""

from __future__ import annotations

from collections import deque

import anyio


class Slots:
    """Weighted, first-come-first-served slots, with the thread limiter their calls run under."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.borrowed_tokens = 0  # slots held now (the name of anyio's CapacityLimiter attribute)
        self.threads = anyio.CapacityLimiter(total)  # never the bound: every running call holds a slot
        self._waiting: deque[tuple[int, anyio.Event]] = deque()

    def weight(self, slots: int) -> int:
        """A request's weight, at least one slot and at most all of them."""
        return max(1, min(slots, self.total))

    async def acquire(self, slots: int) -> int:
        """Wait for ``slots`` slots (weighed by :meth:`weight`); returns what to :meth:`release`."""
        weight = self.weight(slots)
        if not self._waiting and self.borrowed_tokens + weight <= self.total:
            self.borrowed_tokens += weight
            return weight
        entry = (weight, anyio.Event())
        self._waiting.append(entry)
        try:
            await entry[1].wait()
        except BaseException:  # cancelled while waiting: leave the queue, or give back what was granted
            if entry[1].is_set():
                self.release(weight)
            else:
                self._waiting.remove(entry)
                self._grant()
            raise
        return weight

    def release(self, weight: int) -> None:
        self.borrowed_tokens -= weight
        self._grant()

    def _grant(self) -> None:
        """Serve the waiters at the head of the queue while their weight fits."""
        while self._waiting and self.borrowed_tokens + self._waiting[0][0] <= self.total:
            weight, event = self._waiting.popleft()
            self.borrowed_tokens += weight
            event.set()

    async def run(self, slots: int, function, *args):
        """``function(*args)`` in a worker thread once ``slots`` slots (a weight) are held."""
        weight = await self.acquire(slots)
        try:
            return await anyio.to_thread.run_sync(function, *args, limiter=self.threads)
        finally:
            self.release(weight)
