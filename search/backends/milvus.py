"""The cluster backend: Milvus (a server or cluster at ``http://host:19530``, or Milvus Lite in a file).

Four collections, named ``<prefix>_<name>`` (default prefix ``bisearch``; documents are
``<prefix>_documents_v2``):

``passages``
    one row per passage: ``id`` (INT64, assigned here), ``vector`` (FLOAT_VECTOR, metric IP on
    unit vectors = cosine), ``doc_id``, ``gen``, ``chunk_no``, ``start``, ``end``, ``lang``,
    ``mixed``, ``title``, ``source``, ``text``, ``loc`` (JSON: page, page_end, page_label,
    section, ocr, sentence vectors; Milvus Lite has no nullable fields; keys a row lacks read as
    absent, so rows written before a key existed need no migration) and ``keyword_text``: the *normalised* passage
    text (NFKC + simplified, :func:`search.text.language.normalize`) analysed by jieba
    (``lowercase`` + ``cnalphanumonly``), fed to a BM25 function whose output is the sparse
    field ``sparse``. Chinese is thus indexed as words, and a query's normalised text
    (``KeywordQuery.text``) goes through the same analyser.
``documents``
    one row per document, keyed by ``key``, the SHA-256 hex of its id (:func:`doc_key`); the id
    itself is the plain field ``id``. Metadata, counts and the ``gen`` (generation) of its
    committed version. Every collection needs a vector field, so the small ones carry a 2-d
    dummy ``_v``.
``texts``
    document texts (kind 0), page/section/OCR layout as JSON (kind 1) and the original file as
    base64 (kind 2), split into ordered pieces of at most 16,000 characters (at most 64,000
    UTF-8 bytes, under VARCHAR's 65,535), keyed by ``(gen, slot in the batch, kind, piece)`` and rejoined on read,
    so any document round-trips exactly.
``meta``
    the model (name, dimension, prompts) and the write journal.

Keys. No user string is ever a primary key: Milvus Lite 2.5 splices primary keys into SQL on
upsert and delete, and pymilvus's ``query_iterator`` pages on unescaped string keys. Primary keys
are int64 (passages), hex (documents) or digits and colons (texts, journal rows). The first
documents collection (``<prefix>_documents``, keyed by the id) is copied into the keyed one on
open and then dropped (:meth:`MilvusBackend._migrate`).

Ids. Passage ids and generations come from one allocator: ``(ms since 2024 << 20) | (tag << 10)
| seq`` with a random 10-bit ``tag`` per backend object and a per-process clock that never goes
back (a big batch borrows future milliseconds). Ids are never reused; two writers could only
collide by taking the same millisecond *and* the same tag. Generations are ordered in time.

Atomic writes (Milvus has no transactions). A passage is visible only when its ``(doc_id,
gen)`` matches the committed ``gen`` of its document row; every search and ``rows()`` checks
that against the ``documents`` collection. A write:

1. journals its doc ids under a new generation ``G`` (``meta`` rows ``pending:G:...``);
2. inserts the new passages and text pieces with ``gen = G`` (invisible: the document rows
   still name the old generation, or none);
3. commits with ONE upsert of all the batch's document rows (``gen = G``), which is the
   only step that changes what readers see (one message; atomic on a single shard, as in
   Milvus Lite; on a multi-shard cluster each document still flips whole);
4. deletes rows of older generations of those documents, then the journal rows.

If anything fails before step 3, the new rows are deleted (best effort) and the old state
stays visible; rows that could not be deleted stay invisible and are removed by the next
write of the same document or, from their journal rows, when a backend opens more than
:data:`RECOVER_AFTER_S` later. A delete journals, removes the document row first (the
commit point) and then the passages and texts of that and older generations.

Filters are Milvus boolean expressions over ``lang``, ``doc_id`` and ``key`` with strings escaped
(:func:`quote`); a doc id holding a line break cannot be written in an expression, so it is
refused on write (:func:`search.backends.codec.check_doc_id`, for both backends).
``consistency_level="Strong"`` makes each write visible to the next query. BM25 scores are
returned positive, higher better. A keyword search with quoted phrases keeps only passages that
hold them (:func:`search.backends.codec.holds_phrases`, the same rule the local backend answers
from its indexes): it reads the hits' text and fetches more hits until ``k`` are kept.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import threading
import time
from datetime import datetime, timezone
from functools import wraps
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar
from urllib.parse import urlparse

import numpy as np

from search.backends.base import BackendError, DocumentRefused, Fields, ModelMismatchError, PreparedDocument, Row
from search.backends.codec import (MAX_ID_CHARS, check_model, check_write, holds_phrases, layout, passage_counts,
                                   stats_counts, stored_document, stored_passage)
from search.errors import BisearchError
from search.text.language import normalize
from search.types import Document, DocumentSummary, Filter, KeywordQuery, Lang, ModelInfo, Origin, Scored, SentenceVectors

log = logging.getLogger(__name__)
# pymilvus logs every failed RPC (several lines each) before raising; the adapter raises one clear line instead.
logging.getLogger("pymilvus").setLevel(logging.CRITICAL)

ANALYZER = {"tokenizer": "jieba", "filter": ["lowercase", "cnalphanumonly"]}
PIECE_CHARS = 16_000  # 4 UTF-8 bytes at most per character: 64,000 bytes < 65,535
MAX_VARCHAR = 65_535
INSERT_ROWS = 256  # passages per insert call
INSERT_PIECES = 48  # text pieces per insert call (≤ 3 MB)
QUERY_BATCH = 1_000  # ids per `in [...]` expression
MAX_TOPK = 16_384  # Milvus's limit on k
RECOVER_AFTER_S = 600  # journal entries older than this are cleaned up on open
EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
DUMMY = [0.0, 0.0]
SERVER_SCHEMES = ("http", "https", "tcp", "grpc", "unix")
TEXT, LAYOUT, FILE = 0, 1, 2
MAX_SENTENCES_FIELD = 48_000  # base64 characters: well inside a JSON field's 64 KiB
COLLECTIONS = {"passages": "passages", "documents": "documents_v2", "texts": "texts", "meta": "meta"}
LEGACY_DOCUMENTS = "documents"  # the first documents collection: the user's id as primary key
#: The passage fields :meth:`MilvusBackend.rows` reads: always the origin, then those of each field asked for.
ORIGIN_FIELDS = ("id", "lang", "doc_id", "gen")
ROW_FIELDS = {Fields.PASSAGE: ("chunk_no", "start", "end", "mixed", "title", "source", "text", "loc"),
              Fields.VECTOR: ("vector",), Fields.SENTENCES: ("loc",)}

T = TypeVar("T")
Schema = list[tuple[str, Any, dict[str, Any]]]  # (name, DataType, parameters)

_lite_lock = threading.Lock()
_lite_users: dict[str, int] = {}  # Milvus Lite file -> open backends in this process


def _sentences_field(sentences: SentenceVectors | None) -> str | None:
    """Sentence vectors as base64 for the JSON field, or None when absent or too big for it."""
    if sentences is None:
        return None
    encoded = base64.b64encode(sentences.to_bytes()).decode()
    return encoded if len(encoded) <= MAX_SENTENCES_FIELD else None


def quote(value: str) -> str:
    """A Milvus expression string literal for ``value`` (backslashes and double quotes escaped)."""
    if "\n" in value or "\r" in value:
        raise BackendError(f"a line break cannot be used in a Milvus filter: {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def doc_key(doc_id: str) -> str:
    """The documents collection's primary key for ``doc_id``: SHA-256 hex, never the user's string."""
    return hashlib.sha256(doc_id.encode("utf-8", "surrogatepass")).hexdigest()


def one_of(field: str, values: Iterable[str]) -> str:
    """A Milvus expression: ``field`` equals one of ``values`` (each escaped by :func:`quote`)."""
    return f"{field} in [{', '.join(quote(value) for value in values)}]"


def _batches(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    return (items[start:start + size] for start in range(0, len(items), size))


def _document_fields() -> Schema:
    """The documents collection's fields besides its primary key ``key``."""
    from pymilvus import DataType

    varchar = DataType.VARCHAR
    return [
        ("id", varchar, {"max_length": MAX_ID_CHARS}), ("gen", DataType.INT64, {}),
        ("title", varchar, {"max_length": MAX_VARCHAR}), ("source", varchar, {"max_length": MAX_VARCHAR}),
        ("lang", varchar, {"max_length": 8}), ("sha256", varchar, {"max_length": 64}),
        ("media_type", varchar, {"max_length": 255}), ("added_at", varchar, {"max_length": 32}),
        ("chars", DataType.INT64, {}), ("chunks", DataType.INT64, {}), ("chunks_en", DataType.INT64, {}),
        ("chunks_zh", DataType.INT64, {}), ("chunks_mixed", DataType.INT64, {}),
        ("pieces", DataType.JSON, {}),
    ]


def _small_collections() -> dict[str, Schema]:
    """Fields of the collections other than passages; the first one is the primary key."""
    from pymilvus import DataType

    varchar = DataType.VARCHAR
    return {
        "documents": [("key", varchar, {"max_length": 64}), *_document_fields()],
        "texts": [("key", varchar, {"max_length": 64}), ("doc_id", varchar, {"max_length": MAX_ID_CHARS}),
                  ("gen", DataType.INT64, {}), ("kind", DataType.INT64, {}), ("piece", DataType.INT64, {}),
                  ("data", varchar, {"max_length": MAX_VARCHAR})],
        "meta": [("key", varchar, {"max_length": 256}), ("value", DataType.JSON, {})],
    }


def lite_core_version() -> str:
    """The installed milvus-lite version; refuses 3.x, a pure-Python re-implementation of Milvus."""
    try:
        version = metadata.version("milvus-lite")
    except metadata.PackageNotFoundError:
        raise BackendError("Milvus Lite is not installed: pip install 'bisearch[milvus]'") from None
    if int(version.split(".")[0]) >= 3:
        raise BackendError(f"milvus-lite {version} is a pure-Python re-implementation, not the Milvus core "
                           f"(wrong BM25, analyser filters ignored): install milvus-lite 2.5.x "
                           f"(pip install 'bisearch[milvus]')")
    return version


class _Ids:
    """Unique, time-ordered int64 ids: ``(ms << 20) | (tag << 10) | seq``."""

    def __init__(self) -> None:
        self.tag = secrets.randbits(10)
        self.ms = 0
        self.seq = 0
        self.lock = threading.Lock()

    def take(self, n: int) -> list[int]:
        with self.lock:
            now = int(time.time() * 1000) - EPOCH_MS
            if now > self.ms:
                self.ms, self.seq = now, 0
            ids = []
            for _ in range(n):
                if self.seq == 1024:
                    self.ms, self.seq = self.ms + 1, 0
                ids.append((self.ms << 20) | (self.tag << 10) | self.seq)
                self.seq += 1
            return ids


def _age_s(gen: int) -> float:
    return time.time() - (EPOCH_MS + (gen >> 20)) / 1000


def _one_line(error: BaseException) -> str:
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return " ".join(str(message).split())


def _guarded(method: Callable[..., T]) -> Callable[..., T]:
    """Turns any failure of the Milvus client into a one-line :class:`BackendError` naming the URI."""

    @wraps(method)
    def wrapper(self: "MilvusBackend", *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except BisearchError:  # already one line, of its kind (a refused write, a mismatch)
            raise
        except Exception as error:  # pymilvus raises MilvusException, grpc errors, ValueError, ...
            raise BackendError(f"Milvus at {self.uri}: {method.__name__} failed: {_one_line(error)}") from error

    return wrapper


def _pieces(text: str) -> list[str]:
    return [text[i:i + PIECE_CHARS] for i in range(0, len(text), PIECE_CHARS)] or [""]


def _row(row: dict[str, Any], fields: Fields) -> Row:
    """A passage row as :meth:`MilvusBackend.rows` read it (only the ``fields`` asked for)."""
    loc = row.get("loc") or {}
    sentences = loc.get("sentences") if Fields.SENTENCES in fields else None
    return Row(Origin(Lang(row["lang"]), row["doc_id"]),
               stored_passage({**row, **loc}) if Fields.PASSAGE in fields else None,
               np.asarray(row["vector"], dtype=np.float32) if Fields.VECTOR in fields else None,
               SentenceVectors.from_bytes(base64.b64decode(sentences)) if sentences else None)


class MilvusBackend:
    """Documents and passages in Milvus collections ``<prefix>_*`` at ``uri``."""

    def __init__(self, uri: str, prefix: str = "bisearch", *, token: str = "", connect_timeout: float = 5.0,
                 timeout: float = 60.0, dense_index: str = "AUTOINDEX"):
        self.prefix = prefix
        self.timeout = timeout
        self.dense_index = dense_index
        self._ids = _Ids()
        self._lite: str | None = None
        self._client = None
        lite = urlparse(uri).scheme.lower() not in SERVER_SCHEMES
        if not lite:
            self.uri, target = uri, uri
        else:  # a Milvus Lite file (a path not ending in .db is a folder holding milvus.db)
            path = Path(uri).expanduser()
            if path.suffix != ".db":
                path = path / "milvus.db"
            self.uri = target = str(path.resolve())
            self.lite_version = lite_core_version()
            path.parent.mkdir(parents=True, exist_ok=True)
        self.names = {name: f"{prefix}_{suffix}" for name, suffix in COLLECTIONS.items()}
        self._connect(target, token, connect_timeout, lite)
        try:
            self._open_collections()
            self._recover()
        except BaseException:
            self.close()
            raise

    @property
    def location(self) -> str:
        return self.uri

    @property
    def _where(self) -> str:
        """How messages name this index."""
        return f"Milvus at {self.uri} (collections {self.prefix}_*)"

    # -- connection and schema ---------------------------------------------------------
    def _connect(self, target: str, token: str, connect_timeout: float, lite: bool) -> None:
        from pymilvus import MilvusClient  # an optional extra: imported only when this backend is used

        alias = f"bisearch-{secrets.token_hex(8)}"
        if lite:
            with _lite_lock:
                _lite_users[self.uri] = _lite_users.get(self.uri, 0) + 1
            self._lite = self.uri
        try:
            self._client = MilvusClient(target, token=token, timeout=connect_timeout, alias=alias)
        except Exception as error:
            self.close()
            hint = ""
            if self._lite and "Open local milvus failed" in _one_line(error):
                hint = " (is another process using this Milvus Lite file? Milvus Lite serves one process; " \
                       "use a Milvus server for several)"
            raise BackendError(f"Milvus at {self.uri} cannot be reached: {_one_line(error)}{hint}") from None

    @_guarded
    def _open_collections(self) -> None:
        existing = set(self._client.list_collections(timeout=self.timeout))
        for name, fields in _small_collections().items():
            if self.names[name] not in existing:
                self._create(self.names[name], fields)
        for name in self.names.values():
            if name in existing:
                self._load(name)
        legacy = f"{self.prefix}_{LEGACY_DOCUMENTS}"
        if legacy in existing:
            self._migrate(legacy)

    def _create(self, collection: str, fields: Schema) -> None:
        """Creates a small collection (its first field the primary key, plus the dummy vector ``_v``)."""
        from pymilvus import DataType

        client = self._client
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        for number, (field, kind, params) in enumerate(fields):
            schema.add_field(field, kind, is_primary=number == 0, **params)
        schema.add_field("_v", DataType.FLOAT_VECTOR, dim=2)
        index = client.prepare_index_params()
        index.add_index("_v", index_type="FLAT", metric_type="L2")
        client.create_collection(collection, schema=schema, index_params=index, consistency_level="Strong",
                                 timeout=self.timeout)

    def _migrate(self, legacy: str) -> None:
        """Moves the first documents collection (the id as primary key) to ``documents``: an upsert by
        :func:`doc_key`, then the drop. A migration cut short is redone on the next open from the old
        collection, still whole; one whose rows cannot all be found is refused, the old one kept."""
        self._load(legacy)
        copied = self._copy_legacy(legacy)
        total = self._client.query(legacy, filter="", output_fields=["count(*)"], timeout=self.timeout)
        if copied != total[0]["count(*)"]:
            raise BackendError(f"Milvus at {self.uri}: collection {legacy} (an older layout) cannot be converted "
                               f"({copied} of {total[0]['count(*)']} documents found): drop the {self.prefix}_* "
                               f"collections and ingest the documents again")
        self._client.drop_collection(legacy, timeout=self.timeout)
        log.info("Milvus at %s: %d documents moved from %s to %s", self.uri, copied, legacy, self.names["documents"])

    def _copy_legacy(self, legacy: str) -> int:
        """Upserts the old document rows, found by the ids of the text pieces, into ``documents``
        (its own iterator would page on the ids, unescaped); returns how many were copied."""
        fields = [name for name, _, _ in _document_fields()]
        doc_ids = sorted({row["doc_id"] for row in self._scan(self.names["texts"], ["doc_id"])})
        copied = 0
        for part in _batches(doc_ids, QUERY_BATCH):
            rows = self._client.query(legacy, filter=one_of("id", part), output_fields=fields, timeout=self.timeout)
            for part in _batches(rows, INSERT_PIECES):
                self._client.upsert(self.names["documents"], [
                    {**{field: row[field] for field in fields}, "key": doc_key(row["id"]), "_v": DUMMY}
                    for row in part], timeout=self.timeout)
            copied += len(rows)
        return copied

    def _load(self, name: str) -> None:
        state = self._client.get_load_state(name, timeout=self.timeout).get("state")
        if getattr(state, "name", str(state)) != "Loaded":
            self._client.load_collection(name, timeout=self.timeout)

    def _create_passages(self, dimension: int) -> None:
        from pymilvus import DataType, Function, FunctionType

        client = self._client
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        varchar = DataType.VARCHAR
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
        schema.add_field("doc_id", varchar, max_length=MAX_ID_CHARS)
        schema.add_field("gen", DataType.INT64)
        for field in ("chunk_no", "start", "end"):
            schema.add_field(field, DataType.INT64)
        schema.add_field("lang", varchar, max_length=8)
        schema.add_field("mixed", DataType.BOOL)
        for field in ("title", "source", "text"):
            schema.add_field(field, varchar, max_length=MAX_VARCHAR)
        schema.add_field("loc", DataType.JSON)
        schema.add_field("keyword_text", varchar, max_length=MAX_VARCHAR, enable_analyzer=True,
                         analyzer_params=ANALYZER)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function(name="keyword_bm25", function_type=FunctionType.BM25,
                                     input_field_names=["keyword_text"], output_field_names=["sparse"]))
        index = client.prepare_index_params()
        index.add_index("vector", index_type=self.dense_index, metric_type="IP")
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        client.create_collection(self.names["passages"], schema=schema, index_params=index,
                                 consistency_level="Strong", timeout=self.timeout)

    def _has_passages(self) -> bool:
        return self._client.has_collection(self.names["passages"], timeout=self.timeout)

    # -- model ---------------------------------------------------------------------------
    @_guarded
    def model(self) -> ModelInfo | None:
        rows = self._client.query(self.names["meta"], filter='key == "model"', output_fields=["value"],
                                  timeout=self.timeout)
        return ModelInfo(**rows[0]["value"]) if rows else None

    @_guarded
    def record_model(self, info: ModelInfo) -> None:
        recorded = self.model()
        check_model(recorded, info, self._where)
        if not self._has_passages():
            self._create_passages(info.dimension)
        else:
            dimension = self._stored_dimension()
            if dimension != info.dimension:
                raise ModelMismatchError(f"Milvus at {self.uri}: collection {self.names['passages']} holds "
                                         f"{dimension}-d vectors, not {info.dimension}-d ({info.name!r})")
        if recorded is None:
            self._client.upsert(self.names["meta"], [{"key": "model", "value": info.as_dict(), "_v": DUMMY}],
                                timeout=self.timeout)

    def _stored_dimension(self) -> int:
        described = self._client.describe_collection(self.names["passages"], timeout=self.timeout)
        field = next(f for f in described["fields"] if f["name"] == "vector")
        return int(field["params"]["dim"])

    # -- writes ----------------------------------------------------------------------------
    @_guarded
    def write(self, documents: Sequence[PreparedDocument]) -> None:
        batch = list({prepared.document.id: prepared for prepared in documents}.values())  # last one wins
        if not batch:
            return
        check_write(batch, self.model(), self._where)
        if not self._has_passages():
            raise BackendError(f"{self._where}: the passages collection is missing: record the model again")
        for prepared in batch:
            self._check_lengths(prepared)
        gen = self._ids.take(1)[0]
        journal = self._journal(gen, [prepared.document.id for prepared in batch])
        try:
            self._insert_passages(batch, gen)
            rows = [self._insert_texts(prepared, gen, slot) for slot, prepared in enumerate(batch)]
            self._client.upsert(self.names["documents"], rows, timeout=self.timeout)  # the commit point
        except BaseException:
            self._discard(gen, batch)
            raise
        try:  # committed: what follows only removes invisible rows (the journal covers a failure)
            self._forget_older([prepared.document.id for prepared in batch], gen, inclusive=False)
            self._client.delete(self.names["meta"], ids=journal, timeout=self.timeout)
        except Exception as error:
            log.warning("Milvus at %s: written, but old rows not yet removed (%s)", self.uri, _one_line(error))

    def _check_lengths(self, prepared: PreparedDocument) -> None:
        """Milvus's own limit (the contract's rules are :func:`check_write`'s): VARCHAR fields of 64 KiB."""
        for value in (prepared.document.title, prepared.document.source, *(p.text for p in prepared.passages)):
            if len(value.encode("utf-8")) > MAX_VARCHAR:
                raise DocumentRefused(f"{self._where}: document {prepared.document.id!r} has a title, source or "
                                      f"passage longer than Milvus's {MAX_VARCHAR} bytes")

    def _journal(self, gen: int, doc_ids: list[str]) -> list[str]:
        keys = [f"pending:{gen}:{number}" for number in range(len(doc_ids))]
        self._client.upsert(self.names["meta"], [{"key": key, "value": {"doc_id": doc_id, "gen": gen}, "_v": DUMMY}
                                                 for key, doc_id in zip(keys, doc_ids)], timeout=self.timeout)
        return keys

    def _insert_passages(self, batch: list[PreparedDocument], gen: int) -> None:
        rows = []
        for prepared in batch:
            ids = self._ids.take(len(prepared.passages))
            vectors = np.asarray(prepared.vectors, dtype=np.float32)
            for row, (passage_id, passage, vector) in enumerate(zip(ids, prepared.passages, vectors)):
                sentences = prepared.sentences_of(row)
                rows.append({
                    "id": passage_id, "vector": vector.tolist(), "doc_id": passage.doc_id, "gen": gen,
                    "chunk_no": passage.chunk_no, "start": passage.start, "end": passage.end,
                    "lang": Lang(passage.lang).value, "mixed": bool(passage.mixed),
                    "title": prepared.document.title, "source": prepared.document.source, "text": passage.text,
                    "loc": {"page": passage.page, "page_end": passage.page_end, "page_label": passage.page_label,
                            "section": passage.section, "ocr": passage.ocr,
                            # sentence vectors: base64 (lite has no nullable fields)
                            "sentences": _sentences_field(sentences)},
                    "keyword_text": normalize(passage.text),
                })
        for part in _batches(rows, INSERT_ROWS):
            self._client.insert(self.names["passages"], part, timeout=self.timeout)

    def _insert_texts(self, prepared: PreparedDocument, gen: int, slot: int) -> dict[str, object]:
        """Stores a document's text, layout and file as pieces; returns its (uncommitted) document row."""
        document = prepared.document
        parts = {TEXT: _pieces(document.text), LAYOUT: _pieces(json.dumps(layout(document), ensure_ascii=False))}
        if prepared.original is not None:
            parts[FILE] = _pieces(base64.b64encode(prepared.original).decode("ascii"))
        rows = [{"key": f"{gen}:{slot}:{kind}:{number}", "doc_id": document.id, "gen": gen, "kind": kind, "piece": number,
                 "data": data, "_v": DUMMY} for kind, pieces in parts.items() for number, data in enumerate(pieces)]
        for part in _batches(rows, INSERT_PIECES):
            self._client.insert(self.names["texts"], part, timeout=self.timeout)
        return {
            "key": doc_key(document.id), "id": document.id, "gen": gen, "title": document.title,
            "source": document.source, "lang": Lang(document.lang).value, "sha256": document.sha256,
            "media_type": document.media_type,
            "added_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"), "chars": len(document.text),
            **passage_counts(prepared.passages),
            "pieces": {str(kind): len(pieces) for kind, pieces in parts.items()}, "_v": DUMMY,
        }

    def _discard(self, gen: int, batch: list[PreparedDocument]) -> None:
        """Best effort after a failed write: remove its uncommitted rows (they are invisible anyway)."""
        try:
            for name in ("passages", "texts"):
                self._client.delete(self.names[name], filter=f"gen == {gen}", timeout=self.timeout)
            self._client.delete(self.names["meta"], ids=[f"pending:{gen}:{n}" for n in range(len(batch))],
                                timeout=self.timeout)
        except Exception as error:  # the journal rows stay: a later open or write removes the rows
            log.warning("Milvus at %s: could not remove an unfinished write (%s)", self.uri, _one_line(error))

    def _forget_older(self, doc_ids: list[str], gen: int, inclusive: bool) -> None:
        """Deletes passages and text pieces of ``doc_ids`` from generations before ``gen``."""
        op = "<=" if inclusive else "<"
        for part in _batches(doc_ids, QUERY_BATCH):
            for name in ("passages", "texts"):
                self._client.delete(self.names[name], filter=f"{one_of('doc_id', part)} and gen {op} {gen}",
                                    timeout=self.timeout)

    @_guarded
    def delete(self, doc_id: str) -> bool:
        committed = self._committed([doc_id]).get(doc_id)
        if committed is None:
            return False
        marker = self._ids.take(1)[0]
        journal = self._journal(marker, [doc_id])
        self._client.delete(self.names["documents"], ids=[doc_key(doc_id)],  # the commit point
                            timeout=self.timeout)
        self._forget_older([doc_id], committed, inclusive=True)
        self._client.delete(self.names["meta"], ids=journal, timeout=self.timeout)
        return True

    def _recover(self) -> None:
        """Removes leftovers of writes that failed or were killed more than RECOVER_AFTER_S ago."""
        rows = self._client.query(self.names["meta"], filter='key like "pending:%"', output_fields=["key", "value"],
                                  timeout=self.timeout)
        stale = [row for row in rows if _age_s(int(row["value"]["gen"])) > RECOVER_AFTER_S]
        for row in stale:
            doc_id, gen = row["value"]["doc_id"], int(row["value"]["gen"])
            committed = self._committed([doc_id]).get(doc_id)
            for name in ("passages", "texts"):
                if committed == gen:
                    condition = f"gen < {gen}"
                elif committed is None:
                    condition = f"gen <= {gen}"
                else:
                    condition = f"gen == {gen}"
                if name == "passages" and not self._has_passages():
                    continue
                self._client.delete(self.names[name], filter=f"doc_id == {quote(doc_id)} and {condition}",
                                    timeout=self.timeout)
            self._client.delete(self.names["meta"], ids=[row["key"]], timeout=self.timeout)

    # -- visibility ----------------------------------------------------------------------
    def _committed(self, doc_ids: Iterable[str]) -> dict[str, int]:
        """The committed generation of each document that exists."""
        keys = sorted({doc_key(doc_id) for doc_id in doc_ids})
        found: dict[str, int] = {}
        for part in _batches(keys, QUERY_BATCH):
            rows = self._client.query(self.names["documents"], filter=one_of("key", part),
                                      output_fields=["id", "gen"], timeout=self.timeout)
            found.update({row["id"]: int(row["gen"]) for row in rows})
        return found

    def _visible(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        committed = self._committed(row["doc_id"] for row in rows)
        return [row for row in rows if committed.get(row["doc_id"]) == int(row["gen"])]

    # -- searches ----------------------------------------------------------------------------
    @staticmethod
    def _expression(where: Filter) -> str:
        clauses = []
        if where.lang is not None:
            clauses.append(f"lang == {quote(Lang(where.lang).value)}")
        if where.doc_ids:
            if any("\n" in doc_id or "\r" in doc_id for doc_id in where.doc_ids):
                allowed = [doc_id for doc_id in where.doc_ids if "\n" not in doc_id and "\r" not in doc_id]
                if not allowed:
                    return "id < 0"
                where = Filter(where.lang, tuple(allowed))
            clauses.append(one_of("doc_id", where.doc_ids))
        return " and ".join(clauses)

    def _search(self, data: list, field: str, metric: str, k: int, where: Filter,
                phrases: tuple[str, ...] = ()) -> list[tuple[int, float]]:
        """Top ``k`` visible hits; with ``phrases``, only passages that hold them (their text read and
        checked by :func:`holds_phrases`). Fetches more hits until ``k`` are kept or none are left."""
        if k <= 0 or not self._has_passages():
            return []
        expression = self._expression(where)
        output = ["doc_id", "gen", "text"] if phrases else ["doc_id", "gen"]
        limit = min(k + 16, MAX_TOPK)
        while True:
            hits = self._client.search(self.names["passages"], data=data, anns_field=field, limit=limit,
                                       filter=expression, output_fields=output,
                                       search_params={"metric_type": metric}, timeout=self.timeout)[0]
            rows = [{"id": int(hit["id"]), "score": float(hit["distance"]), **hit["entity"]} for hit in hits]
            kept = [row for row in self._visible(rows) if not phrases or holds_phrases(row["text"], phrases)]
            if len(kept) >= k or len(rows) < limit or limit == MAX_TOPK:
                return [(row["id"], row["score"]) for row in kept[:k]]
            limit = min(limit * 4, MAX_TOPK)

    @_guarded
    def dense_search(self, vector: np.ndarray, k: int, where: Filter) -> Scored:
        query = np.asarray(vector, dtype=np.float32).reshape(-1).tolist()
        return self._search([query], "vector", "IP", k, where)

    @_guarded
    def keyword_search(self, query: KeywordQuery, k: int, where: Filter) -> Scored:
        text = query.text.strip() or " ".join(query.tokens)
        if not text:
            return []
        found = self._search([text], "sparse", "BM25", k, where, query.phrases)
        if any(score < 0 for _, score in found):  # engines that report BM25 as a distance
            found = [(passage_id, -score) for passage_id, score in found]
        return sorted(found, key=lambda pair: -pair[1])

    # -- reads -----------------------------------------------------------------------------
    @_guarded
    def rows(self, ids: Iterable[int], fields: Fields = Fields.ORIGIN) -> dict[int, Row]:
        ids = sorted({int(passage_id) for passage_id in ids})
        if not ids or not self._has_passages():
            return {}
        output = sorted({*ORIGIN_FIELDS, *(name for field, names in ROW_FIELDS.items() if field in fields
                                           for name in names)})
        found: list[dict[str, Any]] = []
        for part in _batches(ids, QUERY_BATCH):
            found += self._client.query(self.names["passages"], filter=f"id in [{', '.join(map(str, part))}]",
                                        output_fields=output, timeout=self.timeout)
        return {int(row["id"]): _row(row, fields) for row in self._visible(found)}

    def _document_row(self, doc_id: str, fields: list[str]) -> dict[str, Any] | None:
        rows = self._client.query(self.names["documents"], filter=f"key == {quote(doc_key(doc_id))}",
                                  output_fields=fields, timeout=self.timeout)
        return rows[0] if rows else None

    def _read_pieces(self, doc_id: str, gen: int, kind: int, count: int) -> str:
        pieces: dict[int, str] = {}
        for start in range(0, count, INSERT_PIECES):
            rows = self._client.query(
                self.names["texts"], filter=f"doc_id == {quote(doc_id)} and gen == {gen} and kind == {kind} "
                                            f"and piece >= {start} "
                                            f"and piece < {start + INSERT_PIECES}",
                output_fields=["piece", "data"], timeout=self.timeout)
            pieces.update({int(row["piece"]): row["data"] for row in rows})
        if sorted(pieces) != list(range(count)):
            raise BackendError(f"Milvus at {self.uri}: text pieces of generation {gen} are missing")
        return "".join(pieces[number] for number in range(count))

    @_guarded
    def document(self, doc_id: str) -> Document | None:
        row = self._document_row(doc_id, ["gen", "title", "source", "lang", "media_type", "pieces"])
        if row is None:
            return None
        gen, counts = int(row["gen"]), row["pieces"]
        text = self._read_pieces(doc_id, gen, TEXT, int(counts[str(TEXT)]))
        layout_values = json.loads(self._read_pieces(doc_id, gen, LAYOUT, int(counts[str(LAYOUT)])))
        return stored_document({**row, "id": doc_id, "text": text}, layout_values)

    @_guarded
    def file(self, doc_id: str) -> bytes | None:
        row = self._document_row(doc_id, ["gen", "pieces"])
        if row is None or str(FILE) not in row["pieces"]:
            return None
        return base64.b64decode(self._read_pieces(doc_id, int(row["gen"]), FILE, int(row["pieces"][str(FILE)])))

    @_guarded
    def document_hash(self, doc_id: str) -> str | None:
        row = self._document_row(doc_id, ["sha256"])
        return row["sha256"] if row else None

    def _scan(self, collection: str, fields: list[str]) -> list[dict[str, Any]]:
        """Every row of a collection keyed by ``key`` (the iterator pages on it: hex, digits, colons)."""
        iterator = self._client.query_iterator(collection, batch_size=1000, filter='key != ""',
                                               output_fields=fields, timeout=self.timeout)
        rows: list[dict[str, Any]] = []
        try:
            while batch := iterator.next():
                rows += batch
        finally:
            iterator.close()
        return rows

    @_guarded
    def documents(self, limit: int = 50, offset: int = 0) -> list[DocumentSummary]:
        ids = sorted(row["id"] for row in self._scan(self.names["documents"], ["id"]))[offset:offset + limit]
        if not ids:
            return []
        fields = ["id", "title", "source", "lang", "chars", "chunks", "media_type", "added_at"]
        rows = {row["id"]: row for row in self._client.query(
            self.names["documents"], filter=one_of("key", map(doc_key, ids)), output_fields=fields,
            timeout=self.timeout)}
        return [DocumentSummary(doc_id, rows[doc_id]["title"], rows[doc_id]["source"], Lang(rows[doc_id]["lang"]),
                                int(rows[doc_id]["chars"]), int(rows[doc_id]["chunks"]), rows[doc_id]["media_type"],
                                rows[doc_id]["added_at"]) for doc_id in ids if doc_id in rows]

    @_guarded
    def count(self) -> int:
        rows = self._client.query(self.names["documents"], filter="", output_fields=["count(*)"],
                                  timeout=self.timeout)
        return int(rows[0]["count(*)"])

    @_guarded
    def stats(self) -> dict[str, object]:
        per_lang = [f"chunks_{lang.value}" for lang in Lang]
        rows = self._scan(self.names["documents"], [*per_lang, "chunks_mixed"])
        counts = stats_counts(len(rows), {name.removeprefix("chunks_"): sum(int(row[name]) for row in rows)
                                          for name in per_lang}, sum(int(row["chunks_mixed"]) for row in rows))
        info = self.model()
        stats: dict[str, object] = {"backend": "milvus", "uri": self.uri, "collections": f"{self.prefix}_*",
                                    **counts, "model": info.as_dict() if info else None}
        if self._lite:
            stats["milvus_lite"] = self.lite_version
        return stats

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception as error:
                log.warning("Milvus at %s: close failed (%s)", self.uri, _one_line(error))
        lite, self._lite = self._lite, None
        if lite is not None:
            with _lite_lock:
                _lite_users[lite] -= 1
                if _lite_users[lite] > 0:
                    return
                del _lite_users[lite]
                from milvus_lite.server_manager import server_manager_instance

                if lite in server_manager_instance._servers:
                    server_manager_instance.release_server(lite)

    def __enter__(self) -> "MilvusBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
