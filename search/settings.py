"""Every setting a user can change, read once from ``BISEARCH_*`` environment variables.

Built once (``cli.main``, ``create_app`` or a test) and passed down; no module reads the
environment on its own. CLI flags override the environment by building a copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args, get_origin

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


#: The default embedding model (assembled offline by search/model/download.py).
DEFAULT_MODEL_NAME = "google/embeddinggemma-300m"
MATRYOSHKA_DIMS = (768, 512, 256, 128)


class Settings(BaseSettings):
    """The service's settings (environment: ``BISEARCH_<NAME>``)."""

    model_config = SettingsConfigDict(env_prefix="BISEARCH_", frozen=True, extra="ignore")

    # where the index lives and which storage backend keeps it
    index: Path = Field(Path("index"), description="index folder of the local backend (`--index`)")
    backend: Literal["local", "milvus"] = Field(
        "local", description="storage backend: `local` (SQLite + FAISS) or `milvus` (`--backend`)")
    milvus_uri: str | None = Field(
        None, description="Milvus: a file path (Milvus Lite) or `http://host:19530` (`--milvus-uri`)")

    # the model
    model: str = Field(DEFAULT_MODEL_NAME, description="sentence-transformers folder or hub id (`--model`)")
    model_dir: Path | None = Field(None, description="where the default model is assembled and verified "
                                                     "(unset: `$XDG_CACHE_HOME/bisearch/models/embeddinggemma-300m`)")
    dim: int | None = Field(None, description="Matryoshka vector size of a new index: 768, 512, 256 or 128 "
                                              "(`--dim`; unset: the model's; an existing index keeps its own)")
    int8: bool = Field(False, description="dynamic int8 Linear layers on CPU (`--int8`)")
    device: str | None = Field(None, description="torch device (unset: `cuda` when present, else `cpu`)")
    runtime: Literal["auto", "torch", "onnx", "openvino"] = Field(
        "auto", description="model runtime (`--runtime`): `auto` (OpenVINO on a CPU, ONNX Runtime for `int8`; torch "
                            "on a GPU), `torch`, `onnx` (ONNX Runtime) or `openvino`; both ONNX runtimes run the "
                            "export made once beside the model by `bisearch model` and checked against torch")
    precision: Literal["auto", "fp32", "bf16", "int8"] = Field(
        "auto", description="`auto`: `bf16` on a CPU with bf16 matrix instructions (AMX or AVX512-BF16) on OpenVINO "
                            "(about 2-3x fp32's speed, vectors at cosine >= 0.9999 of fp32's), on torch for passages only; "
                            "else `fp32`; `fp32`; `bf16` (openvino or torch); `int8`: ONNX quantised or torch "
                            "dynamic (fp16 is refused: it gives wrong EmbeddingGemma vectors)")
    query_batch: int = Field(64, ge=1, le=256, description="concurrent queries encoded together in one model call")
    query_gather_ms: float = Field(3.0, ge=0, le=100, description="milliseconds to wait for more queries, "
                                                                 "only when some are already queued")
    query_cache: int = Field(1024, ge=0, description="query vectors kept (LRU; 0: off)")
    model_process: bool | None = Field(None, description="the model in a process of its own, so request handling "
                                                         "never holds up a forward pass (unset: on for "
                                                         "`bisearch serve`, off elsewhere)")
    chunk_tokens: int = Field(256, ge=8, le=2048, description="model tokens per passage")
    passage_titles: bool = Field(True, description="a new index embeds each passage with its document's title and "
                                                   "section in the model's title slot (`title: {title} › {section} | "
                                                   "text: …`, not `title: none`); an existing index keeps the way it "
                                                   "records, so its vectors never mix")

    # the FAISS index of the local backend
    index_kind: Literal["auto", "flat", "hnsw", "ivfpq"] = Field(
        "auto", description="FAISS base index: `auto` is exact (flat) below `BISEARCH_INDEX_EXACT_LIMIT` passages, "
                            "IVF-PQ with exact re-scoring above")
    index_exact_limit: int = Field(200_000, ge=1, description="`auto`: exact search below this many passages")
    index_nprobe: int | None = Field(None, ge=1, description="IVF lists searched (unset: an eighth of the lists, "
                                                             "at least 64)")
    index_ef_search: int = Field(128, ge=1, description="HNSW search depth")

    # the HTTP service
    api_key: str | None = Field(None, description="when set, write endpoints (`POST`/`DELETE /documents`, "
                                                  "`POST /ingest`, `DELETE /jobs/{id}`) need it in `X-API-Key` "
                                                  "(compared in constant time); reads stay open")
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="largest request body or upload in bytes "
                                                                        "(413; a non-numeric `Content-Length` is 400)")
    ingest_root: Path | None = Field(None, description="`POST /ingest` reads files only under this folder "
                                                       "(unset: `/ingest` is disabled)")
    # what a file may be (search/loading/): checked before and while it is read
    max_file_bytes: int = Field(100 * 1024 * 1024, ge=1, description="largest file read, in bytes (CLI ingest, "
                                                                     "upload, `/ingest`)")
    max_pages: int = Field(2000, ge=1, description="most pages of a PDF (pages are read one at a time)")
    max_unzipped_bytes: int = Field(200 * 1024 * 1024, ge=1024,
                                    description="largest declared unpacked size of a DOCX in bytes (zip-bomb guard)")
    max_image_pixels: int = Field(100_000_000, ge=1, description="largest image (or image in a PDF page read by "
                                                                 "OCR), checked before decoding (bomb guard)")
    ocr: Literal["auto", "always", "never"] = Field(
        "auto", description="OCR: auto reads images and the PDF pages without usable text; always every PDF "
                            "page; never none (images refused) (`--ocr`)")
    ocr_engine: Literal["auto", "tesseract", "rapidocr"] = Field(
        "auto", description="OCR engine: tesseract (Debian's tesseract-ocr + tesseract-ocr-chi-sim), rapidocr "
                            "(PP-OCRv4 inside its wheel), auto: tesseract where installed, else rapidocr (docs/ocr.md)")
    max_text_chars: int = Field(20_000_000, ge=1, description="most characters of text one file may yield (more: "
                                                              "the file fails alone, 422 for an upload)")
    max_page_chars: int = Field(200_000, ge=1, description="most characters of text one PDF page may yield (a PDF "
                                                            "whose pages share one huge stream is a text bomb)")
    # each file is read in a child process under these limits (search/loading/isolated.py, docs/security.md)
    parse_seconds: float = Field(60.0, gt=0, le=3600, description="longest time one file may take to read, wall "
                                                                 "clock and CPU (more: the file fails alone), plus "
                                                                 "`ocr_page_seconds` for each page read by OCR")
    ocr_page_seconds: float = Field(30.0, gt=0, le=600, description="time allowed a file for each page it has read "
                                                                    "by OCR (a page takes a few seconds)")
    parse_memory_mb: int = Field(2048, ge=64, description="most memory in MiB the reader of one file may add")
    parse_processes: int = Field(2, ge=1, le=64, description="uploads the server reads at once, each in a child "
                                                             "process; the rest wait")
    search_threads: int = Field(64, ge=1, le=256,
                                description="searches (and report questions) running at once; at least "
                                            "`BISEARCH_QUERY_BATCH`, or batches stay small; the rest queue")
    host: str = Field("127.0.0.1", description="address the server binds (`serve --host`)")
    allowed_hosts: str | None = Field(
        None, description="comma-separated `Host` names served, `*` for any (unset: `localhost`, `127.0.0.1`, "
                          "`::1` and the bound host)")
    max_report_chars: int = Field(200_000, ge=1, description="most quoted characters in one report (more: 422)")
    job_threshold_chars: int = Field(
        20_000, ge=1, description="JSON documents longer than this many characters (and `/ingest` file sets of "
                                  "more bytes, or any folder) run as background jobs (202)")
    max_queued_jobs: int = Field(8, ge=1, le=1000, description="background jobs queued or running at once; beyond "
                                                                "them a write that would be a job is 429 with "
                                                                "`Retry-After`")

    def with_overrides(self, **values: object) -> "Settings":
        """A copy with the given (non-None) values, e.g. CLI flags over the environment."""
        given = {key: value for key, value in values.items() if value is not None}
        return type(self)(**{**self.model_dump(), **given}) if given else self


# -- docs/configuration.md, generated from the field descriptions above ---------------------
CONFIGURATION_DOC = "docs/configuration.md"
_DOC_INTRO = """\
# Configuration

<!-- Generated from the Settings field descriptions in search/settings.py by
     `python -m search.settings --markdown > docs/configuration.md`; do not edit by hand
     (tests/unit/test_configuration_doc.py fails when this file is not current). -->

Every setting a user can change is a field of one `Settings` object (`search/settings.py`,
pydantic-settings), read once from `BISEARCH_<NAME>` environment variables, built once
(`bisearch` commands, `create_app` or a test) and passed down: no module reads the environment
on its own. Command-line flags (`--index`, `--backend`, `--milvus-uri`, `--model`, `--dim`,
`--int8`, `serve --host`) override the environment. A value of the wrong type or out of range
is a one-line error naming the variable. Booleans take `true`/`false` (or `1`/`0`).
"""


def _values(field) -> str:
    """What a field accepts, from its type and bounds: choices, ``true``/``false``, a range."""
    kinds = {int: "integer", float: "number", str: "text", Path: "folder", bool: "`true` / `false`"}
    options = [arg for arg in get_args(field.annotation) if arg is not type(None)]
    if get_origin(field.annotation) is Literal:
        return " / ".join(f"`{option}`" for option in options)
    kind = kinds.get(options[0] if options else field.annotation, "text")
    low = next((m.ge for m in field.metadata if hasattr(m, "ge")), None)
    high = next((m.le for m in field.metadata if hasattr(m, "le")), None)
    if low is not None and high is not None:
        return f"{kind} {low}–{high}"
    return f"{kind} ≥ {low}" if low is not None else kind


def _default(value: object) -> str:
    if value is None:
        return "unset"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def configuration_markdown() -> str:
    """``docs/configuration.md``: one row per ``Settings`` field, from its description."""
    rows = ["| setting (environment) | default | values | meaning |", "| --- | --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `BISEARCH_{name.upper()}` | {_default(field.default)} | {_values(field)} | {meaning} |")
    return _DOC_INTRO + "\n" + "\n".join(rows) + "\n"


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m search.settings", description="the settings reference")
    parser.add_argument("--markdown", action="store_true", required=True,
                        help=f"print {CONFIGURATION_DOC} (generated from the field descriptions)")
    parser.parse_args()
    print(configuration_markdown(), end="")
