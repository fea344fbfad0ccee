"""Ingest on a Ray cluster (``bisearch ingest PATH… --ray [ADDRESS]``), with Ray Data.

The same pipeline as :class:`search.ingest.pipeline.Ingester`, spread out:

- the driver (this process) lists the files, refuses the ones whose id another file holds
  (:func:`search.ingest.pipeline.file_refusal`) and looks up each document's stored SHA-256;
- CPU tasks read each file and, unless its text is unchanged, cut it into passages with
  keyword tokens (:func:`search.ingest.pipeline.chunk_document`; the tokenizer alone, no model);
- a fixed pool of actors embeds them (:func:`search.ingest.pipeline.embed_chunked`), each actor holding one
  :class:`search.model.embedder.Embedder` loaded from the local model folder as everywhere else, with
  ``gpus_per_actor`` GPUs each (0: on CPU);
- the driver writes the prepared documents through its backend in batches (the backend never
  leaves the driver). What was written stays: a second run skips unchanged documents.

Without an address a private Ray is started on 127.0.0.1 for the run and stopped after it.
Files are read by the workers: on a cluster they must be at the same path on every node.
``ray`` is the optional ``ray`` extra; this module is imported only by ``--ray``.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import socket
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

from search.backends import Backend, open_backend
from search.errors import InvalidInput, Unavailable
from search.ingest.pipeline import (INGEST_BATCH_FILES, IngestOutcome, IngestSummary, _name, chunk_document, embed_chunked,
                           file_refusal, load_one, outcome_status)
from search.loading import LoadLimits, discover_files
from search.settings import Settings

LOAD_CPUS = 0.5  # Ray CPUs a file-reading task asks for (reading and chunking are light next to embedding)
EMBED_BATCH_DOCS = 8  # documents an actor embeds in one call
MAX_READ_TASKS = 2000  # files are read in at most this many Ray tasks
ACTOR_START_TIMEOUT_S = 300  # embedding actors not started by then (resources never free up): fail
CONNECT_TIMEOUT_S = 5.0  # a cluster address that does not answer a TCP connection by then: fail
#: Set for a Ray this process starts: no usage-stats call home, listen on 127.0.0.1 only.
LOCAL_RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


class RayIngestError(Unavailable):
    """The Ray run cannot start (no cluster, no ray extra, too few resources) or failed (one line,
    for the CLI); options that cannot be right on any cluster are :class:`InvalidInput`."""


@dataclass(frozen=True)
class RayOptions:
    """How the run uses the cluster. ``None`` picks the default, sized from the cluster:
    on GPUs, one actor per ``gpus_per_actor`` GPUs with 1 CPU each; on CPUs, one actor per node
    taking the node's CPUs but :data:`LOAD_CPUS` (left for reading files)."""

    address: str | None = None  # None or "local": a private Ray on 127.0.0.1; "auto", "host:port", "ray://host:port"
    gpus_per_actor: float = 0.0
    actors: int | None = None
    cpus_per_actor: float | None = None


@dataclass(frozen=True)
class _Pool:
    actors: int
    cpus: float
    gpus: float
    threads: int | None  # torch threads per actor (CPU actors: its CPUs, rounded up)


def ingest_on_ray(settings: Settings, paths: list[Path], options: RayOptions = RayOptions(),
                  progress: bool = False, verbose: bool = False) -> IngestSummary:
    """Ingest files and folders on Ray into the index ``settings`` name; the summary as :meth:`Ingester.ingest_paths`."""
    if options.gpus_per_actor < 0 or (options.actors or 1) < 1 or (options.cpus_per_actor or 1) <= 0:
        raise InvalidInput("--ray-gpus-per-actor must be >= 0, --ray-actors >= 1 and --ray-cpus-per-actor > 0")
    _check_address(options.address)
    backend = open_backend(settings)
    try:
        summary, work = _plan(backend, paths)
        if not work:  # nothing to read: no cluster needed
            return summary
        recorded = backend.model()
        dimension = settings.dim or (recorded.dimension if recorded else None)
        if recorded is not None:  # an existing index keeps the way its passages were embedded
            settings = settings.with_overrides(passage_titles=recorded.passage_titles)
        with _ray_session(options.address, verbose) as ray:
            pool = _size_pool(ray, options)
            _run(ray, backend, settings, dimension, pool, work, summary, progress)
        return summary
    finally:
        backend.close()


def _plan(backend: Backend, paths: list[Path]) -> tuple[IngestSummary, list[dict[str, str]]]:
    """The files to read (absolute path, id, name, stored hash) and those refused up front."""
    summary = IngestSummary()
    missing = [path for path in paths if not os.path.exists(path)]
    summary.failed.extend(f"{path}: no such file or folder" for path in missing)
    work, first_file = [], {}
    for path, doc_id in discover_files([path for path in paths if path not in missing]):
        refused = file_refusal(backend, path, doc_id, None, first_file)
        if refused:
            summary.failed.append(refused)
        else:
            work.append({"path": os.path.abspath(path), "doc_id": doc_id, "name": _name(path, None),
                         "known": backend.document_hash(doc_id) or ""})
    return summary, work


def _check_address(address: str | None) -> None:
    """A ``host:port`` or ``ray://host:port`` address must answer a TCP connection within
    :data:`CONNECT_TIMEOUT_S` (``ray.init`` itself retries an unreachable one for minutes)."""
    if address in (None, "", "local", "auto"):
        return
    parts = urlsplit(address if "://" in address else f"gcs://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None or parts.scheme not in ("gcs", "ray"):
        raise InvalidInput(f"--ray {address}: not a Ray address (host:port, ray://host:port, auto, or none "
                             f"for a local Ray)")
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        reason = "no answer" if isinstance(error, TimeoutError) else (error.strerror or type(error).__name__)
        raise RayIngestError(f"cannot reach the Ray cluster at {address}: {reason}") from None


@contextmanager
def _ray_session(address: str | None, verbose: bool) -> Iterator[object]:
    """Ray, connected for the block: a private local one on 127.0.0.1 when ``address`` is None
    (a Ray this process already runs is used as it is and left running)."""
    local = address in (None, "", "local")
    env = {"RAY_USAGE_STATS_ENABLED": "0", **(LOCAL_RAY_ENV if local else {})}
    level = logging.INFO if verbose else logging.ERROR
    with _environment(env):  # read when ray is imported and by the processes ray.init starts
        try:
            import ray
            import ray.data  # noqa: F401  (the data extra)
        except ImportError:
            raise RayIngestError("--ray needs the ray extra: pip install 'bisearch[ray]'") from None
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(level)
        if ray.is_initialized():
            started = False
        elif local:
            with _loopback_only():
                ray.init(address="local", num_cpus=len(os.sched_getaffinity(0)), include_dashboard=False,
                         _node_ip_address="127.0.0.1", logging_level=level, log_to_driver=verbose)
            started = True
        else:
            try:
                ray.init(address=address, logging_level=level, log_to_driver=verbose)
            except (ConnectionError, ValueError, RuntimeError) as error:
                raise RayIngestError(f"cannot connect to the Ray cluster at {address}: {_first_line(error)}") from None
            started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


@contextmanager
def _loopback_only() -> Iterator[None]:
    """Ray's servers listen on 127.0.0.1 only when ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` was set
    before ``ray`` was first imported (it is read into a constant then): set that constant too."""
    from ray._private import ray_constants

    before = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _size_pool(ray, options: RayOptions) -> _Pool:
    """The actor pool the options ask for, checked against the cluster's CPUs and GPUs (a request the
    cluster cannot hold would wait forever)."""
    total = ray.cluster_resources()
    node_cpus = [node["Resources"].get("CPU", 0) for node in ray.nodes() if node.get("Alive")] or [0]
    cpus_total, gpus_total = total.get("CPU", 0), total.get("GPU", 0)
    gpus = options.gpus_per_actor
    if gpus > 0:
        if gpus_total < gpus:
            raise RayIngestError(f"--ray-gpus-per-actor {gpus:g}: the Ray cluster has {gpus_total:g} GPU(s), so the "
                                 f"embedding actors would wait forever; use --ray-gpus-per-actor 0 to embed on CPU")
        actors = options.actors or max(1, int(gpus_total // gpus))
        cpus = options.cpus_per_actor or 1.0
        threads = None
    else:
        actors = options.actors or len([cpus for cpus in node_cpus if cpus > LOAD_CPUS]) or 1
        cpus = options.cpus_per_actor or max(1.0, min(node_cpus) - LOAD_CPUS)
        threads = math.ceil(cpus)
    if gpus > 0 and actors * gpus > gpus_total:
        raise RayIngestError(f"{actors} embedding actor(s) x {gpus:g} GPU(s) is more than the cluster's "
                             f"{gpus_total:g} GPU(s); lower --ray-actors")
    if cpus > max(node_cpus) or actors * cpus + LOAD_CPUS > cpus_total:
        raise RayIngestError(f"{actors} embedding actor(s) x {cpus:g} CPU(s) leave no CPU for reading files on this "
                             f"cluster ({cpus_total:g} CPUs, at most {max(node_cpus):g} per node); lower "
                             f"--ray-actors or --ray-cpus-per-actor")
    return _Pool(actors, cpus, gpus, threads)


def _run(ray, backend: Backend, settings: Settings, dimension: int | None, pool: _Pool,
         work: list[dict[str, str]], summary: IngestSummary, progress: bool) -> None:
    """Read and chunk → embed → write, streamed: the driver writes as embedded documents arrive."""
    from tqdm import tqdm

    with _data_context(enable_progress_bars=False, print_on_execution_start=False,
                       wait_for_min_actors_s=ACTOR_START_TIMEOUT_S, raise_original_map_exception=True):
        data = _pipeline(ray, settings, dimension, pool, work)
    known = {item["doc_id"]: item["known"] or None for item in work}
    pending: list = []
    model_checked = False
    bar = tqdm(total=len(work), unit="file", disable=not progress)

    def flush() -> None:
        if pending:
            backend.write(pending)
            summary.outcomes.extend(IngestOutcome(item.document.id, outcome_status(known[item.document.id],
                                                                                   item.document), len(item.passages))
                                    for item in pending)
            pending.clear()

    try:
        for row in data.iter_rows():
            if not model_checked:  # the actors' model against the index's, before anything is written
                backend.record_model(pickle.loads(row["model"]))
                model_checked = True
            kind, doc_id = row["kind"], row["doc_id"]
            if kind == "failed":
                summary.failed.append(row["message"])
            elif kind == "unchanged":
                summary.outcomes.append(IngestOutcome(doc_id, "unchanged", 0))
            else:
                pending.append(pickle.loads(row["payload"]))
                if len(pending) >= INGEST_BATCH_FILES:
                    flush()
            bar.update(1)
        flush()
    except ray.exceptions.GetTimeoutError:
        raise RayIngestError(f"the embedding actors ({pool.actors} x {pool.cpus:g} CPU, {pool.gpus:g} GPU) did not "
                             f"start within {ACTOR_START_TIMEOUT_S} s: the cluster lacks the resources") from None
    except ray.exceptions.RayError as error:
        raise RayIngestError(f"the Ray run failed: {_first_line(error)}") from None
    finally:
        bar.close()


def _pipeline(ray, settings: Settings, dimension: int | None, pool: _Pool, work: list[dict[str, str]]):
    """Files read and chunked by CPU tasks, then embedded by the actor pool (lazy: runs as the driver iterates)."""
    data = ray.data.from_items(work, override_num_blocks=min(len(work), MAX_READ_TASKS))
    data = data.map_batches(_read_and_chunk, fn_kwargs={"settings": settings}, batch_size=None,
                            num_cpus=LOAD_CPUS, batch_format="numpy")
    return _map_without_restarts(data, _Embed, fn_constructor_kwargs={"settings": settings, "dimension": dimension,
                                                                      "threads": pool.threads},
                                 batch_size=EMBED_BATCH_DOCS, compute=ray.data.ActorPoolStrategy(size=pool.actors),
                                 num_cpus=pool.cpus, num_gpus=pool.gpus or None, batch_format="numpy")


@contextmanager
def _data_context(**values) -> Iterator[None]:
    """Ray Data settings for the datasets built in the block (each keeps a copy), then restored."""
    from ray.data import DataContext

    context = DataContext.get_current()
    before = {name: getattr(context, name) for name in values}
    for name, value in values.items():
        setattr(context, name, value)
    try:
        yield
    finally:
        for name, value in before.items():
            setattr(context, name, value)


def _map_without_restarts(data, fn, **options):
    """``data.map_batches(fn, ...)`` whose actors are not restarted when they die (Ray Data's default:
    forever, which never ends for an actor that runs out of memory at every start): the run fails
    instead, and a second run resumes it. Ray marks ``max_restarts`` for removal: without it then."""
    from ray.util.annotations import RayDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RayDeprecationWarning)
        try:
            return data.map_batches(fn, max_restarts=0, **options)
        except TypeError:
            return data.map_batches(fn, **options)


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


# -- on the workers ----------------------------------------------------------------------------

@lru_cache(maxsize=2)
def _chunker(model: str, model_dir: Path | None, chunk_tokens: int):
    """One chunker per worker process (the tokenizer takes ~2 s to load)."""
    from search.chunking import Chunker
    from search.model.embedder import load_tokenizer

    return Chunker(load_tokenizer(model, model_dir), chunk_tokens)


def _read_and_chunk(batch: dict, settings: Settings) -> dict:
    """Read each file; unless its text is the stored one, cut it into passages (CPU task)."""
    import numpy as np

    chunker = _chunker(settings.model, settings.model_dir, settings.chunk_tokens)
    limits = LoadLimits.from_settings(settings)
    rows = []  # (kind, message, payload)
    for path, doc_id, name, known in zip(batch["path"], batch["doc_id"], batch["name"], batch["known"]):
        loaded = load_one(Path(str(path)), str(doc_id), str(name), limits)
        if isinstance(loaded, str):
            rows.append(("failed", loaded, b""))
        elif outcome_status(str(known) or None, loaded.document) == "unchanged":
            rows.append(("unchanged", "", b""))
        else:
            rows.append(("chunked", "", pickle.dumps(chunk_document(chunker, loaded.document, loaded.original))))
    columns = {"doc_id": list(batch["doc_id"]), **dict(zip(("kind", "message", "payload"), map(list, zip(*rows))))}
    return {name: np.asarray(values, dtype=object) for name, values in columns.items()}


class _Embed:
    """An embedding actor: one model, loaded once (GPU when Ray gave it one, else ``threads`` CPU threads)."""

    def __init__(self, settings: Settings, dimension: int | None, threads: int | None):
        if threads:
            import torch

            torch.set_num_threads(threads)
        from search.model.embedder import Embedder

        self.embedder = Embedder.from_settings(settings, dimension)
        self.passage_titles = settings.passage_titles
        self.model = pickle.dumps(replace(self.embedder.info, passage_titles=self.passage_titles))

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        rows = [row for row, kind in enumerate(batch["kind"]) if kind == "chunked"]
        prepared = embed_chunked(self.embedder, [pickle.loads(batch["payload"][row]) for row in rows],
                                 passage_titles=self.passage_titles)
        payloads = list(batch["payload"])
        for row, item in zip(rows, prepared):
            payloads[row] = pickle.dumps(item)
        return {**batch, "payload": np.asarray(payloads, dtype=object),
                "model": np.asarray([self.model] * len(payloads), dtype=object)}
