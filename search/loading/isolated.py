"""Files from outside are read in a child process, under limits: wall clock, CPU, memory, text size.

A hostile file (a regex that backtracks, a PDF text bomb, a parser that loops or crashes)
then costs only its own child process:

* the caller waits on a pipe, holding neither the GIL nor a lock, so the server's event loop,
  its other threads and the model process never wait on a parser;
* past ``parse_seconds`` (wall clock, and CPU time as a backstop should the caller die), plus
  ``ocr_page_seconds`` for each page the child hands to OCR, the child is killed; it may add at most ``parse_memory_mb`` of address space; the readers cap
  the text at ``max_text_chars`` per file and ``max_page_chars`` per PDF page;
* ``should_stop`` (a job's cancellation check) is polled while waiting and kills the child;
* every breach is one :class:`DocumentError` for this file with one reason ("took longer
  than 30 s to read", "over 20,000,000 characters of text"), never a hang or a traceback.

Children are forked from a small server process that has imported the readers once
(multiprocessing's ``forkserver``), so a child starts in milliseconds and never inherits the
caller's threads or locks.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import resource
import signal
import threading
import time
from pathlib import Path
from typing import Callable

from search.loading import file_bytes, read_bytes
from search.loading.base import DEFAULT_LIMITS, MIB, DocumentError, LoadedFile, LoadLimits, Progress
from search.loading.ocr import listen_for_pages

POLL_SECONDS = 0.05  # how often a waiting caller checks ``should_stop`` and the deadline
#: What the fork server imports once, so each child starts at once: the main script (as multiprocessing's
#: spawn would in each child), the readers and their libraries, and the command line's module. Before
#: Python 3.13.8 the fork server never preloads ``__main__`` (CPython gh-126631, gh-137996), so each child
#: runs the main script again, and the ``bisearch`` script imports ``search.cli``: 0.1 s a file unless it is
#: preloaded here (114 ms against 11 ms a text file, measured on 2 cores).
PRELOADED = ["__main__", "search.loading.isolated", "search.loading.pdf", "pypdfium2", "pdfminer.high_level",
             "trafilatura", "docx", "lxml.html", "search.cli"]
_context_lock = threading.Lock()
_context: multiprocessing.context.BaseContext | None = None


def read_isolated(data: bytes, name: str, doc_id: str, *, title: str | None = None, source: str | None = None,
                  limits: LoadLimits = DEFAULT_LIMITS, progress: Progress | None = None,
                  should_stop: Callable[[], None] | None = None) -> LoadedFile:
    """:func:`search.loading.read_bytes` in a child process under ``limits`` (see the module docstring).

    ``progress`` receives the child's page progress; ``should_stop`` is called while waiting and
    may raise (a cancelled job): the child is killed and the exception propagates.
    """
    context = _forkserver()
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_read_in_child, args=(sender, data, name, doc_id, title, source, limits),
                            name=f"bisearch-read {name[:60]}", daemon=True)
    child.start()
    sender.close()
    try:
        document, kept, ocr_seconds = _wait_for(child, receiver, name, limits, progress, should_stop)
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join()
        child.close()
    return LoadedFile(document, data if kept else None, ocr_seconds)


def load_isolated(path: Path, doc_id: str, *, name: str | None = None, limits: LoadLimits = DEFAULT_LIMITS,
                  progress: Progress | None = None, should_stop: Callable[[], None] | None = None) -> LoadedFile:
    """:func:`search.loading.load_file` with the parsing in a child process (the file is read here:
    regular files only, up to ``max_file_bytes``)."""
    name = name or str(path)
    return read_isolated(file_bytes(Path(path), name, limits), name, doc_id, limits=limits, progress=progress,
                         should_stop=should_stop)


# -- the caller's side --------------------------------------------------------------------------------
def _forkserver() -> multiprocessing.context.BaseContext:
    """The forkserver context, its server preloading the readers (started on first use)."""
    global _context
    with _context_lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOADED)
            _context = context
        return _context


def _wait_for(child, receiver, name: str, limits: LoadLimits, progress: Progress | None,
              should_stop: Callable[[], None] | None):
    """The child's ``(document, original kept, OCR seconds per page)``, relaying progress, until the
    deadline: ``parse_seconds``, plus ``ocr_page_seconds`` for each page the child hands to OCR."""
    deadline, ocr_pages = time.monotonic() + limits.parse_seconds, 0
    while True:
        if should_stop is not None:
            should_stop()
        left = deadline - time.monotonic()
        if left <= 0:
            raise DocumentError(f"{name}: took longer than {_allowed(limits, ocr_pages)}")
        if not receiver.poll(min(POLL_SECONDS, left)):
            continue
        try:
            kind, *values = receiver.recv()
        except (EOFError, OSError):
            child.join(1)
            raise DocumentError(f"{name}: {_death(child.exitcode, limits)}") from None
        if kind == "ocr_page":
            deadline += limits.ocr_page_seconds
            ocr_pages += 1
        elif kind == "progress":
            if progress is not None:
                progress(*values)
        elif kind == "error":
            raise DocumentError(values[0])
        else:
            return values


def _allowed(limits: LoadLimits, ocr_pages: int) -> str:
    """The time a file was allowed to read, in words, and the settings that set it."""
    if not ocr_pages:
        return f"{limits.parse_seconds:g} s to read (setting parse_seconds)"
    return (f"{limits.parse_seconds + ocr_pages * limits.ocr_page_seconds:g} s to read: {limits.parse_seconds:g} s and "
            f"{limits.ocr_page_seconds:g} s for each of {ocr_pages} pages read by OCR (settings parse_seconds, "
            f"ocr_page_seconds)")


def _death(exitcode: int | None, limits: LoadLimits) -> str:
    """Why the child ended without an answer, in words."""
    if exitcode == -signal.SIGXCPU:
        return f"took more than {limits.parse_seconds:g} s of CPU time to read (setting parse_seconds)"
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        return (f"the reader was stopped by {name}: a malformed file, or more than {limits.parse_memory_mb:,} MiB "
                f"of memory needed (setting parse_memory_mb)")
    return f"the reader stopped without an answer (exit status {exitcode})"


# -- the child's side ---------------------------------------------------------------------------------
def _read_in_child(connection, data: bytes, name: str, doc_id: str, title: str | None, source: str | None,
                   limits: LoadLimits) -> None:
    """Read the file under the limits and send ``("done", document, kept)`` or ``("error", message)``."""
    _limit_resources(limits)

    def ocr_page() -> None:  # the caller's deadline and this child's CPU backstop both grow by a page's allowance
        connection.send(("ocr_page",))
        _allow_more_cpu(limits.ocr_page_seconds)

    listen_for_pages(ocr_page)
    try:
        loaded = read_bytes(data, name, doc_id, title=title, source=source, limits=limits,
                            progress=lambda done, total: connection.send(("progress", done, total)))
        del data
        connection.send(("done", loaded.document, loaded.original is not None, loaded.ocr_seconds))
    except DocumentError as error:
        connection.send(("error", str(error)))
    except MemoryError:
        connection.send(("error", f"{name}: needs more than {limits.parse_memory_mb:,} MiB of memory to read "
                                  f"(setting parse_memory_mb)"))
    except RecursionError:
        connection.send(("error", f"{name}: nested too deeply to read"))
    except Exception as error:  # noqa: BLE001 - a reader's bug on hostile input costs this file only
        reason = " ".join(str(error).split())[:200]
        connection.send(("error", f"{name}: cannot be read ({type(error).__name__}{': ' + reason if reason else ''})"))
    finally:
        connection.close()


def _limit_resources(limits: LoadLimits) -> None:
    """CPU seconds (SIGXCPU past them) and address space (MemoryError past it) for this child, no core files.

    The CPU limit starts at ``parse_seconds`` and grows as the wall clock does, by ``ocr_page_seconds``
    for each page handed to OCR (RapidOCR runs in this process), up to every page's allowance."""
    seconds = math.ceil(limits.parse_seconds) + 1
    most = math.ceil(limits.parse_seconds + limits.max_pages * limits.ocr_page_seconds) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, most))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    extra = limits.parse_memory_mb * MIB
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    wanted = _address_space() + extra
    resource.setrlimit(resource.RLIMIT_AS, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard))


def _allow_more_cpu(seconds: float) -> None:
    """Raise this child's CPU limit by ``seconds`` (within the ceiling :func:`_limit_resources` set)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (min(soft + math.ceil(seconds), hard), hard))


def _address_space() -> int:
    """This process's current address space in bytes (what it holds before reading)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
