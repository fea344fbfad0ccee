"""Every setting a user can change, read once from ``BISEARCH_*`` environment variables.

Built once (``cli.main``, ``create_app`` or a test) and passed down; no module reads the
environment on its own. CLI flags override the environment by building a copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


#: The default embedding model (assembled offline by search/model/download.py).
DEFAULT_MODEL_NAME = "google/embeddinggemma-300m"
MATRYOSHKA_DIMS = (768, 512, 256, 128)


class Settings(BaseSettings):
    """The service's settings (environment: ``BISEARCH_<NAME>``)."""

    model_config = SettingsConfigDict(env_prefix="BISEARCH_", frozen=True, extra="ignore")

    # where the index lives and which storage backend keeps it
    index: Path = Field(Path("index"), description="index folder of the local backend")
    backend: Literal["local", "milvus"] = Field("local", description="storage backend")
    milvus_uri: str | None = Field(None, description="Milvus: a file path (Milvus Lite) or http://host:19530")

    # the model
    model: str = Field(DEFAULT_MODEL_NAME, description="sentence-transformers folder or hub id")
    model_dir: Path | None = Field(None, description="where the default model is assembled (default: user cache)")
    dim: int | None = Field(None, description="Matryoshka vector size of a new index (768/512/256/128)")
    int8: bool = Field(False, description="dynamic int8 Linear layers on CPU")
    device: str | None = Field(None, description="torch device (default: cuda when present, else cpu)")
    runtime: Literal["torch", "onnx", "openvino"] = Field(
        "torch", description="model runtime (onnx/openvino: exported once beside the model; needs optimum)")
    precision: Literal["fp32", "bf16", "int8"] = Field(
        "fp32", description="bf16: torch on a GPU; int8: torch dynamic or ONNX quantised (fp16 gives wrong vectors)")
    query_batch: int = Field(64, ge=1, le=256, description="queries encoded together in one model call")
    query_gather_ms: float = Field(3.0, ge=0, le=100, description="wait for more queries, only when some are queued")
    query_cache: int = Field(1024, ge=0, description="query vectors kept (LRU; 0: off)")
    model_process: bool | None = Field(None, description="the model in a process of its own (default: on for "
                                                         "`bisearch serve`, off elsewhere)")
    chunk_tokens: int = Field(256, ge=8, le=2048, description="model tokens per passage")

    # the FAISS index of the local backend
    index_kind: Literal["auto", "flat", "hnsw", "ivfpq"] = Field("auto", description="FAISS index kind")
    index_exact_limit: int = Field(200_000, ge=1, description="auto: exact search below this many passages")
    index_nprobe: int | None = Field(None, ge=1, description="IVF lists searched (default: an eighth, >= 64)")
    index_ef_search: int = Field(128, ge=1, description="HNSW search depth")

    # the HTTP service
    api_key: str | None = Field(None, description="required X-API-Key on write endpoints when set")
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="largest request body or upload")
    ingest_root: Path | None = Field(None, description="POST /ingest reads files only under this folder")
    # what a file may be (search/loading/): checked before and while it is read
    max_file_bytes: int = Field(100 * 1024 * 1024, ge=1, description="largest file read (ingest or upload)")
    max_pages: int = Field(2000, ge=1, description="most pages of a PDF (pages are streamed one at a time)")
    max_unzipped_bytes: int = Field(200 * 1024 * 1024, ge=1024,
                                    description="largest total unpacked size of a DOCX (zip bomb guard)")
    max_image_pixels: int = Field(100_000_000, ge=1, description="largest image (or image in a PDF page read by "
                                                                 "OCR), checked before decoding (bomb guard)")
    ocr: Literal["auto", "always", "never"] = Field(
        "auto", description="OCR: auto reads images and the PDF pages without usable text; always every PDF "
                            "page; never none (images refused)")
    ocr_engine: Literal["auto", "tesseract", "rapidocr"] = Field(
        "auto", description="OCR engine: tesseract (Debian's tesseract-ocr + tesseract-ocr-chi-sim), rapidocr "
                            "(PP-OCRv4 inside its wheel), auto: tesseract where installed, else rapidocr (docs/ocr.md)")
    search_threads: int = Field(64, ge=1, le=256,
                                description="searches running at once (>= query_batch, or batches stay small)")
    host: str = Field("127.0.0.1", description="address the server binds (serve --host)")
    allowed_hosts: str | None = Field(
        None, description="comma-separated Host header names answered (default: loopback names and the bound host)")
    max_report_chars: int = Field(200_000, ge=1, description="most quoted characters in one report")
    job_threshold_chars: int = Field(
        20_000, ge=1, description="JSON documents longer than this are indexed as a background job (202)")

    def with_overrides(self, **values: object) -> "Settings":
        """A copy with the given (non-None) values, e.g. CLI flags over the environment."""
        given = {key: value for key, value in values.items() if value is not None}
        return type(self)(**{**self.model_dump(), **given}) if given else self
