"""SQLite storage: documents, chunks (text, offsets, vectors), FTS5 keyword index, metadata.

SQLite is the source of truth. The FAISS file is a snapshot that can always be rebuilt
from the vectors kept here, so a write is committed by one SQLite transaction.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from search.chunking import Chunk

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL, text TEXT NOT NULL,
    sha256 TEXT NOT NULL, lang TEXT NOT NULL, added_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    chunk_no INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    lang TEXT NOT NULL, script TEXT NOT NULL, text TEXT NOT NULL, vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE INDEX IF NOT EXISTS chunks_script ON chunks(script);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    tokens, tokenize = "unicode61 remove_diacritics 2 tokenchars '.%'"
);
"""
CHUNK_COLUMNS = 'c.id, c.doc_id, c.chunk_no, c.start, c."end", c.lang, c.script, c.text, d.title, d.source'


class StoreError(RuntimeError):
    """The metadata database is missing, corrupt or inconsistent."""


@dataclass(frozen=True)
class StoredDocument:
    id: str
    title: str
    source: str
    text: str
    sha256: str
    lang: str


@dataclass(frozen=True)
class NewChunk:
    """A chunk ready to store: the chunker's passage, its keyword tokens and its vector."""

    passage: Chunk
    tokens: list[str]
    vector: np.ndarray


@dataclass(frozen=True)
class StoredChunk:
    id: int
    doc_id: str
    chunk_no: int
    start: int
    end: int
    lang: str
    script: str
    text: str
    title: str
    source: str


def fts_query(tokens: Iterable[str]) -> str:
    """An FTS5 MATCH expression that ORs the quoted tokens."""
    quoted = ['"' + token.replace('"', '""') + '"' for token in dict.fromkeys(tokens)]
    return " OR ".join(quoted)


def _filter_sql(script: str | None, doc_ids: tuple[str, ...] | None) -> tuple[str, list]:
    clauses, params = [], []
    if script:
        clauses.append("c.script = ?")
        params.append(script)
    if doc_ids:
        clauses.append(f"c.doc_id IN ({','.join('?' * len(doc_ids))})")
        params.extend(doc_ids)
    return (" AND " + " AND ".join(clauses) if clauses else ""), params


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


def damaged(path: Path, error: Exception) -> StoreError:
    """The error for an unreadable index database: names the file and how to rebuild it."""
    return StoreError(f"{path} is not a readable index database ({error}); "
                      f"delete the index folder and run `bisearch ingest` again to rebuild it")


class Store:
    """Thread-safe access to the index's SQLite database (one connection, one lock)."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as error:
            raise damaged(path, error) from error
        self.lock = threading.RLock()

    def close(self) -> None:
        self.db.close()

    # -- metadata ---------------------------------------------------------
    @_locked
    def get_meta(self, key: str) -> object | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: object) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def generation(self) -> int:
        """Counter bumped by every committed write."""
        return int(self.get_meta("generation") or 0)

    # -- writes -----------------------------------------------------------
    def transaction(self) -> "_Transaction":
        return _Transaction(self)

    def delete_document(self, doc_id: str) -> list[int]:
        """Delete a document and its chunks (inside a transaction); return the chunk ids."""
        ids = [row[0] for row in self.db.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))]
        self.db.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])
        self.db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        self.db.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
        return ids

    def insert_document(self, document: StoredDocument, chunks: list[NewChunk]) -> list[int]:
        """Insert a document and its chunks (inside a transaction); return the new chunk ids."""
        self.db.execute(
            "INSERT INTO documents(id, title, source, text, sha256, lang) VALUES (?, ?, ?, ?, ?, ?)",
            (document.id, document.title, document.source, document.text, document.sha256, document.lang),
        )
        ids = []
        for chunk in chunks:
            passage = chunk.passage
            cursor = self.db.execute(
                'INSERT INTO chunks(doc_id, chunk_no, start, "end", lang, script, text, vector) '
                'VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
                (document.id, passage.chunk_no, passage.start, passage.end, passage.lang, passage.script,
                 passage.text, np.asarray(chunk.vector, dtype=np.float32).tobytes()),
            )
            ids.append(int(cursor.lastrowid))
            self.db.execute("INSERT INTO chunks_fts(rowid, tokens) VALUES (?, ?)", (ids[-1], " ".join(chunk.tokens)))
        return ids

    # -- reads ------------------------------------------------------------
    @_locked
    def document(self, doc_id: str) -> StoredDocument | None:
        row = self.db.execute(
            "SELECT id, title, source, text, sha256, lang FROM documents WHERE id = ?", (doc_id,)
        ).fetchone()
        return StoredDocument(*row) if row else None

    @_locked
    def document_hash(self, doc_id: str) -> str | None:
        row = self.db.execute("SELECT sha256 FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return row[0] if row else None

    @_locked
    def list_documents(self, limit: int = 50, offset: int = 0) -> list[dict]:
        rows = self.db.execute(
            "SELECT d.id, d.title, d.source, d.lang, length(d.text), d.added_at, "
            "(SELECT count(*) FROM chunks c WHERE c.doc_id = d.id) "
            "FROM documents d ORDER BY d.id LIMIT ? OFFSET ?", (limit, offset),
        ).fetchall()
        keys = ("id", "title", "source", "lang", "chars", "added_at", "chunks")
        return [dict(zip(keys, row)) for row in rows]

    @_locked
    def chunk_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM chunks").fetchone()[0]

    @_locked
    def counts(self) -> dict[str, int]:
        documents = self.db.execute("SELECT count(*) FROM documents").fetchone()[0]
        by_lang = dict(self.db.execute("SELECT lang, count(*) FROM chunks GROUP BY lang").fetchall())
        return {"documents": documents, "chunks": sum(by_lang.values()),
                **{f"chunks_{lang}": n for lang, n in sorted(by_lang.items())}}

    @_locked
    def chunks_by_id(self, ids: Iterable[int]) -> dict[int, StoredChunk]:
        ids = [int(chunk_id) for chunk_id in ids]
        if not ids:
            return {}
        rows = self.db.execute(
            f"SELECT {CHUNK_COLUMNS} FROM chunks c JOIN documents d ON d.id = c.doc_id "
            f"WHERE c.id IN ({','.join('?' * len(ids))})", ids,
        ).fetchall()
        return {row[0]: StoredChunk(*row) for row in rows}

    @_locked
    def chunk_ids(self, script: str | None = None, doc_ids: tuple[str, ...] | None = None) -> np.ndarray:
        where, params = _filter_sql(script, doc_ids)
        rows = self.db.execute(f"SELECT c.id FROM chunks c WHERE 1=1{where}", params).fetchall()
        return np.array([row[0] for row in rows], dtype=np.int64)

    def iter_vectors(self, batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All ``(ids, vectors)`` in batches, for rebuilding the vector index."""
        cursor = self.db.execute("SELECT id, vector FROM chunks ORDER BY id")
        while rows := cursor.fetchmany(batch):
            ids = np.array([row[0] for row in rows], dtype=np.int64)
            yield ids, np.stack([np.frombuffer(row[1], dtype=np.float32) for row in rows])

    @_locked
    def sample_vectors(self, count: int) -> np.ndarray:
        """Up to ``count`` stored vectors picked at random (training data for IVF-PQ)."""
        rows = self.db.execute("SELECT vector FROM chunks ORDER BY random() LIMIT ?", (count,)).fetchall()
        return np.stack([np.frombuffer(row[0], dtype=np.float32) for row in rows])

    @_locked
    def vectors_of(self, ids: list[int]) -> dict[int, np.ndarray]:
        if not ids:
            return {}
        rows = self.db.execute(
            f"SELECT id, vector FROM chunks WHERE id IN ({','.join('?' * len(ids))})", ids
        ).fetchall()
        return {row[0]: np.frombuffer(row[1], dtype=np.float32) for row in rows}

    @_locked
    def keyword_search(self, tokens: list[str], limit: int, script: str | None = None,
                       doc_ids: tuple[str, ...] | None = None) -> list[tuple[int, float]]:
        """BM25 (FTS5) top ``limit`` chunk ids, best first."""
        if not tokens:
            return []
        where, params = _filter_sql(script, doc_ids)
        rows = self.db.execute(
            "SELECT chunks_fts.rowid, -bm25(chunks_fts) AS score FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid "
            f"WHERE chunks_fts MATCH ?{where} ORDER BY score DESC LIMIT ?",
            [fts_query(tokens), *params, limit],
        ).fetchall()
        return [(int(row[0]), float(row[1])) for row in rows]


class _Transaction:
    """``with store.transaction():`` — BEGIN IMMEDIATE, bump the generation, COMMIT or ROLLBACK."""

    def __init__(self, store: Store):
        self.store = store

    def __enter__(self) -> Store:
        self.store.lock.acquire()
        try:
            self.store.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.store.lock.release()
            raise
        return self.store

    def __exit__(self, kind, value, traceback) -> None:
        try:
            if kind is None:
                try:
                    self.store.set_meta("generation", self.store.generation() + 1)
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
