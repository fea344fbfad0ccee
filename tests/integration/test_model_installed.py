"""The model installed for the suite is the verified default."""

from __future__ import annotations

from search.model.download import default_model_dir, verify_model_dir


def test_the_installed_default_model_verifies(embedder):
    verify_model_dir(default_model_dir())
