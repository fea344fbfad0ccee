"""Storage round-trip, re-ingest, replace, delete, model checks and snapshot recovery."""

from __future__ import annotations

import sqlite3

import pytest

from search.embedding import ModelInfo
from search.engine import ingest_paths, open_retriever
from search.indexing import ModelMismatchError, SearchIndex
from search.loading import make_document
from search.store import Store, StoreError
from search.vectors import SNAPSHOT_PREFIX


def test_round_trip_offsets_and_metadata(seed_retriever):
    store = seed_retriever.index.store
    assert store.counts()["documents"] == 2
    for summary in store.list_documents():
        document = store.document(summary["id"])
        chunks = [c for c in store.chunks_by_id(store.chunk_ids(doc_ids=(document.id,))).values()]
        assert chunks, document.id
        for chunk in chunks:
            assert document.text[chunk.start:chunk.end] == chunk.text
            assert chunk.title == document.title and chunk.source.endswith(".txt")
    assert len(seed_retriever.index.vectors) == store.counts()["chunks"]


def test_reingest_unchanged_adds_nothing(fresh_index_dir, embedder):
    from conftest import SEEDS

    index = open_retriever(fresh_index_dir, embedder=embedder).index
    before = index.stats()
    summary = ingest_paths(index, [SEEDS])
    assert summary.count("unchanged") == 2 and summary.chunks_added == 0
    assert index.stats()["chunks"] == before["chunks"]


def test_changed_document_replaces_its_chunks_and_delete_removes_them(fresh_index_dir, embedder):
    retriever = open_retriever(fresh_index_dir, embedder=embedder)
    index = retriever.index
    base = index.stats()["chunks"]
    first = index.add_documents([make_document("note", "Platinum demand rose 12% in Thailand.", source="mem")])
    assert first[0].status == "added"
    second = index.add_documents([make_document("note", "铂金需求在泰国增长了12%。新的版本。", source="mem")])
    assert second[0].status == "replaced"
    assert index.stats()["chunks"] == base + second[0].chunks
    hits = retriever.search("铂金需求", k=3, doc_ids=["note"]).hits
    assert hits and all("铂金" in hit.text for hit in hits)
    assert index.delete_document("note") is True
    assert index.delete_document("note") is False
    assert index.stats()["chunks"] == base
    assert retriever.search("Platinum demand Thailand", k=10, doc_ids=["note"]).hits == []


def test_index_reopens_from_disk(fresh_index_dir, embedder):
    index = open_retriever(fresh_index_dir, embedder=embedder).index
    index.add_documents([make_document("disk", "Jade carving exports to Japan doubled.", source="mem")])
    index.close()
    reopened = SearchIndex(fresh_index_dir, embedder)
    assert reopened.store.document("disk").text == "Jade carving exports to Japan doubled."
    assert len(reopened.vectors) == reopened.store.counts()["chunks"]


def test_missing_or_corrupt_vector_snapshot_is_rebuilt_from_sqlite(fresh_index_dir, embedder):
    for snapshot in fresh_index_dir.glob(f"{SNAPSHOT_PREFIX}*"):
        snapshot.write_bytes(b"truncated")
    retriever = open_retriever(fresh_index_dir, embedder=embedder)
    assert "30% faster" in retriever.search("Shuibei lead times faster", k=3).hits[0].text or any(
        "30% faster" in hit.text for hit in retriever.search("Shuibei lead times faster", k=3).hits)


def test_corrupt_database_gives_clear_error(tmp_path):
    (tmp_path / "index.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="index.sqlite.*rebuild"):
        SearchIndex(tmp_path)


def test_database_damaged_after_opening_gives_clear_error_when_read(tmp_path):
    path = tmp_path / "index.sqlite"
    store = Store(path)
    with store.transaction():
        for number in range(300):
            store.set_meta(f"filler-{number}", "x" * 2000)
    store.close()
    size = path.stat().st_size
    with open(path, "r+b") as file:  # header and schema intact, data pages overwritten
        file.seek(size // 2)
        file.write(b"\xff" * (size // 4))
    damaged = Store(path)
    with pytest.raises(StoreError, match="index.sqlite.*rebuild"):
        for number in range(300):
            damaged.get_meta(f"filler-{number}")


def test_failed_commit_leaves_the_store_writable(tmp_path, monkeypatch):
    store = Store(tmp_path / "index.sqlite")

    def disk_full(key, value):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "set_meta", disk_full)
    with pytest.raises(sqlite3.OperationalError, match="full"):
        with store.transaction():
            pass
    monkeypatch.undo()
    with store.transaction():
        store.set_meta("written", 1)
    assert store.get_meta("written") == 1


def test_query_with_another_model_is_refused(fresh_index_dir, embedder, monkeypatch):
    other = ModelInfo("someone/other-model", 384, "query: ", "passage: ")
    monkeypatch.setattr(embedder, "info", other)
    with pytest.raises(ModelMismatchError, match="other-model"):
        SearchIndex(fresh_index_dir, embedder)


def test_search_index_implements_the_backend_interface(seed_retriever):
    from search.backend import PassageStore, SearchBackend

    assert isinstance(seed_retriever.index, SearchBackend)
    assert isinstance(seed_retriever.index.store, PassageStore)


def test_same_id_twice_in_one_ingest_is_reported_not_corrupting(fresh_index_dir, embedder, tmp_path):
    folder = tmp_path / "twins"
    folder.mkdir()
    (folder / "a.txt").write_text("Silver demand in India rose sharply.", encoding="utf-8")
    (folder / "a.md").write_text("# 白银\n印度的白银需求大幅上升。", encoding="utf-8")
    retriever = open_retriever(fresh_index_dir, embedder=embedder)
    summary = ingest_paths(retriever.index, [folder])
    assert summary.count("added") == 1 and len(summary.failed) == 1 and "same document id 'a'" in summary.failed[0]
    twice = [make_document("b", "Pearl prices fell.", source="mem"), make_document("b", "珍珠价格下跌。", source="mem")]
    assert [outcome.status for outcome in retriever.index.add_documents(twice)] == ["added"]
    assert retriever.index.store.document("b").text == "珍珠价格下跌。"
    assert len(retriever.index.vectors) == retriever.index.store.chunk_count()
    assert retriever.search("silver demand", k=20).hits


def test_another_file_with_the_same_id_does_not_overwrite_it(fresh_index_dir, embedder, tmp_path):
    first, second, moved = (tmp_path / folder / "report.txt" for folder in ("one", "two", "three"))
    for file, text in ((first, "Ruby auctions set records."), (second, "翡翠拍卖创下纪录。")):
        file.parent.mkdir()
        file.write_text(text, encoding="utf-8")
    index = open_retriever(fresh_index_dir, embedder=embedder).index
    assert ingest_paths(index, [first]).count("added") == 1
    clash = ingest_paths(index, [second])
    assert clash.outcomes == [] and "already holds" in clash.failed[0] and str(first) in clash.failed[0]
    assert index.store.document("report").text == "Ruby auctions set records."
    first.write_text("Ruby auctions set new records.", encoding="utf-8")
    assert ingest_paths(index, [first]).count("replaced") == 1  # the same file, changed
    moved.parent.mkdir()
    first.rename(moved)
    assert ingest_paths(index, [moved]).count("unchanged") == 1  # its old place is gone: the same document


def test_failed_transaction_start_releases_the_lock(fresh_index_dir):
    import threading

    index = SearchIndex(fresh_index_dir)
    other = sqlite3.connect(fresh_index_dir / "index.sqlite", isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    index.store.db.execute("PRAGMA busy_timeout = 0")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        with index.store.transaction():
            pass
    other.execute("ROLLBACK")
    reader = threading.Thread(target=index.store.counts)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "the store lock was left held"


def test_failed_faiss_update_is_recovered_from_sqlite(fresh_index_dir, embedder, monkeypatch):
    from search.vectors import VectorIndex

    retriever = open_retriever(fresh_index_dir, embedder=embedder)
    monkeypatch.setattr(VectorIndex, "save", lambda *args: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        retriever.index.add_documents([make_document("ruby", "Ruby auctions in Geneva set records.", source="mem")])
    monkeypatch.undo()
    hits = retriever.search("ruby auctions Geneva", k=3).hits
    assert hits[0].doc_id == "ruby"
    assert len(retriever.index.vectors) == retriever.index.store.chunk_count()
