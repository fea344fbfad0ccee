"""Background writes: large documents and folder ingests run as jobs, one at a time.

``POST`` answers ``202`` with a job id; ``GET /jobs/{id}`` polls, ``DELETE /jobs/{id}`` cancels.
A job is cancelled between embedding batches (:func:`check_cancelled`): what an earlier
batch committed stays, the running batch never reaches its transaction. Shutdown cancels
every job and waits for the worker.

The queue is bounded: at most ``max_queued_jobs`` jobs queued or running, beyond that
:class:`JobQueueFull` (429 with ``Retry-After``). A job lets go of its work (the closure that
holds the document's text) when it finishes or is cancelled: a finished job keeps only its
result summary or error.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from search.errors import Busy

log = logging.getLogger(__name__)
KEPT_FINISHED = 200  # finished jobs remembered for polling
RETRY_AFTER_SECONDS = 10  # what a 429 for a full queue suggests
FINISHED = ("done", "failed", "cancelled")
_current = threading.local()


class JobCancelled(Exception):
    """The running job was cancelled (raised at the next cancellation point)."""


class JobQueueFull(Busy):
    """As many jobs are queued or running as the queue holds (the API answers 429 with Retry-After)."""

    def __init__(self, limit: int):
        super().__init__(f"{limit} background jobs are queued or running, the most the server holds "
                         f"(setting max_queued_jobs); retry in {RETRY_AFTER_SECONDS} s")
        self.retry_after = RETRY_AFTER_SECONDS


@dataclass
class Job:
    id: str
    kind: str
    run: Callable[["Job"], dict] | None  # dropped when the job finishes: it holds the document's text
    status: str = "queued"
    progress: dict[str, int] = field(default_factory=dict)
    result: dict | None = None
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "kind": self.kind, "status": self.status, "progress": dict(self.progress),
                "result": self.result, "error": self.error, "created_at": self.created_at,
                "started_at": self.started_at, "finished_at": self.finished_at}


def check_cancelled() -> None:
    """Raise :class:`JobCancelled` when the job running on this thread was cancelled (else nothing)."""
    job = getattr(_current, "job", None)
    if job is not None and job.cancel_event.is_set():
        raise JobCancelled(job.id)


class Jobs:
    """A bounded queue of write jobs served by one worker thread (writes never pile up on the model)."""

    def __init__(self, limit: int = 8) -> None:
        self.limit = limit
        self._jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._closed = False

    def submit(self, kind: str, run: Callable[[Job], dict]) -> Job:
        job = Job(uuid.uuid4().hex, kind, run)
        with self._lock:
            if self._closed:
                raise RuntimeError("the server is shutting down")
            if self.full():
                raise JobQueueFull(self.limit)
            self._jobs[job.id] = job
            self._forget_old()
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="bisearch-jobs", daemon=True)
                self._worker.start()
        self._queue.put(job)
        return job

    def full(self) -> bool:
        """True when ``limit`` jobs are queued or running."""
        return sum(job.status not in FINISHED for job in list(self._jobs.values())) >= self.limit

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a job: a queued one at once (its work let go), a running one at its next cancellation point."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None and job.status not in FINISHED:
                job.cancel_event.set()
                if job.status == "queued":
                    job.status, job.finished_at, job.run = "cancelled", time.time(), None
        return job

    def shutdown(self, timeout: float = 60.0) -> None:
        """Cancel every job and wait for the worker to leave its batch (rolled back)."""
        with self._lock:
            self._closed = True
            for job in self._jobs.values():
                job.cancel_event.set()
            worker = self._worker
        self._queue.put(None)
        if worker is not None:
            worker.join(timeout)

    def _forget_old(self) -> None:
        finished = [job for job in self._jobs.values() if job.status in FINISHED]
        for job in finished[:max(0, len(finished) - KEPT_FINISHED)]:
            del self._jobs[job.id]

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            self._run(job)

    def _run(self, job: Job) -> None:
        with self._lock:
            if job.status != "queued":  # cancelled while it waited
                return
            job.status, job.started_at = "running", time.time()
        _current.job = job
        try:
            check_cancelled()
            job.result = job.run(job)
            job.status = "done"
        except JobCancelled:
            job.status = "cancelled"
        except Exception as error:  # reported to the poller, never lost
            log.exception("job %s failed", job.id)
            job.status, job.error = "failed", str(error)[:2000]
        finally:
            _current.job = None
            job.run = None
            job.finished_at = time.time()
