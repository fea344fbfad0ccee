"""Hostile-input measurements of issue 27: time, server memory and the worst ``/health`` latency.

Each scenario runs against a real server in a child process (``serve``, warmed up by one small
upload), while a sampler polls ``/health`` every 50 ms and reads the server's memory (the PSS
of it and its child processes) every 50 ms: ``memory_peak_mb`` and ``memory_after_mb`` are
over the level before the scenario. The same tool measures the code before the fixes: point ``PYTHONPATH`` at a
checkout of it (``git archive tree | tar -x -C /tmp/before``).

    python docs/bench/tools/hostile.py build-index /tmp/hostile-index --passages 30000 --documents 20000
    python docs/bench/tools/hostile.py run /tmp/hostile-index md toc bomb cid comments phrases exclusions collapse jobs
    python docs/bench/tools/hostile.py build-real-index /tmp/hostile-real       # the real model (evidence)
    python docs/bench/tools/hostile.py run /tmp/hostile-real --real evidence

The first index holds hash vectors (no model: what is measured is parsing, the store and
ranking, not embedding); ``--real`` serves the real model in its own process, as
``bisearch serve`` does. Results are printed as JSON lines.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[3]
DIMENSION = 768
DEBIAN_PDFS = [Path("/usr/share/doc/maint-guide/maint-guide.en.pdf"),
               Path("/usr/share/doc/maint-guide-zh-cn/maint-guide.zh-cn.pdf")]


# -- a model-free embedder ---------------------------------------------------------------------------
class HashEmbedder:
    """Unit vectors from a hash of the text (the real tokenizer, for chunking; no model)."""

    def __init__(self, tokenizer) -> None:
        from search.types import ModelInfo

        self.tokenizer = tokenizer
        self.info = ModelInfo("bench/hash", DIMENSION, "", "")

    @staticmethod
    def _vector(text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode("utf-8", "replace")).digest()[:8], "little")
        vector = np.random.default_rng(seed).standard_normal(DIMENSION).astype(np.float32)
        return vector / np.linalg.norm(vector)

    def encode_query(self, text: str) -> np.ndarray:
        return self._vector(text)

    def encode_documents(self, texts, batch_size: int = 16, progress: bool = False) -> np.ndarray:
        return np.stack([self._vector(text) for text in texts]) if len(texts) else np.zeros((0, DIMENSION), np.float32)

    def encode_passages(self, texts, batch_size: int = 16, progress: bool = False):
        return self.encode_documents(texts), [None] * len(texts)


# -- indexes -------------------------------------------------------------------------------------------
def corpus_texts() -> list[str]:
    """Passage-sized texts (about 400 characters) of the Debian guides, English and Chinese."""
    from search.loading import read_bytes

    texts = []
    for path in DEBIAN_PDFS:
        text = read_bytes(path.read_bytes(), path.name, path.stem).document.text
        texts += [" ".join(text[start:start + 400].split()) for start in range(0, len(text) - 400, 400)]
    return [text for text in texts if text]


def build_index(folder: Path, passages: int, documents: int) -> None:
    """A local index of ``documents`` documents holding ``passages`` passages in all, hash vectors."""
    from search.backends.base import PreparedDocument
    from search.backends.local import LocalBackend
    from search.text.language import detect_language, is_mixed, keyword_tokens
    from search.types import Document, Passage

    texts = corpus_texts()
    tokens = [tuple(keyword_tokens(text)) for text in texts]
    backend = LocalBackend(folder)
    backend.record_model(HashEmbedder(None).info)
    per_document = [passages // documents + (1 if number < passages % documents else 0) for number in range(documents)]
    batch, made = [], 0
    for number, count in enumerate(per_document):
        doc_id = f"doc{number:06d}"
        chosen = [(made + i) % len(texts) for i in range(count)]
        made += count
        bodies = [f"{texts[i]} [{doc_id}.{j}]" for j, i in enumerate(chosen)]
        text = "\n\n".join(bodies)
        items, start = [], 0
        for j, body in enumerate(bodies):
            items.append(Passage(doc_id, j, start, start + len(body), body, detect_language(body), is_mixed(body),
                                 doc_id, f"{doc_id}.txt"))
            start += len(body) + 2
        document = Document(doc_id, doc_id, f"{doc_id}.txt", text, detect_language(text))
        vectors = np.stack([HashEmbedder._vector(body) for body in bodies])
        batch.append(PreparedDocument(document, tuple(items), tuple(tokens[i] + (doc_id,) for i in chosen), vectors))
        if len(batch) == 1000:
            backend.write(batch)
            batch = []
    if batch:
        backend.write(batch)
    backend.merge()
    print(json.dumps(backend.stats()), flush=True)
    backend.close()


def build_real_index(folder: Path) -> None:
    """The seeds and one document of many one-word sentences (the most sentences per passage), real model."""
    from search.loading import make_document
    from search.service import open_ingester
    from search.settings import Settings

    ingester = open_ingester(Settings(index=folder))
    ingester.ingest_paths([ROOT / "seeds"])
    words = "Jade opal pearl gold ruby onyx agate topaz beryl amber".split()
    text = " ".join(f"{words[i % len(words)]}." for i in range(3000))
    ingester.add([make_document("many-sentences", text, source="bench")])
    print(json.dumps(ingester.backend.stats()), flush=True)
    ingester.backend.close()


# -- the server --------------------------------------------------------------------------------------
def serve(folder: Path, port: int, real: bool) -> None:
    import uvicorn

    from search.api import create_app, server_config
    from search.settings import Settings

    settings = Settings(index=folder, model_process=True if real else None)
    if real:
        from search.service import open_retriever

        retriever = open_retriever(settings)
    else:
        from search.backends.local import LocalBackend
        from search.model.embedder import load_tokenizer
        from search.ranking.retriever import Retriever

        retriever = Retriever(LocalBackend(folder), HashEmbedder(load_tokenizer()))
    uvicorn.Server(server_config(create_app(retriever, settings), port=port, log_level="warning")).run()


class Server:
    """The server in a child process, with a sampler of its memory and of ``/health``."""

    def __init__(self, folder: Path, real: bool) -> None:
        self.port = 18000 + os.getpid() % 1000
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, __file__, "serve", str(folder), "--port", str(self.port)] + (["--real"] if real else [])
        self.process = subprocess.Popen(command, start_new_session=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.5)
        raise RuntimeError("the server did not start")

    def rss_mb(self) -> float:
        """Memory of the server and all its descendants in MiB: the sum of their proportional set sizes
        (PSS: pages a forked child shares with its parent are counted once, not once per process)."""
        total, pids = 0, [self.process.pid]
        while pids:
            pid = pids.pop()
            try:
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
                total += int(next(line.split()[1] for line in rollup.splitlines() if line.startswith("Pss:")))
                for task in Path(f"/proc/{pid}/task").iterdir():
                    pids += [int(child) for child in (task / "children").read_text().split()]
            except (OSError, StopIteration, ValueError):
                continue
        return total / 1024

    def close(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


class Sampler:
    """Worst ``/health`` latency and peak server memory while a scenario runs."""

    def __init__(self, server: Server) -> None:
        self.server, self.stop = server, threading.Event()
        self.health_worst, self.peak, self.base = 0.0, 0.0, server.rss_mb()
        self.threads = [threading.Thread(target=self._health), threading.Thread(target=self._memory)]

    def _health(self) -> None:
        with httpx.Client(timeout=600) as client:
            while not self.stop.is_set():
                started = time.monotonic()
                client.get(f"{self.server.url}/health")
                self.health_worst = max(self.health_worst, time.monotonic() - started)
                time.sleep(0.05)

    def _memory(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.server.rss_mb())
            time.sleep(0.05)

    def __enter__(self) -> "Sampler":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def result(self) -> dict[str, float]:
        return {"health_worst_s": round(self.health_worst, 3), "memory_peak_mb": round(self.peak - self.base, 1),
                "memory_after_mb": round(self.server.rss_mb() - self.base, 1)}


# -- hostile files: the tests' own builders (tests/pdfs.py) -------------------------------------------
sys.path.insert(0, str(ROOT / "tests"))
from pdfs import make_pdf as lines_pdf, text_bomb_pdf as bomb_pdf  # noqa: E402


# -- scenarios -----------------------------------------------------------------------------------------
def upload(client: httpx.Client, name: str, data: bytes) -> httpx.Response:
    return client.post("/documents", files={"file": (name, data)})


def wait_job(client: httpx.Client, url: str, limit: float) -> str:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        status = client.get(url).json()["status"]
        if status in ("done", "failed", "cancelled"):
            return status
        time.sleep(0.2)
    return f"still running after {limit:g} s"


def scenario_upload(name: str, data: bytes):
    def run(client: httpx.Client) -> dict:
        reply = upload(client, name, data)
        return {"status": reply.status_code, "reply": reply.text[:160]}
    return run


def scenario_bomb(client: httpx.Client) -> dict:
    """Upload the bomb; if it became a job, cancel it and time how long the cancel takes."""
    reply = upload(client, "bomb.pdf", bomb_pdf(20, 1_000_000))
    result = {"status": reply.status_code, "reply": reply.text[:160]}
    if reply.status_code == 202:
        client.delete(reply.json()["url"])
        started = time.monotonic()
        result["cancel"] = wait_job(client, reply.json()["url"], 300)
        result["cancel_s"] = round(time.monotonic() - started, 1)
    return result


def scenario_search(params: dict, beside: int = 0):
    """One hostile search; with ``beside``, plain searches run beside it and their worst time is kept."""
    def run(client: httpx.Client) -> dict:
        plain: list[float] = []
        stop = threading.Event()

        def plain_searches() -> None:
            with httpx.Client(base_url=client.base_url, timeout=600) as other:
                while not stop.is_set():
                    started = time.monotonic()
                    other.get("/search", params={"q": "software package", "k": 10})
                    plain.append(time.monotonic() - started)

        threads = [threading.Thread(target=plain_searches) for _ in range(beside)]
        for thread in threads:
            thread.start()
        time.sleep(0.5 if beside else 0)
        started = time.monotonic()
        reply = client.get("/search", params=params)
        request_s = time.monotonic() - started
        stop.set()
        for thread in threads:
            thread.join()
        result = {"status": reply.status_code, "request_s": round(request_s, 3),
                  "reply": reply.text[:160] if reply.status_code != 200 else ""}
        if plain:
            result["plain_worst_s"] = round(max(plain), 3)
        return result
    return run


def scenario_evidence(client: httpx.Client) -> dict:
    """4 searches with evidence=10 at once, plain searches beside them (their median and worst)."""
    replies, plain = [], []
    stop = threading.Event()

    def hostile() -> None:
        with httpx.Client(base_url=client.base_url, timeout=600) as other:
            started = time.monotonic()
            try:
                status = other.get("/search", params={"q": "jade opal pearl", "k": 10, "evidence": 10,
                                                      "doc": "many-sentences"}).status_code
            except httpx.TimeoutException:
                status = "no answer in 600 s"
            replies.append((status, round(time.monotonic() - started, 1)))

    def plain_searches() -> None:
        with httpx.Client(base_url=client.base_url, timeout=600) as other:
            for number in range(10_000):
                if stop.is_set():
                    return
                started = time.monotonic()
                other.get("/search", params={"q": f"gold prices {number}", "k": 10})
                plain.append(time.monotonic() - started)

    threads = [threading.Thread(target=hostile) for _ in range(4)]
    helper = threading.Thread(target=plain_searches)
    helper.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    helper.join()
    return {"status": sorted(replies, key=str), "plain_median_s": round(float(np.median(plain)), 3),
            "plain_worst_s": round(max(plain), 3)}


def scenario_jobs(client: httpx.Client) -> dict:
    """60 JSON documents of 8 MB (each a job), then every job cancelled: what memory stays."""
    text = ("Jade bangles from Myanmar are graded by colour. " * 170_000)[:8_000_000]
    statuses, urls = [], []
    for number in range(60):
        reply = client.post("/documents", json={"id": f"big{number}", "text": text})
        statuses.append(reply.status_code)
        if reply.status_code == 202:
            urls.append(reply.json()["url"])
    for url in urls:
        client.delete(url)
    for url in urls:
        wait_job(client, url, 120)
    time.sleep(1)
    return {"status": {code: statuses.count(code) for code in sorted(set(statuses))}}


def scenarios(real: bool) -> dict:
    phrase = " ".join(['"软件包"'] * 330)
    return {
        "md": scenario_upload("heading.md", b"# a" + b" " * 2000 + b"b\n"),
        "toc": scenario_upload("dots.pdf", lines_pdf(["." * 1500 + "x", "The next page."])),
        "bomb": scenario_bomb,
        "cid": scenario_upload("cid.pdf", lines_pdf([f"(cid:12) page {n}" for n in range(300)])),
        "comments": scenario_upload("comments.html", b"<p>hi</p>" + b"<!--" * 20_000),
        "phrases": scenario_search({"q": phrase, "k": 10}, beside=1),
        "exclusions": scenario_search({"q": "package " + " ".join(["-z"] * 660), "k": 100, "offset": 1000}),
        "collapse": scenario_search({"q": "software package", "k": 100, "offset": 1000, "collapse": "doc"}),
        # the heaviest narrowed searches still allowed (k + offset = 200)
        "collapse-max": scenario_search({"q": "software package", "k": 100, "offset": 100, "collapse": "doc"}),
        "exclusions-max": scenario_search({"q": "package " + " ".join(f"-z{n}" for n in range(16)), "k": 100,
                                           "offset": 100}),
        "jobs": scenario_jobs,
        "evidence": scenario_evidence,
    }


def run(folder: Path, names: list[str], real: bool) -> None:
    server = Server(folder, real)
    try:
        table = scenarios(real)
        with httpx.Client(base_url=server.url, timeout=900) as client:
            client.post("/documents", files={"file": ("warm-up.txt", b"Warm-up: the first upload starts the readers.")})
            for name in names:
                with Sampler(server) as sampler:
                    started = time.monotonic()
                    result = table[name](client)
                    seconds = time.monotonic() - started
                print(json.dumps({"item": name, "seconds": round(seconds, 2), **sampler.result(), **result},
                                 ensure_ascii=False), flush=True)
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build-index")
    build.add_argument("folder", type=Path)
    build.add_argument("--passages", type=int, default=30_000)
    build.add_argument("--documents", type=int, default=20_000)
    real = commands.add_parser("build-real-index")
    real.add_argument("folder", type=Path)
    serving = commands.add_parser("serve")
    serving.add_argument("folder", type=Path)
    serving.add_argument("--port", type=int, default=8000)
    serving.add_argument("--real", action="store_true")
    running = commands.add_parser("run")
    running.add_argument("folder", type=Path)
    running.add_argument("names", nargs="+")
    running.add_argument("--real", action="store_true")
    args = parser.parse_args()
    if args.command == "build-index":
        build_index(args.folder, args.passages, args.documents)
    elif args.command == "build-real-index":
        build_real_index(args.folder)
    elif args.command == "serve":
        serve(args.folder, args.port, args.real)
    else:
        run(args.folder, args.names, args.real)


if __name__ == "__main__":
    main()
