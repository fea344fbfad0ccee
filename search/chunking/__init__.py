"""Document -> passages: token-bounded passages of whole sentences, located on pages and in sections."""

from search.chunking.chunker import Chunker, Tokenizer
from search.chunking.locate import locate, passage_title

__all__ = ["Chunker", "Tokenizer", "locate", "passage_title"]
