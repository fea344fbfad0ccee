"""Bilingual (English/Chinese) semantic search with cited passages."""

__version__ = "0.1.0"
