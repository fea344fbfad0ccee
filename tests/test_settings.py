"""One settings object: environment, CLI flags over it, and every setting documented."""

from __future__ import annotations

from pathlib import Path

from search.cli import build_parser, settings_of
from search.settings import Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_setting_is_in_the_readme_table():
    """Every setting is documented: in README.md's table or in a topic page of docs/ (docs/ocr.md...)."""
    text = "\n".join(path.read_text(encoding="utf-8") for path in [README, *sorted(README.parent.glob("docs/*.md"))])
    missing = [name for name in Settings.model_fields if f"`BISEARCH_{name.upper()}`" not in text]
    assert not missing, f"README settings table (or docs/*.md) lacks {missing}"


def test_flags_override_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BISEARCH_INDEX", str(tmp_path / "from-env"))
    monkeypatch.setenv("BISEARCH_BACKEND", "milvus")
    args = build_parser().parse_args(["stats", "--index", str(tmp_path / "from-flag")])
    settings = settings_of(args)
    assert settings.index == tmp_path / "from-flag" and settings.backend == "milvus"


def test_bad_environment_values_are_one_line_errors(monkeypatch, capsys):
    from search.cli import main

    monkeypatch.setenv("BISEARCH_SEARCH_THREADS", "many")
    assert main(["stats", "--index", "/nonexistent"]) == 1
    assert "BISEARCH_SEARCH_THREADS" in capsys.readouterr().err
