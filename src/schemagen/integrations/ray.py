"""Ray Data: extraction over a Dataset, with cluster-wide limits and exactly-once resume.

    from schemagen.integrations.ray import extract_dataset

    out = extract_dataset(ds, Invoice, text_column="body", id_column="doc_id",
                          base_url=..., model=..., api_key=..., concurrency=8, rpm=3000,
                          results_dir="s3://bucket/invoices/")
    out.write_parquet(...)          # or read_results("s3://bucket/invoices/") once it ran

Pieces: ``map_batches`` runs :class:`_Worker` (a callable class; one Client per actor,
made on the actor) over Arrow batches; RPM/TPM/budget live in one named actor holding a
:class:`~schemagen.integrations._rows.LimitLedger`. Ray restarts dead actors and
retries their batches (its defaults for actor pools), and the results directory is
keyed per batch, so a redone batch replaces its part instead of adding one.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa

from schemagen.batch.results import BatchSummary
from schemagen.engine.budget import Budget
from schemagen.errors import BudgetExceeded, ConfigurationError, MissingDependencyError
from schemagen.exchange import Usage
from schemagen.integrations._arrow import Layout, OutputColumns
from schemagen.integrations._rows import (
    ExtractJob,
    LedgerStats,
    LimitLedger,
    NoLimits,
    ResultsStore,
    RowExtractor,
)

if TYPE_CHECKING:
    import ray.data

#: CPUs a remote-API actor reserves: it mostly waits on the network.
HTTP_ACTOR_CPUS = 0.25
#: Threads (and CPUs) a local llama.cpp actor takes at most, when num_cpus isn't given.
LOCAL_ACTOR_MAX_CPUS = 4


def require_ray() -> Any:
    """``import ray``, or a :class:`MissingDependencyError` naming the extra."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise MissingDependencyError("schemagen.integrations.ray", "ray", "ray[data]") from exc
    return ray


# ---------------------------------------------------------------- the shared ledger, as a named actor


class _RayLimits:
    """The worker side of the ledger actor: waits locally for the delay the actor books.

    The ledger restarts if its node dies (``max_restarts=-1``, state lost): a call that
    finds it restarting is retried; counts for progress are best effort.
    """

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    async def _ask(self, tokens: int) -> tuple[float, str | None, float]:
        import asyncio

        for attempt in range(60):
            try:
                # an actor call is untyped in ray: LimitLedger.admit's own return type
                return cast(tuple[float, str | None, float], await self.handle.admit.remote(tokens))
            except Exception:  # ActorUnavailableError / RayActorError while it restarts
                if attempt == 59:
                    raise
                await asyncio.sleep(0.5)
        raise AssertionError("unreachable")

    async def admit(self, tokens: int) -> None:
        import asyncio

        while True:
            delay, refusal, slack = await self._ask(tokens)
            if refusal is not None:
                raise BudgetExceeded(refusal)
            due = time.monotonic() + delay
            if delay > 0:
                await asyncio.sleep(delay)
            if time.monotonic() - due <= slack:
                return
            self.handle.settle.remote(tokens, None)  # woke too late: leave the slot empty, book again

    # Fire and forget: nothing waits on these, and the actor applies one caller's calls in order.
    def settle(self, tokens: int, usage: Usage | None) -> None:
        self.handle.settle.remote(tokens, usage)

    def throttle(self, retry_after: float | None) -> None:
        self.handle.throttle.remote(retry_after)

    def report(self, succeeded: int, failed: int, skipped: int, unfinished: int, usage: Usage) -> None:
        import ray

        # Once per batch, and waited for: when the driver sees a batch done, its counts are in.
        try:
            ray.get(self.handle.report.remote(succeeded, failed, skipped, unfinished, usage), timeout=30)
        except Exception as exc:  # progress only: never fail a finished batch over it
            import logging

            logging.getLogger("schemagen").warning("progress report lost: %s", type(exc).__name__)


def start_ledger(*, rpm: float | None, tpm: float | None, budget: Budget | int | float | None,
                 name: str | None = None) -> tuple[str, Any]:
    """Start the named ledger actor on this (the driver's) node; returns ``(name, handle)``."""
    ray = require_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if not ray.is_initialized():
        ray.init()
    name = name or f"schemagen-limits-{uuid.uuid4().hex[:12]}"
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    actor = ray.remote(LimitLedger).options(
        name=name, num_cpus=0, max_restarts=-1, scheduling_strategy=here)
    limits = Budget.coerce(budget)
    by_value = (limits.max_tokens, limits.max_cost) if limits is not None else None
    return name, actor.remote(rpm=rpm, tpm=tpm, budget_limits=by_value)


def ledger_stats(name: str) -> LedgerStats:
    """What the workers of the run with ledger ``name`` reported so far (a blocking call)."""
    ray = require_ray()
    return cast(LedgerStats, ray.get(ray.get_actor(name).snapshot.remote()))  # an untyped actor call


# ---------------------------------------------------------------- the key, kept out of task specs


class _StoredKey:
    """The key as an ObjectRef to Ray's object store, fetched on the actor when it builds its
    Client: actor and task specs (what the GCS keeps, the dashboard shows and a restart
    replays) hold only the ref, never the key's bytes."""

    __slots__ = ("_ref",)

    def __init__(self, ref: Any) -> None:
        self._ref = ref

    def get(self) -> str:
        import ray

        return str(ray.get(self._ref))

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


# ---------------------------------------------------------------- the map_batches worker


class _Worker:
    """The callable class ``map_batches`` runs: one :class:`RowExtractor` (one Client) per actor."""

    def __init__(self, job: ExtractJob, ledger: Any, done: list[Any]) -> None:
        import ray

        done_keys = ray.get(done[0]) if done else ()
        limits = _RayLimits(ledger) if ledger is not None else NoLimits()
        self.rows = RowExtractor(job, limits, done_keys)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.rows(batch)


# ---------------------------------------------------------------- the public entry point


def extract_dataset(
    ds: ray.data.Dataset,
    target: Any,
    *,
    text_column: str = "text",
    id_column: str | None = None,
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    client_factory: Callable[[], Any] | None = None,
    concurrency: int = 4,
    per_actor_concurrency: int = 16,
    rpm: float | None = None,
    tpm: float | None = None,
    budget: Budget | int | float | None = None,
    retries: int = 2,
    results_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    overwrite: bool = False,
    retry_errors: bool = False,
    layout: Layout = "flat",
    value_column: str = "value",
    batch_size: int = 64,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    max_throttle_retries: int = 8,
    ledger_name: str | None = None,
    **options: Any,
) -> ray.data.Dataset:
    """Extract ``target`` from every row's ``text_column``; returns the dataset with typed columns added.

    The result is lazy, like any Ray Dataset: it runs when written or iterated. Each row
    keeps its input columns and gains the target's fields (``layout="flat"``) or one
    struct column (``layout="struct"``, named ``value_column``), plus ``_sg_key``,
    ``_sg_ok``, ``_sg_error`` (type, message), ``_sg_attempts``, ``_sg_prompt_tokens``,
    ``_sg_completion_tokens`` and ``_sg_cost``. A failed row has ``_sg_ok=False``.

    ``client_factory`` (a callable returning a :class:`~schemagen.Client` or an OpenAI
    client) runs once per actor, on the actor. ``rpm``/``tpm``/``budget`` hold for the
    whole cluster. With ``results_dir``, each finished batch is appended there, and a
    rerun skips the rows already in it (failed rows too, unless ``retry_errors``); the
    returned dataset then holds only this run's rows, and :func:`read_results` reads all.
    ``ledger_name`` names the ledger actor, so :func:`ledger_stats` can follow progress.
    ``options`` go to the Client (``max_tokens=``, ``temperature=``, ``mode=``...).
    """
    ray = require_ray()
    _check_args(concurrency=concurrency, per_actor_concurrency=per_actor_concurrency, batch_size=batch_size,
                client_factory=client_factory, base_url=base_url, api_key=api_key)
    from schemagen.schema import build_tool

    build_tool(target)  # a target that can't become a tool fails here, not on every actor
    _ship_target_modules(ray, target)
    columns = OutputColumns.for_target(target, layout, value_column)
    _check_dataset(ds, text_column, id_column, columns)

    done: list[Any] = []
    if results_dir is not None:
        store = ResultsStore(results_dir)
        keys, _prior, _dropped = store.scan(resume=resume, overwrite=overwrite, retry_errors=retry_errors)
        if keys:
            done = [ray.put(frozenset(keys))]
    local = (model or "").startswith("local:")
    # The ledger actor lives as long as the plan that holds its handle. Without limits
    # and without a name to follow progress by, there is nothing to share: no actor.
    ledger = None
    if rpm or tpm or budget is not None or ledger_name:
        _name, ledger = start_ledger(rpm=rpm, tpm=tpm, budget=budget, name=ledger_name)
    job = ExtractJob(
        target=target, text_column=text_column, id_column=id_column, model=model, base_url=base_url,
        api_key=_StoredKey(ray.put(api_key)) if api_key is not None else None, client_factory=client_factory,
        client_options={"retries": retries, **options}, per_actor_concurrency=per_actor_concurrency,
        layout=layout, value_column=value_column,
        results_dir=os.fspath(results_dir) if results_dir is not None else None,
        needs_tokens=bool(tpm or budget), rate_limited=bool(rpm or tpm or budget),
        max_throttle_retries=max_throttle_retries,
    )
    cpus, gpus = _resources(ray, local=local, concurrency=concurrency, num_cpus=num_cpus, num_gpus=num_gpus)
    if local and cpus >= 1:  # llama.cpp would take half the node's cores, whatever Ray granted
        job = dataclasses.replace(job, local_threads=int(cpus))
    compute = ray.data.ActorPoolStrategy(
        size=concurrency, max_tasks_in_flight_per_actor=2, max_concurrent_calls_per_actor=2,
        enable_true_multi_threading=True)  # two batches per actor overlap; one semaphore bounds both
    return ds.map_batches(
        _Worker, batch_format="pyarrow", batch_size=batch_size, compute=compute,
        fn_constructor_kwargs={"job": job, "ledger": ledger, "done": done},
        num_cpus=cpus, num_gpus=gpus,
    )


def read_results(results_dir: str | os.PathLike[str]) -> ray.data.Dataset:
    """Everything a results directory holds (every run so far), one row per key."""
    require_ray()
    import ray.data  # typed, unlike require_ray()'s module

    store = ResultsStore(results_dir)
    parts = store.parts()  # named parts only: a half-written temporary file is never read
    if not parts:
        raise ConfigurationError(f"{results_dir} holds no results yet")
    return ray.data.read_parquet(parts, filesystem=store.fs)


def _ship_target_modules(ray: Any, target: Any) -> None:
    """A target loaded from a file (``--schema file.py:Model``) lives in a module the workers
    can't import: send that module's code with the job instead of a reference to it."""
    import importlib.machinery
    import sys
    import typing

    seen: set[str] = set()
    stack = [target]
    while stack:
        item = stack.pop()
        stack.extend(typing.get_args(item))
        name = getattr(item, "__module__", None)
        if not isinstance(item, type) or not name or name in seen or name in ("builtins", "__main__"):
            continue
        seen.add(name)
        module = sys.modules.get(name)
        top = name.partition(".")[0]  # on sys.path (as the workers see it), or loaded from a file?
        if module is not None and importlib.machinery.PathFinder.find_spec(top) is None:
            ray.cloudpickle.register_pickle_by_value(module)


def _check_args(*, concurrency: int, per_actor_concurrency: int, batch_size: int,
                client_factory: Any, base_url: Any, api_key: Any) -> None:
    for name, value in (("concurrency", concurrency), ("per_actor_concurrency", per_actor_concurrency),
                        ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"{name} must be a positive int, got {value!r}")
    if client_factory is not None and (base_url is not None or api_key is not None):
        raise ConfigurationError("Pass either client_factory= or base_url=/api_key=, not both: the factory "
                                 "builds the whole client on each actor")
    if client_factory is not None and not callable(client_factory):
        raise ConfigurationError("client_factory must be a callable that returns a schemagen.Client "
                                 "or an OpenAI client")


def _check_dataset(ds: Any, text_column: str, id_column: str | None, columns: OutputColumns) -> None:
    """Missing columns, a non-string text column, or no rows: a clear error before any request."""
    schema = ds.schema()
    if schema is None or ds.count() == 0:  # metadata for in-memory and Parquet data: no execution
        raise ConfigurationError("the dataset has no rows; nothing to extract")
    names = list(schema.names)
    for role, column in (("text_column", text_column), ("id_column", id_column)):
        if column is not None and column not in names:
            raise ConfigurationError(f"{role} {column!r} is not a column of the dataset "
                                     f"(columns: {', '.join(names)}); pass {role}=")
    kind = dict(zip(names, schema.types, strict=True)).get(text_column)
    if isinstance(kind, pa.DataType) and not (pa.types.is_string(kind) or pa.types.is_large_string(kind)
                                              or pa.types.is_null(kind)):
        raise ConfigurationError(f"text_column {text_column!r} holds {kind}, not strings; "
                                 "cast it (ds.map_batches) or pick the column with the text")
    columns.check_clash(names)


def _resources(ray: Any, *, local: bool, concurrency: int, num_cpus: float | None,
               num_gpus: float | None) -> tuple[float, float]:
    """An HTTP actor waits on the network: a quarter CPU. A local model computes: its own
    CPUs (an even share of the cluster, up to 4), and a whole GPU where Ray sees one."""
    if not ray.is_initialized():
        ray.init()
    total = ray.cluster_resources()
    if num_cpus is None:
        share = int(total.get("CPU", 1) // max(1, concurrency))
        num_cpus = float(max(1, min(LOCAL_ACTOR_MAX_CPUS, share))) if local else HTTP_ACTOR_CPUS
    if num_gpus is None:
        num_gpus = 1.0 if local and total.get("GPU", 0) >= 1 else 0.0
    return num_cpus, num_gpus


# ---------------------------------------------------------------- the CLI's `batch --engine ray`


def read_source(source: str, ray: Any) -> Any:
    """A Ray Dataset from a JSONL / JSON / CSV / Parquet file or a folder of Parquet files."""
    path = source.rstrip("/")
    lower = path.lower()
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        return ray.data.read_json(source, lines=not lower.endswith(".json"))
    if lower.endswith(".csv"):
        return ray.data.read_csv(source)
    if lower.endswith(".parquet") or "://" in source or os.path.isdir(source):
        return ray.data.read_parquet(source)
    if not os.path.exists(source):
        raise ConfigurationError(f"input not found: {source}")
    raise ConfigurationError(f"{source}: unknown input format for --engine ray; use .jsonl, .csv or .parquet")


def run_batch(
    source: str, target: Any, out: str, *, address: str | None = None, text_field: str = "text",
    id_field: str = "id", concurrency: int = 4, per_actor_concurrency: int = 16, progress: bool = False,
    resume: bool = False, overwrite: bool = False, retry_errors: bool = False, **kwargs: Any,
) -> BatchSummary:
    """What ``schemagen batch --engine ray`` runs: read, extract into ``out`` (a results
    directory), with a progress bar fed by the cluster's ledger; returns the summary."""
    ray = require_ray()
    # Before anything starts, so a refused rerun touches nothing.
    store = ResultsStore(out)
    if store.parts() and not (resume or overwrite):
        raise ConfigurationError(f"{out} already holds results. Pass --resume to continue it, "
                                 "or --overwrite to start again.")
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, include_dashboard=False, logging_level="ERROR")
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ds = read_source(source, ray)
    id_column = id_field if id_field in (ds.schema().names if ds.schema() else []) else None
    summary = BatchSummary(total=ds.count() if progress else None)
    started = time.perf_counter()
    name = f"schemagen-limits-{uuid.uuid4().hex[:12]}"
    prior_errors = 0 if (retry_errors or overwrite) else _count_errors(store)
    result = extract_dataset(
        ds, target, text_column=text_field, id_column=id_column, concurrency=concurrency,
        per_actor_concurrency=per_actor_concurrency, results_dir=out, resume=resume, overwrite=overwrite,
        retry_errors=retry_errors, ledger_name=name, **kwargs,
    )
    stop = threading.Event()
    poller = threading.Thread(target=_follow, args=(name, summary, progress, stop), daemon=True)
    try:
        poller.start()
        for _ in result.iter_batches(batch_size=None, batch_format="pyarrow"):
            pass  # the workers wrote every row to `out`
    finally:
        stop.set()
        poller.join()
    _fill(summary, ledger_stats(name))
    summary.prior_errors = prior_errors
    summary.wall_s = time.perf_counter() - started
    if summary.unfinished:
        summary.stopped, summary.reason = "budget", "the budget is spent; rerun with --resume to go on"
    return summary


def _count_errors(store: ResultsStore) -> int:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    return sum(int(pc.sum(pc.invert(pq.read_table(p, columns=["_sg_ok"], filesystem=store.fs)
                                    .column("_sg_ok"))).as_py() or 0) for p in store.parts())


def _fill(summary: BatchSummary, stats: LedgerStats) -> None:
    summary.succeeded, summary.failed, summary.skipped = stats.succeeded, stats.failed, stats.skipped
    summary.unfinished, summary.usage, summary.throttled = stats.unfinished, stats.usage, stats.throttled


def _follow(name: str, summary: BatchSummary, progress: bool, stop: threading.Event) -> None:
    """Feed the progress bar from the ledger every half second until the run ends."""
    bar = None
    if progress:
        from schemagen.batch.progress import BatchProgress

        bar = BatchProgress(summary)
        bar.start()
    try:
        while not stop.wait(0.5):
            try:
                _fill(summary, ledger_stats(name))
            except Exception:  # the actor is restarting; the next poll catches up
                continue
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.stop()


__all__ = ["extract_dataset", "ledger_stats", "read_results", "require_ray", "run_batch", "start_ledger"]
