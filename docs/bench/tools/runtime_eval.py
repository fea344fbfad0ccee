"""bisearch eval with the Embedder built for a runtime/precision (engine does not pass them yet)."""
import json, sys
from pathlib import Path
import search.engine as engine
from search.embedding import Embedder
runtime, precision, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
engine._cached_embedder = lambda model, chunk_tokens, dimension, quantize: Embedder(
    model, max_tokens=chunk_tokens, dimension=dimension, runtime=runtime, precision=precision)
from search.evaluation import run_benchmark, format_table
report = run_benchmark(Path("/work/shared/bench/maintguide"), index_dir=out)
report["runtime"], report["precision"] = runtime, precision
print(format_table(report)); print(json.dumps(report))
