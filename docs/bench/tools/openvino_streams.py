"""OpenVINO bf16 questions/s: one two-thread request (the product's form for a lone question) against two single-threaded
streams with each batch split in halves, idle and while another process takes part of a core
(what a server's own work does to the model). A tool, not the product.

    python docs/bench/tools/openvino_streams.py [BUSY_SHARE ...]    # default: 0 0.6

The product runs the second form for every batch of two or more (search/model/openvino_engine.py),
with parts of about equal tokens rather than halves; this tool keeps plain halves of 128 questions.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from search.model.download import default_model_dir  # noqa: E402
from search.model.onnx_engine import MODEL_FILE, export_dir  # noqa: E402

QUERY_PROMPT = "task: search result | query: "
QUESTIONS = ROOT.parent / "shared" / "bench" / "maintguide" / "queries.jsonl"


def busy(stop, share: float) -> None:
    """Keep ``share`` of one core busy (10 ms periods) until ``stop`` is set."""
    while not stop.is_set():
        started = time.perf_counter()
        while time.perf_counter() - started < 0.01 * share:
            pass
        time.sleep(0.01 * (1 - share))


def main(shares: list[float]) -> None:
    import openvino
    from transformers import AutoTokenizer

    model_dir = default_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    questions = [json.loads(line)["text"] for line in QUESTIONS.read_text(encoding="utf-8").splitlines()][:128]
    core = openvino.Core()
    path = str(export_dir(model_dir) / MODEL_FILE)
    common = {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": 2}
    latency = core.compile_model(core.read_model(path), "CPU", {**common, "PERFORMANCE_HINT": "LATENCY"})
    streams = core.compile_model(core.read_model(path), "CPU", {**common, "NUM_STREAMS": 2})
    one = latency.create_infer_request()
    first, second = streams.create_infer_request(), streams.create_infer_request()

    def feeds(texts: list[str]) -> dict[str, np.ndarray]:
        batch = tokenizer([QUERY_PROMPT + text for text in texts], padding=True, return_tensors="np")
        return {"input_ids": batch["input_ids"].astype(np.int64), "attention_mask": batch["attention_mask"].astype(np.int64)}

    def on_one(texts: list[str]) -> None:
        one.infer(feeds(texts))

    def on_streams(texts: list[str]) -> None:
        if len(texts) < 2:
            first.infer(feeds(texts))
            return
        half = len(texts) // 2
        first.start_async(feeds(texts[:half]))
        second.start_async(feeds(texts[half:]))
        first.wait()
        second.wait()

    runs: dict[str, Callable[[list[str]], None]] = {"one request, 2 threads": on_one, "2 streams, halves": on_streams}
    for share in shares:
        stop = multiprocessing.Event()
        hog = multiprocessing.Process(target=busy, args=(stop, share))
        hog.start()
        for name, run in runs.items():
            for batch in (1, 4, 8, 16, 32):
                run(questions[:batch])
                started = time.perf_counter()
                for start in range(0, len(questions), batch):
                    run(questions[start:start + batch])
                rate = len(questions) / (time.perf_counter() - started)
                print(json.dumps({"busy_share": share, "run": name, "batch": batch,
                                  "questions_per_s": round(rate, 1)}), flush=True)
        stop.set()
        hog.join()


if __name__ == "__main__":
    main([float(share) for share in sys.argv[1:]] or [0.0, 0.6])
