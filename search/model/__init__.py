"""The embedding model: spec and engine, runtimes, query batching, a process of its own, the
Embedder callers use, and the offline download + verification of the default weights."""
