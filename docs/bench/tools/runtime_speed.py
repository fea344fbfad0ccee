"""Bare speed of runtimes: passages/s (batch 16) and queries/s (batch 1 / 8 / 32)."""
import os, sys, time, json, glob
os.environ["HF_HUB_OFFLINE"] = "1"
import numpy as np
from pathlib import Path
from sentence_transformers import SentenceTransformer
M = Path.home() / ".cache/bisearch/models"
B = Path(__file__).resolve().parents[3].parent / "shared" / "bench" / "maintguide"  # beside the repo
queries = [json.loads(l)["text"] for l in open(B / "queries.jsonl", encoding="utf-8")]
docs = sorted(glob.glob(str(B / "docs/en/*.txt")))[:16] + sorted(glob.glob(str(B / "docs/zh/*.txt")))[:16]
passages = [open(d, encoding="utf-8").read()[:1200] for d in docs]
variant = sys.argv[1]
if variant == "torch":
    m = SentenceTransformer(str(M / "embeddinggemma-300m"), device="cpu")
elif variant == "onnx":
    m = SentenceTransformer(str(M / sys.argv[2]), backend="onnx", device="cpu", model_kwargs={"file_name": sys.argv[3]} if len(sys.argv) > 3 else {})
elif variant == "openvino":
    m = SentenceTransformer(str(M / sys.argv[2]), backend="openvino", device="cpu", model_kwargs={"file_name": sys.argv[3]} if len(sys.argv) > 3 else {})
m.max_seq_length = 288
m.encode_query(queries[:8]); m.encode_document(passages[:4])
out = {"variant": " ".join(sys.argv[1:])}
t = time.perf_counter(); m.encode_document(passages, batch_size=16); out["passages_per_s"] = round(len(passages) / (time.perf_counter() - t), 2)
for bs, n in ((1, 24), (8, 64), (32, 128)):
    qs = queries[:n]
    t = time.perf_counter()
    for s in range(0, n, bs):
        m.encode_query(qs[s:s + bs], batch_size=bs)
    out[f"queries_per_s_b{bs}"] = round(n / (time.perf_counter() - t), 2)
ref = np.load("/tmp/rt/ref.npy") if os.path.exists("/tmp/rt/ref.npy") else None
v = m.encode_query(queries[:32])
if variant == "torch": np.save("/tmp/rt/ref.npy", v)
elif ref is not None: out["max_abs_diff_vs_torch"] = float(np.abs(v - ref).max()); out["min_cos_vs_torch"] = float((v * ref).sum(1).min())
print(json.dumps(out), flush=True)
