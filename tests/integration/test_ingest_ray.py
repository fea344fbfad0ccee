"""``bisearch ingest --ray`` with a real local Ray and the real model: the index equals a plain
ingest of the same files, a second run skips unchanged documents, and bad input is one line."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import index_settings
from search.backends import open_backend
from search.backends.base import passages_of, sentences_of, vectors_of
from search.cli import main
from search.errors import ANSWERS, InvalidInput, Unavailable
from search.service import open_ingester
from search.types import Filter

pytest.importorskip("ray", reason="the ray extra is not installed")

from search.ingest import ray as ingest_ray  # noqa: E402  (after the ray check)

INVALID, UNAVAILABLE = ANSWERS[InvalidInput].exit_code, ANSWERS[Unavailable].exit_code

# Ray Data's own context warns about its renamed settings whenever it is copied to a worker.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")

ENGLISH = ("Shuibei in Shenzhen is the largest jewellery manufacturing hub in China. Workshops there turn gold "
           "and silver into finished pieces in about two weeks, roughly 30% faster than the global average. "
           "Most of the output is sold wholesale to retailers across Asia.\n\n"
           "Platinum demand rose 12% in Thailand last year, driven by bridal jewellery. Analysts expect the "
           "growth to slow as prices climb.")
CHINESE = ("水贝位于深圳，是中国最大的珠宝生产基地。那里的工坊大约两周就能把黄金和白银做成成品，比全球平均快约百分之三十。"
           "大部分产品批发给亚洲各地的零售商。\n\n去年泰国的铂金需求增长了百分之十二，主要来自婚庆珠宝。分析师预计随着价格上涨，"
           "增长将会放缓。")
MIXED = "# 珠宝 Jewellery\n\nPearl prices fell in 2025. 珍珠价格在二〇二五年下跌。Freshwater pearls from Zhuji lead the market."


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ray-corpus") / "docs"
    (folder / "zh").mkdir(parents=True)
    (folder / "shuibei.txt").write_text(ENGLISH, encoding="utf-8")
    (folder / "zh" / "shuibei.txt").write_text(CHINESE, encoding="utf-8")
    (folder / "mixed.md").write_text(MIXED, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def plain_index(tmp_path_factory, corpus, embedder) -> Path:
    folder = tmp_path_factory.mktemp("plain") / "index"
    ingester = open_ingester(index_settings(folder), embedder=embedder)
    try:
        summary = ingester.ingest_paths([corpus])
    finally:
        ingester.backend.close()
    assert summary.count("added") == 3 and not summary.failed
    return folder


def ingest(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["ingest", *args, "-q"])
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every document of an index: its text and metadata, passages, vectors and sentence vectors."""
    backend = open_backend(index_settings(folder))
    try:
        found = {}
        for summary in backend.documents(limit=1000):
            document = backend.document(summary.id)
            ids = backend.store.passage_ids(Filter(doc_ids=(summary.id,)))
            passages = sorted(passages_of(backend, ids).items(), key=lambda item: item[1].chunk_no)
            vectors, sentences = vectors_of(backend, ids), sentences_of(backend, ids)
            found[summary.id] = (
                (document.text, document.title, document.source, document.sha256),
                [(p.chunk_no, p.start, p.end, p.text, p.lang, p.mixed, p.title, p.source, p.page, p.section)
                 for _, p in passages],
                np.stack([vectors[pid] for pid, _ in passages]),
                [sentences.get(pid) for pid, _ in passages],
            )
        return found
    finally:
        backend.close()


def assert_same_index(actual: Path, expected: Path) -> None:
    got, want = snapshot(actual), snapshot(expected)
    assert sorted(got) == sorted(want)
    for doc_id, (meta, passages, vectors, sentences) in want.items():
        got_meta, got_passages, got_vectors, got_sentences = got[doc_id]
        assert got_meta == meta and got_passages == passages, doc_id
        np.testing.assert_allclose(got_vectors, vectors, atol=1e-4)
        for got_s, want_s in zip(got_sentences, sentences):
            assert (got_s is None) == (want_s is None)
            if want_s is not None:
                assert np.array_equal(got_s.spans, want_s.spans)
                np.testing.assert_allclose(got_s.vectors.astype(np.float32), want_s.vectors.astype(np.float32),
                                           atol=2e-3)  # float16, one rounding step apart at most
    backend_a, backend_b = open_backend(index_settings(actual)), open_backend(index_settings(expected))
    try:
        assert backend_a.model() == backend_b.model()
        stats_a, stats_b = backend_a.stats(), backend_b.stats()
        assert {k: stats_a[k] for k in ("documents", "chunks")} == {k: stats_b[k] for k in ("documents", "chunks")}
    finally:
        backend_a.close(), backend_b.close()


def test_ray_ingest_equals_plain_ingest_and_resumes(capsys, tmp_path, corpus, plain_index):
    index = tmp_path / "index"
    code, out, err = ingest(capsys, str(corpus), "--ray", "--index", str(index))
    assert code == 0, err
    assert "files: 3  added: 3  replaced: 0  unchanged: 0  failed: 0" in out
    assert "Traceback" not in err
    assert_same_index(index, plain_index)

    # a second run: unchanged documents are skipped, a changed one replaced, the rest untouched
    before = snapshot(index)
    (corpus / "mixed.md").write_text(MIXED + "\n\nAkoya pearls held their price.", encoding="utf-8")
    try:
        code, out, err = ingest(capsys, str(corpus), "--ray", "--index", str(index))
    finally:
        (corpus / "mixed.md").write_text(MIXED, encoding="utf-8")
    assert code == 0, err
    assert "files: 3  added: 0  replaced: 1  unchanged: 2  failed: 0" in out
    after = snapshot(index)
    for doc_id in ("shuibei", "zh/shuibei"):
        assert after[doc_id][1] == before[doc_id][1]
        np.testing.assert_array_equal(after[doc_id][2], before[doc_id][2])
    assert "Akoya pearls held their price." in after["mixed"][0][0]


def listening_addresses_of_children() -> set[str]:
    """Local addresses of TCP sockets listened on by this process's descendants (Linux /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    family, frontier = set(), {os.getpid()}
    while frontier:
        family |= frontier
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - family
    inodes = set()
    for pid in family - {os.getpid()}:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            pass
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                found.add(_address(fields[1].split(":")[0]))
    return found


def _address(hex_ip: str) -> str:
    raw = bytes.fromhex(hex_ip)
    if len(raw) == 4:
        return ".".join(str(b) for b in raw[::-1])
    words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
    joined = b"".join(words)
    if joined[:12] == b"\0" * 10 + b"\xff\xff":
        return ".".join(str(b) for b in joined[12:])
    return ":".join(joined[i:i + 2].hex() for i in range(0, 16, 2))


def test_local_ray_listens_on_loopback_only_and_a_gpu_request_fails_at_once(capsys, tmp_path, corpus):
    environment = {name: os.environ.get(name) for name in ingest_ray.LOCAL_RAY_ENV}
    with ingest_ray._ray_session(None, verbose=False) as ray:
        assert ray.is_initialized()
        addresses = listening_addresses_of_children()
        assert addresses and addresses <= {"127.0.0.1", "0000:0000:0000:0000:0000:0000:0000:0001"}, addresses
        if ray.cluster_resources().get("GPU", 0) == 0:  # this machine: no GPU, so asking for one fails at once
            started = time.monotonic()
            code, out, err = ingest(capsys, str(corpus), "--ray", "--ray-gpus-per-actor", "1",
                                    "--index", str(tmp_path / "gpu"))
            assert code == UNAVAILABLE and time.monotonic() - started < 30
            assert err.strip().splitlines() == [
                "bisearch: error: --ray-gpus-per-actor 1: the Ray cluster has 0 GPU(s), so the embedding actors "
                "would wait forever; use --ray-gpus-per-actor 0 to embed on CPU"]
        code, out, err = ingest(capsys, str(corpus), "--ray", "--ray-cpus-per-actor", "1000",
                                "--index", str(tmp_path / "cpus"))
        assert code == UNAVAILABLE and "leave no CPU for reading files" in err and len(err.strip().splitlines()) == 1
    assert not ray.is_initialized()
    assert {name: os.environ.get(name) for name in environment} == environment  # set for Ray's processes only


@pytest.mark.parametrize("args, message, status", [
    (["{missing}", "--ray"], "skipped: {missing}: no such file or folder", 1),
    (["{corpus}", "--ray", "127.0.0.1:1"], "bisearch: error: cannot reach the Ray cluster at 127.0.0.1:1: ", UNAVAILABLE),
    (["{corpus}", "--ray", "ray://127.0.0.1:1"], "bisearch: error: cannot reach the Ray cluster at ray://127.0.0.1:1: ",
     UNAVAILABLE),
    (["{corpus}", "--ray", "not an address"], "bisearch: error: --ray not an address: not a Ray address", INVALID),
    (["{corpus}/mixed.md", "--ray", "{corpus}"], "bisearch: error: --ray took '{corpus}' as the cluster address",
     INVALID),
])
def test_bad_ray_input_is_one_line_and_a_failure(capsys, tmp_path, corpus, args, message, status):
    values = {"missing": str(tmp_path / "missing"), "corpus": str(corpus)}
    started = time.monotonic()
    code, out, err = ingest(capsys, *[arg.format(**values) for arg in args], "--index", str(tmp_path / "index"))
    assert code == status and time.monotonic() - started < 20
    assert err.strip().splitlines()[0].startswith(message.format(**values)), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
