"""Bilingual (English/Chinese) semantic search with cited passages.

The package follows the data flow. A document: cli/api -> loading -> ingest (chunking, model)
-> backends. A query: api/cli -> ranking.retriever (model; backend dense + keyword candidates)
-> fusion -> evidence -> output.citations.

Imports go downward only, through these layers (a module may import its own layer and those
above it in this list; ``tests/unit/test_layers.py`` fails on an upward import or a cycle):
"""

__version__ = "0.1.0"

#: The layers, lowest first: each entry is a set of top-level names inside ``search``.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"types", "settings", "errors"}),  # the vocabulary, every setting, one error family
    frozenset({"text"}),                         # script, normalisation, keyword tokens, sentences
    frozenset({"loading", "chunking"}),          # file -> Document; Document -> passages
    frozenset({"model"}),                        # spec, runtime, batching, engine/process, embedder, download
    frozenset({"backends"}),                     # the storage contract; local (SQLite + FAISS), Milvus
    frozenset({"ingest"}),                       # read -> chunk -> embed -> write; the same on Ray
    frozenset({"ranking"}),                      # query syntax, fusion, collapse, evidence, retriever
    frozenset({"output"}),                       # citations, reports
    frozenset({"service"}),                      # opens the model, backend, retriever and ingester a command needs
    frozenset({"eval", "api"}),                  # `bisearch eval`; the HTTP API and page
    frozenset({"cli"}),                          # the command line
)
