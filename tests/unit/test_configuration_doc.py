"""docs/configuration.md is generated from the Settings field descriptions and kept current."""

from __future__ import annotations

from pathlib import Path

from search.settings import CONFIGURATION_DOC, Settings, configuration_markdown

DOC = Path(__file__).resolve().parents[2] / CONFIGURATION_DOC


def test_every_setting_has_a_description():
    missing = [name for name, field in Settings.model_fields.items() if not (field.description or "").strip()]
    assert not missing, f"Settings fields without Field(description=...): {missing}"


def test_configuration_doc_is_current():
    assert DOC.read_text(encoding="utf-8") == configuration_markdown(), (
        f"{CONFIGURATION_DOC} is out of date: run "
        f"`python -m search.settings --markdown > {CONFIGURATION_DOC}` and commit it")


def test_every_setting_is_in_the_configuration_doc():
    text = DOC.read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"`BISEARCH_{name.upper()}`" not in text]
    assert not missing, f"{CONFIGURATION_DOC} lacks {missing}"
