"""SQLite storage of the local backend: documents, passages (text, offsets, vectors), FTS5, tombstones.

Writes and bookkeeping use one connection under the store's lock; the reads of a search
(candidates, passages, vectors, the FTS5 and substring checks of phrases and exclusions) use
read-only connections of a pool, without the lock: in WAL mode each sees the last committed
state, and one long read never holds up another search or a write.

SQLite is the source of truth. Every committed write bumps a generation counter; deleted
passage ids are kept as tombstones with the generation that removed them, and passage ids
only grow (``meta.next_id``), so a FAISS snapshot plus "rows newer than it" and "tombstones
newer than it" always rebuilds the exact committed state.
"""

from __future__ import annotations

import functools
import json
import queue
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from search.backends.base import BackendError, Fields, PreparedDocument, Row
from search.backends.codec import (LAYOUT_FIELDS, is_substring_phrase, layout, phrase_words, stats_counts,
                                   stored_document, stored_passage)
from search.text.language import HAN_RE, comparable, detect_language
from search.types import Document, DocumentSummary, Filter, Lang, Origin, SentenceVectors

SCHEMA_VERSION = 4
#: Read-only connections for the reads of searches: this many run at once without the store's lock,
#: the others wait for one (a long read holds up no write and no other reader, and the Python threads
#: busy reading stay few).
READERS = 4
#: The meta key of the generation up to which tombstones were pruned.
TOMBSTONES_PRUNED = "tombstones_pruned_through"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL, text TEXT NOT NULL,
    sha256 TEXT NOT NULL, lang TEXT NOT NULL, added_at TEXT NOT NULL DEFAULT (datetime('now')),
    media_type TEXT NOT NULL DEFAULT 'text/plain', pages TEXT NOT NULL DEFAULT '[]',
    page_labels TEXT NOT NULL DEFAULT '[]', sections TEXT NOT NULL DEFAULT '[]',
    ocr_pages TEXT NOT NULL DEFAULT '[]', ocr_lines TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    chunk_no INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    lang TEXT NOT NULL, mixed INTEGER NOT NULL DEFAULT 0, text TEXT NOT NULL, vector BLOB NOT NULL,
    page INTEGER, page_end INTEGER, page_label TEXT, section TEXT, sentences BLOB,
    ocr INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE INDEX IF NOT EXISTS chunks_lang ON chunks(lang);
CREATE TABLE IF NOT EXISTS tombstones (id INTEGER PRIMARY KEY, generation INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS tombstones_generation ON tombstones(generation);
CREATE TABLE IF NOT EXISTS files (
    doc_id TEXT PRIMARY KEY REFERENCES documents(id) ON DELETE CASCADE, data BLOB NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    tokens, tokenize = "unicode61 remove_diacritics 2 tokenchars '.%'"
);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_chars USING fts5(text, tokenize = 'trigram', detail = 'none');
"""
# ``chunks_chars`` holds the folded text of every passage with Chinese characters: a trigram index
# that finds a quoted Chinese phrase of three characters or more as a substring, wherever jieba cut
# (which phrases narrow, and how: search.backends.codec.holds_phrases).

#: The columns :meth:`Store.rows` reads: always the origin, then those of each field asked for.
ORIGIN_COLUMNS = ("c.id", "c.lang", "c.doc_id")
FIELD_COLUMNS = {
    Fields.PASSAGE: ("c.chunk_no", "c.start", 'c."end"', "c.text", "c.mixed", "d.title", "d.source", "c.page",
                     "c.page_end", "c.page_label", "c.section", "c.ocr"),
    Fields.VECTOR: ("c.vector",),
    Fields.SENTENCES: ("c.sentences",),
}
DOCUMENT_COLUMNS = "id, title, source, text, lang, pages, page_labels, sections, media_type, ocr_pages, ocr_lines"


def _quoted(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


def fts_query(tokens: Iterable[str], phrases: Iterable[str] = ()) -> str:
    """An FTS5 MATCH expression that ORs the quoted tokens and requires each English phrase (its
    keyword tokens adjacent and in order). A phrase with Chinese is not required here: a quoted
    string need not fall on jieba's word boundaries (see :func:`substring_sql`)."""
    expression = " OR ".join(_quoted(token) for token in dict.fromkeys(tokens))
    required = [" + ".join(map(_quoted, words)) for phrase in phrases if (words := phrase_words(phrase))]
    return " AND ".join(f"({part})" for part in [*required, expression]) if required else expression


def substring_sql(phrases: Iterable[str]) -> tuple[str, list]:
    """`` AND ...`` clauses on ``c`` keeping passages that hold each Chinese phrase of three
    characters or more (trigram index; shorter ones are checked by the retriever only)."""
    held = [phrase for phrase in phrases if is_substring_phrase(phrase)]
    clause = " AND c.id IN (SELECT rowid FROM chunks_chars WHERE chunks_chars.text LIKE ?)"
    return clause * len(held), [f"%{phrase}%" for phrase in held]


def filter_sql(where: Filter) -> tuple[str, list]:
    """`` AND ...`` clauses on ``c`` (chunks) for a filter, and their parameters."""
    clauses, params = [], []
    if where.lang:
        clauses.append("c.lang = ?")
        params.append(where.lang.value)
    if where.doc_ids:
        clauses.append(f"c.doc_id IN ({','.join('?' * len(where.doc_ids))})")
        params.extend(where.doc_ids)
    return (" AND " + " AND ".join(clauses) if clauses else ""), params


def damaged(path: Path, error: Exception) -> BackendError:
    """The error for an unreadable index database: names the file and how to rebuild it."""
    return BackendError(f"{path} is not a readable index database ({error}); "
                        f"delete the index folder and run `bisearch ingest` again to rebuild it")


def _locked(method: Callable) -> Callable:
    """Run a Store method under the store's lock, so no reader sees a write in progress."""

    @functools.wraps(method)
    def wrapper(self: "Store", *args, **kwargs):
        with self.lock:
            try:
                return method(self, *args, **kwargs)
            except sqlite3.DatabaseError as error:
                if type(error) is sqlite3.DatabaseError:  # corrupt or not a database (not locked, not a constraint)
                    raise damaged(self.path, error) from error
                raise

    return wrapper


def _row(row: sqlite3.Row, fields: Fields) -> Row:
    """A passage's row as :meth:`Store.rows` read it (only the ``fields`` asked for)."""
    return Row(Origin(Lang(row["lang"]), row["doc_id"]),
               stored_passage(dict(zip(row.keys(), row))) if Fields.PASSAGE in fields else None,
               np.frombuffer(row["vector"], dtype=np.float32) if Fields.VECTOR in fields else None,
               SentenceVectors.from_bytes(row["sentences"]) if Fields.SENTENCES in fields and row["sentences"]
               else None)


def _document(row: sqlite3.Row) -> Document:
    return stored_document(row, {name: json.loads(row[name]) for name in LAYOUT_FIELDS})


class Store:
    """Thread-safe access to the index's SQLite database (one connection, one lock)."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.RLock()
        try:
            self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            if self._columns("chunks") and "script" in self._columns("chunks"):
                self._migrate_v1()
            if self._columns("chunks") and "sentences" not in self._columns("chunks"):
                self._migrate_v2()
            if self._columns("chunks") and "ocr" not in self._columns("chunks"):
                self._migrate_v3()
            self.db.executescript(SCHEMA)
            if not self.get_meta("chars_indexed"):
                self._index_characters()
        except sqlite3.DatabaseError as error:
            raise damaged(path, error) from error
        self._idle_readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._reader_connections: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._generation_lock = threading.Lock()
        self._generation_reader: sqlite3.Connection | None = None

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One BEGIN IMMEDIATE transaction (migrations: another process may be opening the same index),
        rolled back on any error."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _columns(self, table: str) -> set[str]:
        return {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}

    def _migrate_v1(self) -> None:
        """Version 1 kept ``lang`` (en/zh/mixed) and ``script`` (en/zh); now ``lang`` is the dominant
        language and ``mixed`` a flag. Done in place, in one transaction."""
        with self._exclusive():
            for column in ("mixed INTEGER NOT NULL DEFAULT 0", "page INTEGER", "page_end INTEGER",
                           "page_label TEXT", "section TEXT"):
                self.db.execute(f"ALTER TABLE chunks ADD COLUMN {column}")
            self.db.execute("UPDATE chunks SET mixed = (lang = 'mixed'), lang = script")
            self.db.execute("DROP INDEX IF EXISTS chunks_script")
            self.db.execute("ALTER TABLE chunks DROP COLUMN script")
            for column in ("media_type TEXT NOT NULL DEFAULT 'text/plain'", "pages TEXT NOT NULL DEFAULT '[]'",
                           "page_labels TEXT NOT NULL DEFAULT '[]'", "sections TEXT NOT NULL DEFAULT '[]'"):
                self.db.execute(f"ALTER TABLE documents ADD COLUMN {column}")
            for doc_id, text in self.db.execute("SELECT id, text FROM documents WHERE lang = 'mixed'").fetchall():
                self.db.execute("UPDATE documents SET lang = ? WHERE id = ?", (detect_language(text).value, doc_id))
            next_id = self.db.execute("SELECT coalesce(max(id), 0) + 1 FROM chunks").fetchone()[0]
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('next_id', ?)", (json.dumps(next_id),))
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema', ?)", (json.dumps(SCHEMA_VERSION),))

    def _migrate_v2(self) -> None:
        """Version 3 stores each passage's sentence vectors; older passages have none (NULL). In one
        transaction, checked again inside it: another process may be opening the same index."""
        with self._exclusive():
            if "sentences" not in self._columns("chunks"):
                self.db.execute("ALTER TABLE chunks ADD COLUMN sentences BLOB")
                self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema', ?)",
                                (json.dumps(SCHEMA_VERSION),))

    def _migrate_v3(self) -> None:
        """Version 4 marks passages read by OCR and keeps a document's OCR pages and line boxes; older
        rows were read from text (0, empty). In place, in one transaction, checked again inside it."""
        with self._exclusive():
            if "ocr" not in self._columns("chunks"):
                self.db.execute("ALTER TABLE chunks ADD COLUMN ocr INTEGER NOT NULL DEFAULT 0")
                for column in ("ocr_pages", "ocr_lines"):
                    self.db.execute(f"ALTER TABLE documents ADD COLUMN {column} TEXT NOT NULL DEFAULT '[]'")
                self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema', ?)",
                                (json.dumps(SCHEMA_VERSION),))

    def _index_characters(self) -> None:
        """Fills ``chunks_chars`` for an index made before it existed (once: checked again inside the
        transaction, as another process may be opening the same index)."""
        with self._exclusive():
            if not self.get_meta("chars_indexed"):
                rows = self.db.execute("SELECT id, text FROM chunks").fetchall()
                self.db.executemany("INSERT INTO chunks_chars(rowid, text) VALUES (?, ?)",
                                    [(row[0], comparable(row[1])) for row in rows if HAN_RE.search(row[1])])
                self.set_meta("chars_indexed", True)

    def close(self) -> None:
        for reader in self._reader_connections:
            reader.close()
        self.db.close()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection of the pool, without the store's lock; when all ``READERS`` are busy,
        the caller waits (without the GIL) for one."""
        with self._readers_lock:
            if self._idle_readers.empty() and len(self._reader_connections) < READERS:
                self._idle_readers.put(self._reader())
        connection = self._idle_readers.get()
        try:
            yield connection
        except sqlite3.DatabaseError as error:
            if type(error) is sqlite3.DatabaseError:  # corrupt or not a database
                raise damaged(self.path, error) from error
            raise
        finally:
            self._idle_readers.put(connection)

    def _reader(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA query_only = ON")
        self._reader_connections.append(connection)
        return connection

    # -- metadata ---------------------------------------------------------
    @_locked
    def get_meta(self, key: str) -> object | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: object) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def generation(self) -> int:
        """Counter bumped by every committed write, read on a connection of its own without the store's
        lock (it sees the committed value), so neither a long write nor long reads delay this check."""
        with self._generation_lock:
            if self._generation_reader is None:
                self._generation_reader = self._reader()
            try:
                row = self._generation_reader.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
            except sqlite3.DatabaseError as error:
                if type(error) is sqlite3.DatabaseError:
                    raise damaged(self.path, error) from error
                raise
        return int(json.loads(row[0])) if row else 0

    # -- writes (inside ``transaction()``) ----------------------------------
    def transaction(self) -> "_Transaction":
        return _Transaction(self)

    def delete_document(self, doc_id: str, generation: int) -> list[int]:
        """Delete a document and its passages; their ids become tombstones of ``generation``."""
        ids = [row[0] for row in self.db.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))]
        self.db.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])
        self.db.executemany("DELETE FROM chunks_chars WHERE rowid = ?", [(i,) for i in ids])
        self.db.executemany("INSERT OR REPLACE INTO tombstones(id, generation) VALUES (?, ?)",
                            [(i, generation) for i in ids])
        self.db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        self.db.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
        return ids

    def insert_document(self, prepared: PreparedDocument) -> list[int]:
        """Insert a document, its original file and its passages; return the new passage ids."""
        document = prepared.document
        self.db.execute(
            "INSERT INTO documents(id, title, source, text, sha256, lang, media_type, pages, page_labels, sections, "
            "ocr_pages, ocr_lines) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (document.id, document.title, document.source, document.text, document.sha256, document.lang.value,
             document.media_type, *(json.dumps(values, ensure_ascii=False) for values in layout(document).values())),
        )
        if prepared.original is not None:
            self.db.execute("INSERT INTO files(doc_id, data) VALUES (?, ?)", (document.id, prepared.original))
        first = int(self.get_meta("next_id") or 1)
        ids = list(range(first, first + len(prepared.passages)))
        self.db.executemany(
            'INSERT INTO chunks(id, doc_id, chunk_no, start, "end", lang, mixed, text, vector, page, page_end, '
            'page_label, section, sentences, ocr) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
            [(passage_id, document.id, p.chunk_no, p.start, p.end, p.lang.value, int(p.mixed), p.text,
              np.asarray(vector, dtype=np.float32).tobytes(), p.page, p.page_end, p.page_label, p.section,
              sentences.to_bytes() if (sentences := prepared.sentences_of(row)) is not None else None, int(p.ocr))
             for row, (passage_id, p, vector) in enumerate(zip(ids, prepared.passages, prepared.vectors))],
        )
        self.db.executemany("INSERT INTO chunks_fts(rowid, tokens) VALUES (?, ?)",
                            [(passage_id, " ".join(tokens)) for passage_id, tokens in zip(ids, prepared.tokens)])
        self.db.executemany("INSERT INTO chunks_chars(rowid, text) VALUES (?, ?)",
                            [(passage_id, comparable(p.text)) for passage_id, p in zip(ids, prepared.passages)
                             if HAN_RE.search(p.text)])
        self.set_meta("next_id", first + len(ids))
        return ids

    # -- reads ------------------------------------------------------------
    @_locked
    def document(self, doc_id: str) -> Document | None:
        row = self.db.execute(f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return _document(row) if row else None

    @_locked
    def file(self, doc_id: str) -> bytes | None:
        row = self.db.execute("SELECT data FROM files WHERE doc_id = ?", (doc_id,)).fetchone()
        return bytes(row[0]) if row else None

    @_locked
    def document_hash(self, doc_id: str) -> str | None:
        row = self.db.execute("SELECT sha256 FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return row[0] if row else None

    @_locked
    def documents(self, limit: int = 50, offset: int = 0) -> list[DocumentSummary]:
        rows = self.db.execute(
            "SELECT d.id, d.title, d.source, d.lang, length(d.text) AS chars, d.added_at, d.media_type, "
            "(SELECT count(*) FROM chunks c WHERE c.doc_id = d.id) AS chunks "
            "FROM documents d ORDER BY d.id LIMIT ? OFFSET ?", (limit, offset),
        ).fetchall()
        return [DocumentSummary(**{**dict(zip(row.keys(), row)), "lang": Lang(row["lang"])}) for row in rows]

    @_locked
    def count(self) -> int:
        """How many documents are stored."""
        return self.db.execute("SELECT count(*) FROM documents").fetchone()[0]

    @_locked
    def counts(self) -> dict[str, int]:
        by_lang = dict(self.db.execute("SELECT lang, count(*) FROM chunks GROUP BY lang").fetchall())
        mixed = self.db.execute("SELECT count(*) FROM chunks WHERE mixed").fetchone()[0]
        return stats_counts(self.count(), by_lang, mixed)

    def rows(self, ids: Iterable[int], fields: Fields = Fields.ORIGIN) -> dict[int, Row]:
        """Passages by id with the ``fields`` asked for (one query on a pooled read-only connection,
        without the store's lock; unknown ids left out)."""
        ids = [int(passage_id) for passage_id in ids]
        if not ids:
            return {}
        columns = [*ORIGIN_COLUMNS, *(column for field, names in FIELD_COLUMNS.items() if field in fields
                                      for column in names)]
        joined = " JOIN documents d ON d.id = c.doc_id" if Fields.PASSAGE in fields else ""
        with self._reading() as reader:
            rows = reader.execute(f"SELECT {', '.join(columns)} FROM chunks c{joined} "
                                  f"WHERE c.id IN ({','.join('?' * len(ids))})", ids).fetchall()
        return {row["id"]: _row(row, fields) for row in rows}

    def passage_ids(self, where: Filter) -> np.ndarray:
        clauses, params = filter_sql(where)
        with self._reading() as reader:
            rows = reader.execute(f"SELECT c.id FROM chunks c WHERE 1=1{clauses}", params).fetchall()
        return np.array([row[0] for row in rows], dtype=np.int64)

    @_locked
    def id_count_and_sum(self, up_to_id: int) -> tuple[int, int]:
        """``(count, sum of ids)`` of live passages with ids up to ``up_to_id`` (validates a snapshot)."""
        row = self.db.execute("SELECT count(*), coalesce(sum(id), 0) FROM chunks WHERE id <= ?", (up_to_id,)).fetchone()
        return int(row[0]), int(row[1])

    def prune_tombstones(self, through_generation: int) -> int:
        """Forget the tombstones of writes up to ``through_generation`` (a saved snapshot already leaves
        those passages out) and record it, so a view older than that is rebuilt instead of caught up
        (inside ``transaction()``); returns how many were dropped."""
        dropped = self.db.execute("DELETE FROM tombstones WHERE generation <= ?", (through_generation,)).rowcount
        self.set_meta(TOMBSTONES_PRUNED, max(through_generation, self.tombstones_pruned_through()))
        return dropped

    @_locked
    def tombstones_pruned_through(self) -> int:
        """The generation up to which tombstones have been pruned (0: none)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (TOMBSTONES_PRUNED,)).fetchone()
        return int(json.loads(row[0])) if row else 0

    @_locked
    def tombstone_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM tombstones").fetchone()[0])

    @_locked
    def tombstones_since(self, generation: int, up_to_id: int) -> list[int]:
        """Ids up to ``up_to_id`` deleted by writes after ``generation``."""
        rows = self.db.execute("SELECT id FROM tombstones WHERE generation > ? AND id <= ?", (generation, up_to_id))
        return [row[0] for row in rows]

    @_locked
    def vectors_after(self, after_id: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, vectors)`` of live passages with ids above ``after_id`` (the delta)."""
        rows = self.db.execute("SELECT id, vector FROM chunks WHERE id > ? ORDER BY id", (after_id,)).fetchall()
        return _id_vectors(rows)

    @contextmanager
    def committed_state(self, batch: int = 4096) -> Iterator["CommittedState"]:
        """One committed state read on a separate connection (a long snapshot build never holds the lock)."""
        reader = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            reader.execute("BEGIN")  # every read below sees the same committed state
            row = reader.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
            count, max_id = reader.execute("SELECT count(*), coalesce(max(id), 0) FROM chunks").fetchone()

            def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
                cursor = reader.execute("SELECT id, vector FROM chunks ORDER BY id")
                while rows := cursor.fetchmany(batch):
                    yield _id_vectors(rows)

            yield CommittedState(int(json.loads(row[0])) if row else 0, int(max_id), int(count), batches)
        finally:
            reader.close()

    @_locked
    def sample_vectors(self, count: int) -> np.ndarray:
        """Up to ``count`` stored vectors picked at random (training data for IVF-PQ)."""
        rows = self.db.execute("SELECT vector FROM chunks ORDER BY random() LIMIT ?", (count,)).fetchall()
        return np.stack([np.frombuffer(row[0], dtype=np.float32) for row in rows])

    def vectors(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        """Stored vectors by passage id (what re-scores approximate candidates exactly)."""
        return {passage_id: row.vector for passage_id, row in self.rows(ids, Fields.VECTOR).items()}

    def keyword_search(self, tokens: Iterable[str], limit: int, where: Filter,
                       phrases: Sequence[str] = ()) -> list[tuple[int, float]]:
        """BM25 (FTS5) top ``limit`` passage ids, best first; with ``phrases`` (folded), only passages
        that hold them (English: tokens side by side; Chinese of 3+ characters: as a substring)."""
        tokens = list(tokens)
        if not tokens:
            return []
        clauses, params = filter_sql(where)
        held, held_params = substring_sql(phrases)
        clauses, params = clauses + held, [*params, *held_params]
        with self._reading() as reader:  # the phrase checks (FTS5 phrases, LIKE substrings) hold no lock
            rows = reader.execute(
                "SELECT chunks_fts.rowid, -bm25(chunks_fts) AS score FROM chunks_fts "
                f"JOIN chunks c ON c.id = chunks_fts.rowid WHERE chunks_fts MATCH ?{clauses} ORDER BY score DESC LIMIT ?",
                [fts_query(tokens, phrases), *params, limit],
            ).fetchall()
        return [(int(row[0]), float(row[1])) for row in rows]


@dataclass(frozen=True)
class CommittedState:
    """A committed state of the passages: its generation, size, highest id and vectors in batches."""

    generation: int
    max_id: int
    count: int
    batches: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]


def _id_vectors(rows: list) -> tuple[np.ndarray, np.ndarray]:
    ids = np.array([row[0] for row in rows], dtype=np.int64)
    vectors = [np.frombuffer(row[1], dtype=np.float32) for row in rows]
    return ids, (np.stack(vectors) if vectors else np.zeros((0, 0), dtype=np.float32))


class _Transaction:
    """``with store.transaction() as generation:`` — BEGIN IMMEDIATE, bump the generation, COMMIT or ROLLBACK."""

    def __init__(self, store: Store):
        self.store = store

    def __enter__(self) -> int:
        self.store.lock.acquire()
        try:
            self.store.db.execute("BEGIN IMMEDIATE")
            self.generation = int(self.store.get_meta("generation") or 0) + 1
        except BaseException:
            self._rollback()
            self.store.lock.release()
            raise
        return self.generation

    def __exit__(self, kind, value, traceback) -> None:
        try:
            if kind is None:
                try:
                    self.store.set_meta("generation", self.generation)
                    self.store.db.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
            else:
                self._rollback()
        finally:
            self.store.lock.release()

    def _rollback(self) -> None:
        """Undo the open transaction (a failed COMMIT may leave one open)."""
        if self.store.db.in_transaction:
            self.store.db.execute("ROLLBACK")
