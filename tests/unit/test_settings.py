"""One settings object: environment and CLI flags over it (its reference: test_configuration_doc.py)."""

from __future__ import annotations

from search.cli import build_parser, settings_of
from search.errors import ANSWERS, InvalidInput



def test_flags_override_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BISEARCH_INDEX", str(tmp_path / "from-env"))
    monkeypatch.setenv("BISEARCH_BACKEND", "milvus")
    args = build_parser().parse_args(["stats", "--index", str(tmp_path / "from-flag")])
    settings = settings_of(args)
    assert settings.index == tmp_path / "from-flag" and settings.backend == "milvus"


def test_bad_environment_values_are_one_line_errors(monkeypatch, capsys):
    from search.cli import main

    monkeypatch.setenv("BISEARCH_SEARCH_THREADS", "many")
    assert main(["stats", "--index", "/nonexistent"]) == ANSWERS[InvalidInput].exit_code
    assert "BISEARCH_SEARCH_THREADS" in capsys.readouterr().err
