"""A query -> ranked, cited passages: query syntax, fusion, collapse, evidence, the retriever."""
