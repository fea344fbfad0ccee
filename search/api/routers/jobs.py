"""Background writes: poll and cancel."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from search.api.deps import JobsDep, WriteAccess
from search.api.schemas import JobOut

router = APIRouter(tags=["jobs"])


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: str, jobs: JobsDep) -> dict[str, object]:
    """A background write's status, progress and (when done) result."""
    job = jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"unknown job: {job_id!r}")
    return job.as_dict()


@router.delete("/jobs/{job_id}", response_model=JobOut, status_code=202, dependencies=WriteAccess)
def cancel_job(job_id: str, jobs: JobsDep) -> dict[str, object]:
    """Cancel a job: it stops at its next batch; committed batches stay, the running one is rolled back."""
    job = jobs.cancel(job_id)
    if job is None:
        raise HTTPException(404, f"unknown job: {job_id!r}")
    return job.as_dict()
