"""Ingest with the real model: round trip, re-ingest, replace, delete, ids, model checks."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SEEDS, index_settings
from search.backends import ModelMismatchError
from search.backends.base import passages_of
from search.service import open_ingester, open_retriever
from search.chunking.locate import locate
from search.loading import make_document
from search.types import Document, Lang, ModelInfo, Passage


@pytest.fixture
def ingester(fresh_index_dir, embedder):
    ingester = open_ingester(index_settings(fresh_index_dir), embedder=embedder)
    yield ingester
    ingester.backend.close()


def test_round_trip_offsets_and_metadata(seed_retriever):
    backend = seed_retriever.backend
    assert backend.stats()["documents"] == 2
    for summary in backend.documents():
        document = backend.document(summary.id)
        passages = passages_of(backend, backend.store.passage_ids(filter_for(document.id))).values()
        assert passages, document.id
        for passage in passages:
            assert document.text[passage.start:passage.end] == passage.text
            assert passage.title == document.title and passage.source.endswith(".txt")


def filter_for(doc_id: str):
    from search.types import Filter

    return Filter(doc_ids=(doc_id,))


def test_reingest_unchanged_adds_nothing(ingester):
    before = ingester.backend.stats()
    summary = ingester.ingest_paths([SEEDS])
    assert summary.count("unchanged") == 2 and summary.chunks_added == 0
    assert ingester.backend.stats()["chunks"] == before["chunks"]


def test_changed_document_replaces_its_passages_and_delete_removes_them(ingester):
    retriever = open_retriever(index_settings(ingester.backend.folder), embedder=ingester.embedder)
    base = ingester.backend.stats()["chunks"]
    assert ingester.add([make_document("note", "Platinum demand rose 12% in Thailand.", source="mem")])[0].status == "added"
    second = ingester.add([make_document("note", "铂金需求在泰国增长了12%。新的版本。", source="mem")])[0]
    assert second.status == "replaced"
    assert ingester.backend.stats()["chunks"] == base + second.chunks
    hits = retriever.search("铂金需求", k=3, doc_ids=["note"]).hits  # another process's view catches up
    assert hits and all("铂金" in hit.passage.text for hit in hits)
    assert ingester.backend.delete("note") is True
    assert ingester.backend.delete("note") is False
    assert ingester.backend.stats()["chunks"] == base
    assert retriever.search("Platinum demand Thailand", k=10, doc_ids=["note"]).hits == []


def test_same_id_twice_in_one_ingest_is_reported_not_corrupting(ingester, tmp_path):
    folder = tmp_path / "twins"
    folder.mkdir()
    (folder / "a.txt").write_text("Silver demand in India rose sharply.", encoding="utf-8")
    (folder / "a.md").write_text("# 白银\n印度的白银需求大幅上升。", encoding="utf-8")
    summary = ingester.ingest_paths([folder])
    assert summary.count("added") == 1 and len(summary.failed) == 1 and "same document id 'a'" in summary.failed[0]
    twice = [make_document("b", "Pearl prices fell.", source="mem"), make_document("b", "珍珠价格下跌。", source="mem")]
    assert [outcome.status for outcome in ingester.add(twice)] == ["added"]
    assert ingester.backend.document("b").text == "珍珠价格下跌。"


def test_another_file_with_the_same_id_does_not_overwrite_it(ingester, tmp_path):
    first, second, moved = (tmp_path / folder / "report.txt" for folder in ("one", "two", "three"))
    for file, text in ((first, "Ruby auctions set records."), (second, "翡翠拍卖创下纪录。")):
        file.parent.mkdir()
        file.write_text(text, encoding="utf-8")
    assert ingester.ingest_paths([first]).count("added") == 1
    clash = ingester.ingest_paths([second])
    assert clash.outcomes == [] and "already holds" in clash.failed[0] and str(first) in clash.failed[0]
    assert ingester.backend.document("report").text == "Ruby auctions set records."
    first.write_text("Ruby auctions set new records.", encoding="utf-8")
    assert ingester.ingest_paths([first]).count("replaced") == 1  # the same file, changed
    moved.parent.mkdir()
    first.rename(moved)
    assert ingester.ingest_paths([moved]).count("unchanged") == 1  # its old place is gone: the same document


def test_query_with_another_model_is_refused(fresh_index_dir, embedder, monkeypatch):
    monkeypatch.setattr(embedder, "info", ModelInfo("someone/other-model", 384, "query: ", "passage: "))
    with pytest.raises(ModelMismatchError, match="other-model"):
        open_retriever(index_settings(fresh_index_dir), embedder=embedder)


def test_passages_carry_pages_and_sections_of_their_document():
    document = Document("d", "T", "s.pdf", "page one text. page two text. end", pages=(0, 15, 30),
                        page_labels=("i", "ii", "iii"), sections=((0, "Intro"), (15, "Body")))
    spanning = locate(Passage("d", 0, 5, 20, document.text[5:20], Lang.EN), document)
    assert (spanning.page, spanning.page_end, spanning.page_label, spanning.section) == (1, 2, "i", "Intro")
    last = locate(Passage("d", 1, 30, 33, "end", Lang.EN), document)
    assert (last.page, last.page_end, last.section, last.title) == (3, 3, "Body", "T")


def test_a_file_whose_id_no_backend_can_store_is_skipped(tmp_path):
    """A file name with a line break is reported and skipped (no model needed), never half a batch."""
    from fakes import FAKE_MODEL
    from search.backends.local import LocalBackend
    from search.ingest.pipeline import file_refusal

    backend = LocalBackend(tmp_path / "index")
    backend.record_model(FAKE_MODEL)
    try:
        refusal = file_refusal(backend, tmp_path / "a\nb.txt", "a\nb.txt", None, {})
        assert refusal.startswith(str(tmp_path / "a\nb.txt")) and "must not hold a line break" in refusal
        assert file_refusal(backend, tmp_path / "ok.txt", "ok.txt", None, {}) is None
    finally:
        backend.close()


def test_a_new_index_embeds_titled_passages_and_an_old_one_keeps_its_way(tmp_path, embedder):
    """A new index records ``passage_titles`` and embeds each passage with its title and section;
    an index built before titles existed (recorded without them) goes on embedding ``title: none``,
    so one index never mixes the two."""
    from dataclasses import replace

    from search.backends.base import vectors_of
    from search.backends.local import LocalBackend
    from search.chunking import passage_title
    from search.loading.text import text_document
    from search.types import Filter

    document = text_document("guide", "# Lead times\n\nShuibei's lead times are 30% faster than the global "
                                      "average.\n\n## Gold\n\n深圳的黄金价格在2024年上涨了很多。", source="guide.md",
                             markdown=True)
    vectors = {}
    for name, recorded in (("new", None), ("old", replace(embedder.info, passage_titles=False))):
        if recorded is not None:
            old = LocalBackend(tmp_path / name)
            old.record_model(recorded)
            old.close()
        ingester = open_ingester(index_settings(tmp_path / name, chunk_tokens=16), embedder=embedder)
        ingester.add([document])
        backend = ingester.backend
        assert backend.model().passage_titles is (name == "new") and ingester.passage_titles is (name == "new")
        ids = backend.store.passage_ids(Filter(doc_ids=("guide",)))
        passages = sorted(passages_of(backend, ids).values(), key=lambda passage: passage.start)
        stored = vectors_of(backend, [passage.id for passage in passages])
        vectors[name] = (passages, [stored[passage.id] for passage in passages])
        ingester.backend.close()
    passages, new = vectors["new"]
    _, old = vectors["old"]
    titles = [passage_title(passage) for passage in passages]
    assert titles[-1] == "Lead times › Gold"
    np.testing.assert_allclose(new, embedder.encode_documents([p.text for p in passages], titles=titles), atol=1e-5)
    np.testing.assert_allclose(old, embedder.encode_documents([p.text for p in passages]), atol=1e-5)


def test_a_plain_text_files_first_line_is_not_given_as_its_title(tmp_path, embedder):
    """A .txt has no title of its own: the first line stands in for display only, and its passages
    are embedded with ``title: none`` (the dev sets measured it: a first line as title cost R@10)."""
    from search.backends.base import vectors_of
    from search.loading import read_bytes
    from search.types import Filter

    loaded = read_bytes("Debian supports many ports\nwith the autobuilder network.".encode(), "ports.txt", "ports")
    assert loaded.document.title == "Debian supports many ports" and loaded.document.title_guessed
    ingester = open_ingester(index_settings(tmp_path / "index"), embedder=embedder)
    ingester.add([loaded.document])
    ids = ingester.backend.store.passage_ids(Filter(doc_ids=("ports",)))
    (passage,) = passages_of(ingester.backend, ids).values()
    (stored,) = vectors_of(ingester.backend, ids).values()
    assert ingester.passage_titles
    np.testing.assert_allclose(stored, embedder.encode_documents([passage.text])[0], atol=1e-5)
    ingester.backend.close()
