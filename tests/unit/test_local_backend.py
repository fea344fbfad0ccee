"""The local backend (SQLite + FAISS base + delta) with fake vectors: O(batch) writes, two writers,
exact snapshots, migration of old indexes, damaged databases."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import replace

import pytest

from fakes import FAKE_MODEL, FakeEmbedder, fake_vector, prepared
from search.backends import BackendError
from search.backends.base import passages_of, sentences_of
from search.backends.local import LocalBackend
from search.backends.local.store import SCHEMA_VERSION, Store
from search.backends.local.vectors import SNAPSHOT_PREFIX, VectorIndex, latest_snapshot, one_thread
from search.ranking.retriever import Retriever
from search.text.language import keyword_tokens
from search.text.language import fold
from search.types import Document, Filter, KeywordQuery, Lang, OcrLine

EVERYTHING = Filter()


def open_local(folder) -> LocalBackend:
    backend = LocalBackend(folder)
    backend.record_model(FAKE_MODEL)
    return backend


def top_doc(backend: LocalBackend, text: str, where: Filter = EVERYTHING) -> str | None:
    found = backend.dense_search(fake_vector(text), 1, where)
    return passages_of(backend, [found[0][0]])[found[0][0]].doc_id if found else None


def test_writes_go_to_the_delta_without_rewriting_the_snapshot(tmp_path):
    backend = open_local(tmp_path)
    backend.write([prepared("a", ["Gold prices rose.", "黄金价格上涨。"])])
    snapshot = latest_snapshot(tmp_path)
    written = snapshot.stat().st_mtime_ns
    for number in range(20):
        backend.write([prepared(f"d{number}", [f"Sentence {number} about silver.", f"第{number}句关于白银。"])])
    assert latest_snapshot(tmp_path) == snapshot and snapshot.stat().st_mtime_ns == written
    assert top_doc(backend, "第7句关于白银。") == "d7"
    backend.delete("d7")
    assert top_doc(backend, "第7句关于白银。") != "d7"
    assert backend.stats()["documents"] == 20


def test_replace_and_filters(tmp_path):
    backend = open_local(tmp_path)
    backend.write([prepared("a", ["Gold prices rose.", "黄金价格上涨。"]), prepared("b", ["Pearls are white."])])
    backend.write([prepared("a", ["Jade is green."])])
    assert backend.document("a").text == "Jade is green."
    assert {passages_of(backend, [i])[i].doc_id for i, _ in backend.dense_search(fake_vector("x"), 10, EVERYTHING)} == {"a", "b"}
    only_b = backend.dense_search(fake_vector("Jade is green."), 10, Filter(doc_ids=("b",)))
    assert [passages_of(backend, [i])[i].doc_id for i, _ in only_b] == ["b"]
    assert backend.dense_search(fake_vector("x"), 10, Filter(lang=Lang.ZH)) == []


def test_a_filters_ids_are_read_once_per_generation_and_writes_are_seen(tmp_path):
    """A filtered query reads the filter's ids from SQLite once, not on every query (O(corpus));
    a write of this process or of another moves the generation, and the next query sees it."""
    backend, other = open_local(tmp_path), open_local(tmp_path)
    backend.write([prepared("en", ["Gold prices rose."]), prepared("zh", ["黄金价格上涨。"])])
    reads: list[Filter] = []
    read_ids = backend.store.passage_ids  # the one read of a filter's ids (on a pooled reader connection)
    backend.store.passage_ids = lambda where: reads.append(where) or read_ids(where)
    english, chinese = Filter(lang=Lang.EN), Filter(lang=Lang.ZH)
    for _ in range(3):
        assert top_doc(backend, "黄金价格上涨。", english) == "en"
        assert top_doc(backend, "Gold prices rose.", chinese) == "zh"
    assert len(reads) == 2  # once per filter
    other.write([prepared("en2", ["Silver prices fell."])])
    assert top_doc(backend, "Silver prices fell.", english) == "en2"
    assert top_doc(backend, "Silver prices fell.", Filter(doc_ids=("en2",))) == "en2"
    backend.delete("en2")
    assert top_doc(backend, "Silver prices fell.", english) == "en"
    assert top_doc(backend, "Silver prices fell.", Filter(doc_ids=("en2",))) is None
    other.close()


def test_two_writers_on_one_folder_never_lose_each_others_vectors(tmp_path):
    server, cli = open_local(tmp_path), open_local(tmp_path)
    server.write([prepared("s0", ["Server document zero."])])
    for number in range(1, 6):
        cli.write([prepared(f"c{number}", [f"CLI document {number}."])])
        server.write([prepared(f"s{number}", [f"Server document {number}."])])
    cli.delete("s0")
    for backend in (server, cli):  # each sees every commit of the other on its next query
        assert top_doc(backend, "CLI document 3.") == "c3"
        assert top_doc(backend, "Server document 4.") == "s4"
        assert top_doc(backend, "Server document zero.") != "s0"
    server.merge()
    cli.close(), server.close()
    reopened = open_local(tmp_path)
    ids = [i for i, _ in reopened.dense_search(fake_vector("x"), 50, EVERYTHING)]
    assert sorted(passages_of(reopened, ids)[i].doc_id for i in ids) == sorted(
        [f"c{n}" for n in range(1, 6)] + [f"s{n}" for n in range(1, 6)])


def test_concurrent_writers_in_threads_all_land(tmp_path):
    backends = [open_local(tmp_path) for _ in range(3)]

    def write(backend: LocalBackend, prefix: str) -> None:
        for number in range(10):
            backend.write([prepared(f"{prefix}{number}", [f"{prefix} text {number}."])])

    threads = [threading.Thread(target=write, args=(b, p)) for b, p in zip(backends, "xyz")]
    [thread.start() for thread in threads]
    [thread.join() for thread in threads]
    found = backends[0].dense_search(fake_vector("q"), 100, EVERYTHING)
    assert len(found) == 30 and len({i for i, _ in found}) == 30


def test_snapshots_are_trusted_only_for_the_state_they_describe(tmp_path):
    import json

    backend = open_local(tmp_path)
    backend.write([prepared("a", ["Alpha one."]), prepared("b", ["Beta two."])])
    backend.merge()
    stale = latest_snapshot(tmp_path).read_bytes()
    backend.delete("a")
    backend.write([prepared("c", ["Gamma three."])])  # the same count, other ids
    backend.merge()
    backend.close()
    newest = latest_snapshot(tmp_path)
    newest.write_bytes(stale)  # an older, self-described state: completed from SQLite (tombstones + delta)
    reopened = open_local(tmp_path)
    assert (top_doc(reopened, "Gamma three."), top_doc(reopened, "Beta two.")) == ("c", "b")
    assert top_doc(reopened, "Alpha one.") != "a"
    reopened.close()
    size = int.from_bytes(stale[:4], "little")
    lying = json.loads(stale[4:4 + size])
    lying.update(generation=99, max_id=10**6)  # claims the newest state with the old vectors (a, b)
    header = json.dumps(lying).encode()
    newest.write_bytes(len(header).to_bytes(4, "little") + header + stale[4 + size:])
    rebuilt = open_local(tmp_path)
    assert top_doc(rebuilt, "Gamma three.") == "c" and top_doc(rebuilt, "Alpha one.") != "a"


def test_a_merge_prunes_the_tombstones_and_an_older_view_is_rebuilt(tmp_path):
    """Tombstones the new snapshot leaves out are deleted at the merge; another process whose view
    predates them rebuilds its view from the snapshot instead of missing those deletions."""
    writer, reader = open_local(tmp_path), open_local(tmp_path)
    writer.write([prepared(f"d{n}", [f"Document number {n}."]) for n in range(6)])
    writer.merge()
    assert top_doc(reader, "Document number 2.") == "d2"  # the reader's view: before the deletions
    for doc_id in ("d1", "d2"):
        writer.delete(doc_id)
    writer.write([prepared("d2", ["Document number 2, replaced."])])
    assert writer.store.tombstone_count() == 2
    writer.merge()
    assert writer.store.tombstone_count() == 0 and writer.store.tombstones_pruned_through() > 0
    for backend in (writer, reader):
        found = backend.dense_search(fake_vector("x"), 50, EVERYTHING)
        docs = sorted(passage.text for passage in passages_of(backend, [i for i, _ in found]).values())
        assert len(found) == 5 and "Document number 1." not in docs and "Document number 2, replaced." in docs
    writer.delete("d3")  # a tombstone after the snapshot is kept, and counted when a view opens
    assert writer.store.tombstone_count() == 1
    writer.close(), reader.close()
    assert top_doc(open_local(tmp_path), "Document number 3.") != "d3"


def test_merge_keeps_results_and_runs_off_the_query_path(tmp_path):
    backend = open_local(tmp_path)
    backend.write([prepared(f"d{n}", [f"Document number {n}."]) for n in range(50)])
    before = backend.dense_search(fake_vector("Document number 7."), 5, EVERYTHING)
    backend.merge(background=True)
    during = backend.dense_search(fake_vector("Document number 7."), 5, EVERYTHING)
    backend.close()  # waits for the merge
    after = open_local(tmp_path).dense_search(fake_vector("Document number 7."), 5, EVERYTHING)
    assert [i for i, _ in before] == [i for i, _ in during] == [i for i, _ in after]


def test_keyword_search_finds_chinese_words_and_english(tmp_path):
    backend = open_local(tmp_path)
    backend.write([prepared("zh", ["韩国珠宝出口增长了百分之三十。"]), prepared("en", ["Korean jewellery exports grew."])])
    from search.text.language import keyword_tokens, normalize
    from search.types import KeywordQuery

    def keyword(text):
        hits = backend.keyword_search(KeywordQuery(tuple(keyword_tokens(text)), normalize(text)), 5, EVERYTHING)
        return [passages_of(backend, [i])[i].doc_id for i, _ in hits]

    assert keyword("珠宝出口")[0] == "zh"
    assert keyword("jewellery")[0] == "en"


def test_original_file_is_kept(tmp_path):
    backend = open_local(tmp_path)
    backend.write([prepared("pdf", ["A page."], original=b"%PDF-1.7 bytes")])
    assert backend.file("pdf") == b"%PDF-1.7 bytes" and backend.file("missing") is None


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents (id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL, text TEXT NOT NULL,
    sha256 TEXT NOT NULL, lang TEXT NOT NULL, added_at TEXT NOT NULL DEFAULT (datetime('now')));
CREATE TABLE chunks (id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    chunk_no INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL, lang TEXT NOT NULL,
    script TEXT NOT NULL, text TEXT NOT NULL, vector BLOB NOT NULL);
CREATE INDEX chunks_script ON chunks(script);
CREATE VIRTUAL TABLE chunks_fts USING fts5(tokens, tokenize = "unicode61 remove_diacritics 2 tokenchars '.%'");
"""


def test_an_index_of_the_previous_version_is_migrated_in_place(tmp_path):
    db = sqlite3.connect(tmp_path / "index.sqlite")
    db.executescript(V1_SCHEMA)
    text = "Gold 黄金 prices 价格 rose 上涨 sharply 大幅."
    db.execute("INSERT INTO documents(id, title, source, text, sha256, lang) VALUES ('m', 't', 's', ?, 'x', 'mixed')",
               (text,))
    db.execute("INSERT INTO chunks VALUES (7, 'm', 0, 0, ?, 'mixed', 'zh', ?, ?)",
               (len(text), text, fake_vector(text).tobytes()))
    db.execute("""INSERT INTO meta VALUES ('model', '{"name": "fake/hash-embedder", "dimension": 16, "query_prompt": "query: ", "document_prompt": "passage: "}')""")
    db.commit()
    db.close()
    backend = open_local(tmp_path)
    passage = passages_of(backend, [7])[7]
    assert (passage.lang, passage.mixed) == (Lang.ZH, True)
    assert backend.document("m").lang in (Lang.EN, Lang.ZH)
    backend.write([prepared("n", ["New text."])])
    assert 7 not in passages_of(backend, [i for i, _ in backend.dense_search(fake_vector("New text."), 1, EVERYTHING)])


def test_an_index_without_sentence_vectors_is_migrated_in_place(tmp_path):
    old_text = "Written before sentence vectors were kept. Gold prices rose."
    backend = open_local(tmp_path)
    backend.write([prepared("old", [old_text])])
    backend.close()
    db = sqlite3.connect(tmp_path / "index.sqlite")
    db.execute("ALTER TABLE chunks DROP COLUMN sentences")  # the version 2 layout
    db.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    db.commit()
    db.close()
    backend = open_local(tmp_path)
    assert backend.store.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == str(SCHEMA_VERSION)
    old_id = backend.dense_search(fake_vector(old_text), 1, EVERYTHING)[0][0]
    assert sentences_of(backend, [old_id]) == {}
    backend.write([prepared("new", ["Kept now. With two sentences."], with_sentences=True)])
    new_id = backend.dense_search(fake_vector("Kept now. With two sentences."), 1, EVERYTHING)[0][0]
    assert len(sentences_of(backend, [new_id])[new_id].spans) == 2
    hits = {hit.passage.doc_id: hit for hit in Retriever(backend, FakeEmbedder()).search("gold prices", k=2).hits}
    assert hits["old"].evidence == [[43, 60]] and old_text[43:60] == "Gold prices rose."  # shared words
    assert hits["new"].evidence  # stored sentence vectors
    backend.close()
    assert sentences_of(open_local(tmp_path), [new_id])  # reopening a migrated index changes nothing


def test_an_index_without_ocr_marks_is_migrated_in_place(tmp_path):
    backend = open_local(tmp_path)
    backend.write([prepared("old", ["Written before OCR was marked. Gold prices rose."])])
    backend.close()
    db = sqlite3.connect(tmp_path / "index.sqlite")
    db.execute("ALTER TABLE chunks DROP COLUMN ocr")  # the version 3 layout
    db.execute("ALTER TABLE documents DROP COLUMN ocr_pages")
    db.execute("ALTER TABLE documents DROP COLUMN ocr_lines")
    db.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
    db.commit()
    db.close()
    backend = open_local(tmp_path)
    assert backend.store.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == str(SCHEMA_VERSION)
    old_id = backend.dense_search(fake_vector("Gold prices rose."), 1, EVERYTHING)[0][0]
    assert passages_of(backend, [old_id])[old_id].ocr is False
    assert backend.document("old").ocr_pages == () and backend.document("old").ocr_lines == ()
    line = OcrLine(0, 12, 1, (0.1, 0.2, 0.9, 0.25))
    scan = replace(prepared("scan", ["Read by OCR."]), document=Document("scan", "t", "s", "Read by OCR.", pages=(0,),
                                                                          ocr_pages=(1,), ocr_lines=(line,)))
    scan = replace(scan, passages=tuple(replace(p, ocr=True, page=1, page_end=1) for p in scan.passages))
    backend.write([scan])
    scan_id = backend.dense_search(fake_vector("Read by OCR."), 1, EVERYTHING)[0][0]
    assert passages_of(backend, [scan_id])[scan_id].ocr is True
    assert backend.document("scan").ocr_lines == (line,) and backend.document("scan").ocr_pages == (1,)


def test_corrupt_database_gives_clear_error(tmp_path):
    (tmp_path / "index.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(BackendError, match="index.sqlite.*rebuild"):
        LocalBackend(tmp_path)


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
    with pytest.raises(BackendError, match="index.sqlite.*rebuild"):
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


def test_failed_transaction_start_releases_the_lock(tmp_path):
    store = Store(tmp_path / "index.sqlite")
    other = sqlite3.connect(tmp_path / "index.sqlite", isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    store.db.execute("PRAGMA busy_timeout = 0")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        with store.transaction():
            pass
    other.execute("ROLLBACK")
    reader = threading.Thread(target=store.counts)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "the store lock was left held"


def test_missing_or_corrupt_snapshot_is_rebuilt_from_sqlite(tmp_path):
    backend = open_local(tmp_path)
    backend.write([prepared("a", ["Alpha one."]), prepared("b", ["Beta two."])])
    backend.merge()
    backend.close()
    for snapshot in tmp_path.glob(f"{SNAPSHOT_PREFIX}*"):
        snapshot.write_bytes(b"truncated")
    assert top_doc(open_local(tmp_path), "Beta two.") == "b"


def test_file_modes_are_one(tmp_path):
    backend = open_local(tmp_path)
    backend.write([prepared("a", ["Alpha one."])])
    backend.merge()
    modes = {path.stat().st_mode & 0o777 for path in tmp_path.iterdir() if path.name.startswith(("vectors-", "index."))}
    assert len(modes) == 1, modes


def test_keyword_search_with_phrases_keeps_only_passages_holding_them(tmp_path):
    backend = LocalBackend(tmp_path)
    backend.record_model(FAKE_MODEL)
    backend.write([prepared("apart", ["The guide is part of the build of packages."]),
                   prepared("together", ["Most of the guide is about packaging."]),
                   prepared("zh", ["水贝珠宝的生产周期比全球平均快百分之三十。"]),
                   prepared("zh2", ["生产和周期是两个词。"])])

    def documents(tokens: str, *phrases: str) -> set[str]:
        query = KeywordQuery(tuple(keyword_tokens(tokens)), tokens, tuple(fold(p) for p in phrases))
        found = backend.keyword_search(query, 10, Filter())
        return {passage.doc_id for passage in passages_of(backend, [passage_id for passage_id, _ in found]).values()}

    assert documents("of the guide") == {"apart", "together"}
    assert documents("of the guide", "of the guide") == {"together"}  # English: tokens adjacent, in order
    assert documents("of the guide", "of the guide", "about packaging") == {"together"}  # every phrase
    assert documents("guide of the", "guide of the") == set()
    assert documents("生产 周期") == {"zh", "zh2"}
    assert documents("生产 周期", "产周期") == {"zh"}  # Chinese: a substring, wherever jieba cut
    assert documents("生產 週期", "產週期") == {"zh"}  # traditional folds to simplified
    assert documents("生产 周期", "周期") == {"zh", "zh2"}  # under three characters: left to the retriever
    backend.delete("zh")
    assert documents("生产 周期", "产周期") == set()
    backend.close()


def test_an_index_from_before_the_character_index_gains_it_on_open(tmp_path):
    backend = LocalBackend(tmp_path)
    backend.record_model(FAKE_MODEL)
    backend.write([prepared("zh", ["水贝珠宝的生产周期比全球平均快百分之三十。"]), prepared("en", ["Gold rose."])])
    backend.close()
    with sqlite3.connect(tmp_path / "index.sqlite") as db:  # as an index of the previous version
        db.execute("DROP TABLE chunks_chars")
        db.execute("DELETE FROM meta WHERE key = 'chars_indexed'")
    store = Store(tmp_path / "index.sqlite")
    assert store.db.execute("SELECT count(*) FROM chunks_chars").fetchone()[0] == 1  # passages with Chinese
    assert store.keyword_search(keyword_tokens("生产"), 10, Filter(), ("产周期",))
    store.close()


def test_a_query_searches_faiss_on_its_own_thread_alone_and_leaves_the_setting_as_it_was():
    """One OpenMP thread per query search (faster and far cheaper than a team for one query), set for
    the searching thread only and restored after: a merge on another thread keeps every core."""
    import faiss
    import numpy as np

    generator = np.random.default_rng(0)
    vectors = generator.standard_normal((500, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex(16)
    index.add(np.arange(500), vectors)
    before = faiss.omp_get_max_threads()
    seen: list[int] = []
    with one_thread():
        seen.append(faiss.omp_get_max_threads())
        other = threading.Thread(target=lambda: seen.append(faiss.omp_get_max_threads()))
        other.start()
        other.join()
    assert seen == [1, before] and faiss.omp_get_max_threads() == before
    found = index.search(vectors[7], 5)
    assert found[0][0] == 7 and abs(found[0][1] - 1.0) < 1e-5
    assert faiss.omp_get_max_threads() == before
