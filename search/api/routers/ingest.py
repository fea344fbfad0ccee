"""``POST /ingest``: files and folders on the server, only under ``BISEARCH_INGEST_ROOT``.

Folders (and file lists over ``BISEARCH_JOB_THRESHOLD_CHARS`` bytes) run as a background job.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, Request

from search.api.deps import IndexDep, JobsDep, SettingsDep, WriteAccess, accepted, in_write_slot, ingest_root
from search.api.files import ingest_under_root, resolve_under_root
from search.api.schemas import IngestIn

router = APIRouter(tags=["documents"])


@router.post("/ingest", dependencies=WriteAccess,
             responses={202: {"description": "folders and large file sets run as a background job"}})
async def ingest(body: IngestIn, request: Request, index: IndexDep, jobs: JobsDep, settings: SettingsDep):
    """Ingest files or folders on the server; summary (200) or a job to poll (202)."""
    root = ingest_root(settings)
    paths = [resolve_under_root(root, path) for path in body.paths]
    run = lambda job=None: ingest_under_root(index, paths, root, settings.max_file_bytes, job).as_dict()  # noqa: E731
    if runs_as_job(paths, settings.job_threshold_chars):
        return accepted(jobs.submit("ingest", run))
    return await in_write_slot(request, run)


def runs_as_job(paths: list[Path], threshold_bytes: int) -> bool:
    if any(path.is_dir() for path in paths):
        return True
    return sum(os.stat(path).st_size for path in paths) > threshold_bytes
