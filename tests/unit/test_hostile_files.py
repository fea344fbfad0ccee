"""Hostile files, round two (issue 27, items 3-5 and 8-10) and the child process that reads files.

Time bounds are CPU seconds of this process (a busy machine slows the clock, not the measure),
set far above the fixed code's cost and far below the old code's at the same size.
"""

from __future__ import annotations

import multiprocessing
import random
import re
import time

import pytest

from pdfs import make_pdf, text_bomb_pdf
from search.loading import DocumentError, LoadLimits, read_bytes
from search.loading.isolated import read_isolated
from search.loading.pdf import is_toc_line, join_wrapped
from search.loading.text import markdown_sections

UNCAPPED = LoadLimits(max_page_chars=10**9, max_text_chars=10**10)


def cpu_seconds(function, *args, **kwargs) -> float:
    started = time.process_time()
    function(*args, **kwargs)
    return time.process_time() - started


# -- 27.3 and 27.4: cubic regexes ---------------------------------------------------------------
def test_markdown_heading_with_a_long_run_of_spaces_is_read_in_linear_time():
    """27.3: ``# a`` + spaces + ``b`` as .md: 1,000 spaces took 2 s (cubic), 2,000 took 16 s."""
    data = b"# a" + b" " * 1500 + b"b\n\nbody\n"
    assert cpu_seconds(read_bytes, data, "h.md", "h") < 0.3
    assert read_bytes(data, "h.md", "h").document.sections == ((0, "a" + " " * 1500 + "b"),)


def test_markdown_headings_keep_their_text_without_closing_hashes():
    assert markdown_sections("# Title ##\n\n  ## Sub\t#\n#nospace\n####### seven\n# C#\n#  \n") == (
        (0, "Title"), (12, "Sub"), (46, "C"))


def test_dot_leader_line_is_joined_in_linear_time():
    """27.4: a line of 1,500 dots + ``x`` in a PDF took 8 s, 3,000 dots 77 s (``TOC_LINE_RE`` in ``joiner``)."""
    lines = ["." * 1000 + "x", "next line"]
    assert cpu_seconds(join_wrapped, lines, 60) < 0.3
    assert join_wrapped(["." * 3000 + "x", "next"], 60) == "." * 3000 + "x next"


def test_toc_lines_are_the_lines_the_old_regex_found():
    old = re.compile(r"(\.\s*){3,}\S*\d+$")
    generator = random.Random(27)
    for _ in range(20_000):
        line = "".join(generator.choice(". 1a\t\u3000٣") for _ in range(generator.randint(0, 10)))
        assert is_toc_line(line) == bool(old.search(line)), repr(line)
    assert is_toc_line("Introduction ....... 12") and is_toc_line("5.2 compat . . . . . . 27")
    assert not is_toc_line("The end... of 1999 was near.") and not is_toc_line("." * 5000 + "x")


# -- 27.5: PDF text bomb -----------------------------------------------------------------------
def test_pdf_text_bomb_is_refused_at_its_first_page():
    """27.5: pages sharing one Flate stream of text (12 KB of file, 50 M characters) parsed for 34 s."""
    bomb = text_bomb_pdf(20, 300_000)
    assert len(bomb) < 10_000
    started = time.monotonic()
    with pytest.raises(DocumentError, match=r"bomb\.pdf: page 1 holds over 200,000 characters of text "
                                            r"\(setting max_page_chars\)"):
        read_bytes(bomb, "bomb.pdf", "bomb")
    assert time.monotonic() - started < 5


def test_pdf_text_is_capped_per_file():
    with pytest.raises(DocumentError, match=r"over 100,000 characters of text \(setting max_text_chars\)"):
        read_bytes(text_bomb_pdf(5, 40_000), "bomb.pdf", "bomb", limits=LoadLimits(max_text_chars=100_000))
    with pytest.raises(DocumentError, match=r"note\.txt: over 1,000 characters"):
        read_bytes(b"x" * 1001, "note.txt", "note", limits=LoadLimits(max_text_chars=1000))


# -- 27.8: the pdfminer fallback ------------------------------------------------------------------
def test_pdfminer_fallback_reads_the_file_once(monkeypatch):
    """27.8: every page holding ``(cid:12)`` was re-read by pdfminer from the file's start (300 pages:
    11 s, 600: 44 s). The fallback must walk the page tree once, not once per garbled page."""
    from pdfminer.pdfpage import PDFPage

    visited = []
    create_pages = PDFPage.create_pages.__func__

    def counted(cls, document):
        for page in create_pages(cls, document):
            visited.append(page)
            yield page

    monkeypatch.setattr(PDFPage, "create_pages", classmethod(counted))
    pages = 40
    document = read_bytes(make_pdf([f"(cid:12) page {n} of text" for n in range(pages)]), "cid.pdf", "cid").document
    assert len(visited) <= pages, f"pdfminer visited {len(visited)} pages for {pages} garbled ones"
    assert "(cid:" not in document.text and "page 39 of text" in document.text


# -- 27.9 and 27.10: HTML ---------------------------------------------------------------------------
def test_unclosed_html_comments_are_read_in_linear_time():
    """27.9: Python's html.parser took 3.5 s on 20,000 ``<!--`` (78 KB) and over 120 s on 800 KB."""
    data = b"<p>Jade prices rose.</p>" + b"<!--" * 20_000
    assert cpu_seconds(read_bytes, data, "c.html", "c") < 0.5
    assert read_bytes(data, "c.html", "c").document.text == "Jade prices rose."


@pytest.mark.parametrize("data", [b"<p>hi</p><![<![", b"<p>hi &#" + b"1" * 4400 + b";</p>"])
def test_malformed_html_is_read_not_raised(data):
    """27.10: these raised AssertionError and ValueError (500 on upload, an aborted CLI ingest)."""
    assert read_bytes(data, "bad.html", "bad").document.text.startswith("hi")


# -- the general fix: every file is read in a child process with limits ----------------------------
def test_isolated_reading_returns_the_document_and_relays_progress():
    data = make_pdf(["Preface", "Chapter one", "Chapter two"])
    seen = []
    loaded = read_isolated(data, "book.pdf", "book", progress=lambda done, total: seen.append((done, total)))
    assert loaded.document.text == read_bytes(data, "book.pdf", "book").document.text
    assert loaded.original == data and seen == [(1, 3), (2, 3), (3, 3)]
    assert read_isolated(b"# Note\n\ntext", "n.md", "n").original is None


def test_a_slow_file_fails_alone_after_the_wall_clock_limit():
    started = time.monotonic()
    with pytest.raises(DocumentError, match=r"^bomb\.pdf: took longer than 0\.5 s to read \(setting parse_seconds\)$"):
        read_isolated(text_bomb_pdf(200, 300_000), "bomb.pdf", "b",
                      limits=LoadLimits(max_page_chars=10**9, max_text_chars=10**10, parse_seconds=0.5))
    assert time.monotonic() - started < 3
    assert not multiprocessing.active_children()


def test_a_file_over_the_memory_limit_fails_alone():
    with pytest.raises(DocumentError, match=r"bomb\.pdf: .*(64 MiB|memory)"):
        read_isolated(text_bomb_pdf(200, 300_000), "bomb.pdf", "b",
                      limits=LoadLimits(max_page_chars=10**9, max_text_chars=10**10, parse_memory_mb=64))


def test_cancelling_stops_the_reader():
    started = time.monotonic()

    def should_stop() -> None:
        if time.monotonic() - started > 0.3:
            raise InterruptedError("cancelled")

    with pytest.raises(InterruptedError):
        read_isolated(text_bomb_pdf(200, 300_000), "bomb.pdf", "b", limits=UNCAPPED, should_stop=should_stop)
    assert time.monotonic() - started < 2 and not multiprocessing.active_children()


def test_a_reader_error_is_one_line_for_this_file():
    with pytest.raises(DocumentError, match=r"^x\.pdf: truncated or corrupt PDF"):
        read_isolated(b"%PDF-1.4\nnothing", "x.pdf", "x")


def _cpu_limits_in_a_child(queue) -> None:
    import resource

    from search.loading.isolated import _allow_more_cpu, _limit_resources

    _limit_resources(LoadLimits(parse_seconds=5, ocr_page_seconds=7, max_pages=3))
    first = resource.getrlimit(resource.RLIMIT_CPU)
    for _ in range(3):
        _allow_more_cpu(7)
    after_max_pages = resource.getrlimit(resource.RLIMIT_CPU)
    _allow_more_cpu(7)  # one page more than max_pages: the ceiling holds
    queue.put((first, after_max_pages, resource.getrlimit(resource.RLIMIT_CPU)))


def test_a_readers_cpu_limit_grows_by_ocr_page_seconds_per_page_up_to_its_ceiling():
    import multiprocessing

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_cpu_limits_in_a_child, args=(queue,))
    child.start()
    first, after_max_pages, beyond = queue.get(timeout=30)
    child.join(10)
    assert first == (6, 5 + 3 * 7 + 2)  # parse_seconds + 1 at first; the hard ceiling: every page's allowance
    assert after_max_pages == (6 + 3 * 7, 28) and beyond == (28, 28)


def test_children_do_not_import_the_command_line_again(tmp_path):
    """Python < 3.13.8 never preloads ``__main__`` in the fork server, so each child re-ran the
    ``bisearch`` script and imported ``search.cli`` (0.1 s a file); the fork server preloads it now.
    Counted by ``-X importtime``: the script once, the fork server once, the three children never."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    for number in range(3):
        (tmp_path / f"{number}.txt").write_text(f"document {number}\n", encoding="utf-8")
    script = tmp_path / "console_script.py"  # what pip writes for the ``bisearch`` entry point
    script.write_text(
        "import sys\nfrom pathlib import Path\nfrom search.cli import main\n"
        "if __name__ == '__main__':\n"
        "    from search.loading.isolated import load_isolated\n"
        "    for path in sorted(Path(sys.argv[1]).glob('*.txt')):\n"
        "        print(load_isolated(path, path.stem).document.text.strip())\n", encoding="utf-8")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(root), "PYTHONPROFILEIMPORTTIME": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["document", "0", "document", "1", "document", "2"]
    imports = [line for line in done.stderr.splitlines() if line.rstrip().endswith("| search.cli")]
    assert len(imports) == 2, imports
