"""Text: script detection, normalisation, keyword tokens, sentences (no model, no storage)."""
