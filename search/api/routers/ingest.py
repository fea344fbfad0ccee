"""``POST /ingest``: files and folders on the server, only under ``BISEARCH_INGEST_ROOT``.

Folders (and file lists over ``BISEARCH_JOB_THRESHOLD_CHARS`` bytes) run as a background job.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fastapi import APIRouter, Request

from fastapi import HTTPException

from search.api.deps import IngesterDep, JobsDep, SettingsDep, WriteAccess, accepted, in_write_slot, ingest_root
from search.api.jobs import Job
from search.api.schemas import IngestIn
from search.loading import LoadLimits

router = APIRouter(tags=["documents"])
JOB_BATCH_FILES = 8  # files per all-or-nothing write; a cancelled ingest keeps the batches before it


@router.post("/ingest", dependencies=WriteAccess,
             responses={202: {"description": "folders and large file sets run as a background job"}})
async def ingest(body: IngestIn, request: Request, ingester: IngesterDep, jobs: JobsDep, settings: SettingsDep):
    """Ingest files or folders on the server; summary (200) or a job to poll (202)."""
    root = ingest_root(settings)
    paths = [resolve_under_root(root, path) for path in body.paths]

    def run(job: Job | None = None) -> dict[str, object]:
        def progress(done: int, total: int) -> None:
            if job is not None:
                job.progress = {"files_done": done, "files_total": total}

        return ingester.ingest_paths(paths, batch_files=JOB_BATCH_FILES, root=root, on_file=progress,
                                     limits=LoadLimits.from_settings(settings)).as_dict()

    if runs_as_job(paths, settings.job_threshold_chars):
        return accepted(jobs.submit("ingest", run))
    return await in_write_slot(request, run)


def runs_as_job(paths: list[Path], threshold_bytes: int) -> bool:
    if any(path.is_dir() for path in paths):
        return True
    return sum(os.stat(path).st_size for path in paths) > threshold_bytes


def resolve_under_root(root: Path | None, path: str) -> Path:
    """``path`` resolved under the ingest root: a folder or a regular file; escapes are refused."""
    if root is None:
        raise HTTPException(status_code=403, detail="ingest over HTTP is disabled: set BISEARCH_INGEST_ROOT")
    if "\x00" in path:
        raise HTTPException(status_code=422, detail="path contains a NUL byte")
    try:
        resolved = (root / path).resolve()
        if not resolved.is_relative_to(root):
            raise HTTPException(status_code=403, detail=f"{path!r} is outside the ingest root")
        mode = os.stat(resolved).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise HTTPException(status_code=404, detail=f"{path!r} does not exist under the ingest root") from None
    except (OSError, RuntimeError, ValueError) as error:  # name too long, symlink loop, bad characters
        raise HTTPException(status_code=422, detail=f"cannot use path {path[:200]!r}: {type(error).__name__}") from None
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise HTTPException(status_code=422, detail=f"{path!r} is not a regular file or folder")
    return resolved


