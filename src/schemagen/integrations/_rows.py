"""The engine-neutral parts of every integration: keys, shared limits, the worker, the results store.

An integration module (Ray today; Spark or Daft later) only adapts these to its engine:
it hosts one :class:`LimitLedger` somewhere every worker can reach (Ray: a named actor),
builds one :class:`RowExtractor` per worker process, and calls it on Arrow tables.

- :class:`LimitLedger` is pure (clock injected): GCRA pacing for RPM/TPM (the batch
  :class:`~schemagen.batch.ratelimit.Pacer`), a shared 429 cool-down, and the budget
  ledger (a :class:`~schemagen.engine.budget.Budget` plus tokens booked by requests in flight).
- :class:`RowExtractor` builds its :class:`~schemagen.Client` in the worker (never
  pickled), keeps one event loop for the worker's life, and drives every row through
  :meth:`Client.adrive <schemagen.Client.adrive>` with at most ``per_actor_concurrency`` in flight.
- :class:`ResultsStore` is the resume record: a directory of Parquet parts, one per
  finished batch, named by the hash of the batch's keys and moved into place whole, so
  a batch redone after a crash replaces its part instead of adding a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from schemagen.backends.base import Backend
from schemagen.batch.ratelimit import Pacer
from schemagen.batch.records import Record
from schemagen.batch.results import BatchResult
from schemagen.engine.budget import Budget
from schemagen.errors import BudgetExceeded, ConfigurationError, RateLimitError
from schemagen.exchange import Completion, Request, Usage
from schemagen.integrations._arrow import ERROR_TYPE, STATUS_FIELDS, Layout, OutputColumns

#: Output tokens reserved per request for TPM and budget estimates when max_tokens is unset.
DEFAULT_OUTPUT_RESERVE = 1024
#: The ledger paces at this share below the limit: a request that leaves late (its actor's
#: first connection, a starved CPU) then can't push what the provider counts above the limit.
DEFAULT_HEADROOM = 0.01


# ---------------------------------------------------------------- secrets and keys


class KeySource(Protocol):
    """Where a worker gets the API key when it builds its Client (:class:`Secret`, or an
    engine's own handle to it, such as a Ray object-store reference)."""

    def get(self) -> str: ...


class Secret:
    """A key that prints as ``***``: never in a repr, log or error. An engine that records
    task arguments (Ray's GCS and dashboard) should ship a reference instead (a :class:`KeySource`)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def fingerprint(client: Any, target: Any) -> str:
    """What makes two extractions of one text the same: schema, model, mode, prompt settings, params."""
    from schemagen.schema import build_tool

    settings = client.settings
    parts = {
        "schema": build_tool(target, settings.strict).parameters,
        "model": settings.model,
        "mode": settings.mode,
        "system": settings.system,
        "examples": repr(settings.examples),
        "max_tokens": settings.max_tokens,
        "params": settings.params,
    }
    blob = json.dumps(parts, sort_keys=True, default=repr).encode()
    return hashlib.sha256(blob).hexdigest()


def row_key(row_id: Any, text: Any, print_: str) -> str:
    """The resume key: the id column's value, else a hash of the text and the job's fingerprint."""
    if row_id is not None:
        return str(row_id)
    body = text if isinstance(text, str) else repr(text)
    blob = print_.encode() + b"\0" + body.encode("utf-8", "replace")
    return "sha256:" + hashlib.sha256(blob).hexdigest()[:32]


# ---------------------------------------------------------------- the shared limits ledger (pure)


@dataclass
class LedgerStats:
    """What every worker reported, summed: feeds progress bars and the run summary."""

    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    unfinished: int = 0  # refused by the budget: not written, redone on resume
    usage: Usage = field(default_factory=Usage)
    throttled: int = 0
    admitted: int = 0


class LimitLedger:
    """Cluster-wide RPM/TPM pacing, 429 cool-down and budget, for workers in many processes.

    ``admit(tokens)`` books one request and returns ``(delay, refusal, slack)``: the
    seconds the worker must wait before sending (or why the budget refuses it), and how
    late it may send (one gap) before its slot is void. Delays (not absolute times) cross process
    boundaries, so workers' clocks never need to agree. A worker that wakes later than
    ``slack`` (a busy event loop, a starved CPU) books again instead of sending out of
    turn: its slot stays empty, so late requests never bunch up above the rate.
    """

    def __init__(self, *, rpm: float | None = None, tpm: float | None = None,
                 budget: Budget | int | float | None = None, budget_limits: tuple[Any, Any] | None = None,
                 default_cooldown: float = 1.0, max_cooldown: float = 120.0,
                 headroom: float = DEFAULT_HEADROOM, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 <= headroom < 1:
            raise ConfigurationError(f"headroom must be in [0, 1), got {headroom!r}")
        self.rpm = Pacer(rpm * (1 - headroom), clock) if rpm else None
        self.tpm = Pacer(tpm * (1 - headroom), clock) if tpm else None
        # A Budget holds a lock and can't cross processes: ``budget_limits`` is (max_tokens, max_cost).
        self.budget = Budget(*budget_limits) if budget_limits is not None else Budget.coerce(budget)
        self.default_cooldown, self.max_cooldown = default_cooldown, max_cooldown
        self.cooldown_until = 0.0
        self.reserved = 0  # tokens booked by requests in flight
        self.stats = LedgerStats()
        self._clock = clock

    def admit(self, tokens: int = 0) -> tuple[float, str | None, float]:
        if self.budget is not None:
            try:
                self.budget.check(Usage(prompt_tokens=self.reserved + tokens))
            except BudgetExceeded as exc:
                return 0.0, str(exc), 0.0
            self.reserved += tokens
        now = self._clock()
        start = max(now, self.cooldown_until)
        if self.rpm is not None:
            start = self.rpm.reserve(1, self.cooldown_until)
        if self.tpm is not None:
            start = max(start, self.tpm.reserve(max(tokens, 1), self.cooldown_until))
        self.stats.admitted += 1
        gaps = [p.seconds_per_unit * cost for p, cost in ((self.rpm, 1), (self.tpm, max(tokens, 1))) if p]
        slack = max(gaps) if gaps else float("inf")  # one gap late adds at most one request to a window
        return max(0.0, start - now), None, slack

    def settle(self, tokens: int, usage: Usage | None) -> None:
        """A request admitted with ``tokens`` ended; ``usage`` is what it really cost (None: nothing)."""
        if self.budget is None:
            return
        self.reserved = max(0, self.reserved - tokens)
        if usage is not None:
            with contextlib.suppress(BudgetExceeded):  # spent is recorded; the next admit refuses
                self.budget.charge(usage)

    def throttle(self, retry_after: float | None) -> float:
        """A 429 reached some worker: everyone waits out the cool-down; future bookings restart after it."""
        self.stats.throttled += 1
        wait = self.default_cooldown if retry_after is None else retry_after
        wait = max(0.0, min(wait, self.max_cooldown))
        self.cooldown_until = max(self.cooldown_until, self._clock() + wait)
        for pacer in (self.rpm, self.tpm):
            if pacer is not None:
                pacer.reset(self.cooldown_until)
        return wait

    def report(self, succeeded: int, failed: int, skipped: int, unfinished: int, usage: Usage) -> None:
        s = self.stats
        s.succeeded += succeeded
        s.failed += failed
        s.skipped += skipped
        s.unfinished += unfinished
        s.usage = s.usage + usage

    def snapshot(self) -> LedgerStats:
        s = self.stats
        return LedgerStats(s.succeeded, s.failed, s.skipped, s.unfinished, s.usage, s.throttled, s.admitted)


class Limits(Protocol):
    """How a worker reaches the shared :class:`LimitLedger` (an engine-specific proxy)."""

    async def admit(self, tokens: int) -> None: ...  # waits its turn; raises BudgetExceeded
    def settle(self, tokens: int, usage: Usage | None) -> None: ...
    def throttle(self, retry_after: float | None) -> None: ...
    def report(self, succeeded: int, failed: int, skipped: int, unfinished: int, usage: Usage) -> None: ...


class NoLimits:
    """No RPM/TPM/budget and nobody following progress: nothing to share, nothing to ask."""

    async def admit(self, tokens: int) -> None:
        return None

    def settle(self, tokens: int, usage: Usage | None) -> None:
        pass

    def throttle(self, retry_after: float | None) -> None:
        pass

    def report(self, succeeded: int, failed: int, skipped: int, unfinished: int, usage: Usage) -> None:
        pass


# ---------------------------------------------------------------- the job (picklable)


@dataclass(frozen=True)
class ExtractJob:
    """What a worker is asked to do. Holds settings, never a Client (built on the worker)."""

    target: Any
    text_column: str
    id_column: str | None = None
    model: str | None = None
    base_url: str | None = None
    api_key: KeySource | None = None
    client_factory: Callable[[], Any] | None = None
    client_options: dict[str, Any] = field(default_factory=dict)  # retries, max_tokens, temperature...
    per_actor_concurrency: int = 16
    layout: Layout = "flat"
    value_column: str = "value"
    results_dir: str | None = None
    needs_tokens: bool = False  # TPM or a budget: estimate each request's tokens
    rate_limited: bool = False  # RPM, TPM or a budget: ask the ledger before each request
    max_throttle_retries: int = 8
    local_threads: int | None = None  # a ``local:`` model's llama.cpp threads: the CPUs its worker holds

    def make_client(self) -> Any:
        from schemagen.client import Client

        if self.client_factory is not None:
            made = self.client_factory()
            if isinstance(made, Client):
                return made
            return Client(client=made, model=self.model, **self.client_options)  # an OpenAI client
        if self.local_threads and (self.model or "").startswith("local:"):
            from schemagen.backends import create_backend

            options = dict(self.client_options)  # device=/engine= are the backend's, not the Client's
            settings = {k: options.pop(k) for k in ("device", "engine") if k in options}
            backend = create_backend("local", model=(self.model or "")[len("local:"):] or None,
                                     n_threads=self.local_threads, **settings)
            return Client(model=self.model, backend=backend, **options)
        key = self.api_key.get() if self.api_key is not None else None
        return Client(model=self.model, base_url=self.base_url, api_key=key, **self.client_options)


class _SharedLimitsBackend:
    """The worker Client's backend, wrapped: every request passes the shared ledger first.

    429s are reported to the ledger (every worker in the cluster then cools down) and
    retried here, as :class:`schemagen.batch.run._LimitedBackend` does in one process.
    """

    def __init__(self, inner: Backend, limits: Limits, job: ExtractJob, counter: Any) -> None:
        self.inner, self.limits, self.job, self.counter = inner, limits, job, counter
        self.endpoints = inner.endpoints
        self.model = inner.model
        self.supports_strict = inner.supports_strict

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def complete(self, request: Request) -> Completion:
        return self.inner.complete(request)

    def close(self) -> None:
        self.inner.close()

    def _estimate(self, request: Request) -> int:
        from schemagen.tokens import count_request

        if not self.job.needs_tokens:
            return 0
        return count_request(request, self.counter) + (request.max_tokens or DEFAULT_OUTPUT_RESERVE)

    async def acomplete(self, request: Request) -> Completion:
        tokens = self._estimate(request)
        for throttles in range(self.job.max_throttle_retries + 1):
            await self.limits.admit(tokens)
            try:
                completion: Completion = await self.inner.acomplete(request)
            except RateLimitError as exc:
                self.limits.settle(tokens, None)
                self.limits.throttle(exc.retry_after)
                if throttles >= self.job.max_throttle_retries:
                    raise
                continue
            except BaseException:
                self.limits.settle(tokens, None)
                raise
            self.limits.settle(tokens, completion.usage)
            return completion
        raise AssertionError("unreachable")


# ---------------------------------------------------------------- the worker


class RowExtractor:
    """One per worker process: a Client made here, one event loop, bounded concurrency.

    ``__call__(table)`` returns the rows not already done, with the output columns and
    the ``_sg_*`` status columns appended; a failed row is a row with ``_sg_ok`` false.
    """

    def __init__(self, job: ExtractJob, limits: Limits, done_keys: Iterable[str] = ()) -> None:
        import copy

        from schemagen.tokens import counter_for

        self.job = job
        self.limits = limits
        self.done_keys = frozenset(done_keys)
        self.columns = OutputColumns.for_target(job.target, job.layout, job.value_column)
        base = job.make_client()
        self.fingerprint = fingerprint(base, job.target)
        cap = getattr(base.backend, "max_concurrency", None)  # one local model serves one row at a time
        self.in_flight = min(job.per_actor_concurrency, cap) if isinstance(cap, int) and cap > 0 \
            else job.per_actor_concurrency
        self.client = base
        if job.rate_limited:
            self.client = copy.copy(base)
            counter = getattr(base, "counter", None) or counter_for(base.settings.model)
            self.client.backend = _SharedLimitsBackend(base.backend, limits, job, counter)
        self.store = ResultsStore(job.results_dir) if job.results_dir else None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="schemagen-worker", daemon=True)
        self._thread.start()
        self._gate = asyncio.run_coroutine_threadsafe(_semaphore(self.in_flight), self._loop).result()

    # ------------------------------------------------------------ one batch

    def keys(self, table: pa.Table) -> list[str]:
        texts = table.column(self.job.text_column).to_pylist()
        ids = table.column(self.job.id_column).to_pylist() if self.job.id_column else [None] * len(texts)
        return [row_key(i, t, self.fingerprint) for i, t in zip(ids, texts, strict=True)]

    def __call__(self, table: pa.Table) -> pa.Table:
        keys = self.keys(table)
        todo = [k not in self.done_keys for k in keys]
        skipped = todo.count(False)
        if skipped:
            table = table.filter(pa.array(todo, pa.bool_()))
            keys = [k for k, keep in zip(keys, todo, strict=True) if keep]
        texts = table.column(self.job.text_column).to_pylist()
        future = asyncio.run_coroutine_threadsafe(self._extract_all(keys, texts), self._loop)
        results = future.result()
        out = self._table(table, keys, results)
        unfinished = [isinstance(r.exception, BudgetExceeded) for r in results]
        if self.store is not None and len(out):
            # Rows the budget refused were never tried: left out, so a rerun does them.
            self.store.write(out.filter(pa.array([not u for u in unfinished], pa.bool_())))
        usage = sum((r.usage for r in results), Usage())
        ok = sum(r.ok for r in results)
        self.limits.report(ok, len(results) - ok - sum(unfinished), skipped, sum(unfinished), usage)
        return out

    async def _extract_all(self, keys: list[str], texts: list[Any]) -> list[BatchResult[Any]]:
        return list(await asyncio.gather(*(self._one(i, k, t) for i, (k, t) in
                                           enumerate(zip(keys, texts, strict=True)))))

    async def _one(self, index: int, key: str, text: Any) -> BatchResult[Any]:
        record = Record(key, text if isinstance(text, str) else None)
        if record.text is None:
            what = "missing" if text is None else f"a {type(text).__name__}, not a string"
            return BatchResult(key, error=_input_error(f"text column {self.job.text_column!r} is {what}"),
                               index=index)
        async with self._gate:
            try:
                run = self.client.start(self.job.target, record.text)
                extraction = await self.client.adrive(run)
            except Exception as exc:
                return BatchResult.failure(record, exc, index)
        return BatchResult(key, extraction.value, attempts=extraction.attempts, usage=extraction.usage,
                           index=index)

    def _table(self, table: pa.Table, keys: list[str], results: list[BatchResult[Any]]) -> pa.Table:
        values = [r.value if r.ok else None for r in results]
        for f, array in zip(self.columns.fields, self.columns.arrays(values), strict=True):
            table = table.append_column(f, array)
        errors = [None if r.error is None else {"type": r.error.type, "message": r.error.message}
                  for r in results]
        status = [
            pa.array(keys, pa.string()),
            pa.array([r.ok for r in results], pa.bool_()),
            pa.array(errors, ERROR_TYPE),
            pa.array([r.attempts for r in results], pa.int32()),
            pa.array([r.usage.prompt_tokens for r in results], pa.int64()),
            pa.array([r.usage.completion_tokens for r in results], pa.int64()),
            pa.array([r.usage.cost for r in results], pa.float64()),
        ]
        for f, array in zip(STATUS_FIELDS, status, strict=True):
            table = table.append_column(f, array)
        return table

    def close(self) -> None:
        close = getattr(self.client.backend, "aclose", None)
        if close is not None:
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)


async def _semaphore(n: int) -> asyncio.Semaphore:
    return asyncio.Semaphore(n)  # made inside the worker's loop, which it belongs to


def _input_error(message: str) -> Any:
    from schemagen.batch.results import ErrorInfo

    return ErrorInfo("InputError", message)


# ---------------------------------------------------------------- the results directory


class ResultsStore:
    """A directory (local path or any pyarrow filesystem URI) of Parquet parts, appended to.

    Each finished batch is one ``part-<hash of its keys>.parquet``, written to a hidden
    temporary name and moved into place, so a reader never sees half a part and a batch
    redone after a crash overwrites its own part: each key is in the directory once.
    """

    def __init__(self, uri: str | os.PathLike[str]) -> None:
        uri = os.fspath(uri)
        if "://" in uri:
            self.fs, self.path = pafs.FileSystem.from_uri(uri)
        else:
            self.fs, self.path = pafs.LocalFileSystem(), os.path.abspath(uri)
        self.uri = uri

    def parts(self) -> list[str]:
        info = self.fs.get_file_info(self.path)
        if info.type == pafs.FileType.NotFound:
            return []
        if info.type != pafs.FileType.Directory:
            raise ConfigurationError(f"{self.uri} is a file; results go in a directory (pass a folder)")
        found = self.fs.get_file_info(pafs.FileSelector(self.path, recursive=False))
        return sorted(f.path for f in found if f.is_file and os.path.basename(f.path).startswith("part-")
                      and f.path.endswith(".parquet"))

    def write(self, table: pa.Table) -> str:
        keys = table.column("_sg_key").to_pylist()
        name = "part-" + hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:24] + ".parquet"
        self.fs.create_dir(self.path, recursive=True)
        final = f"{self.path}/{name}"
        tmp = f"{self.path}/.tmp-{uuid.uuid4().hex}.parquet"
        with self.fs.open_output_stream(tmp) as sink:
            pq.write_table(table, sink)
        self.fs.move(tmp, final)
        return final

    def scan(self, *, resume: bool, overwrite: bool, retry_errors: bool) -> tuple[set[str], int, int]:
        """``(done keys, prior error rows kept, error rows dropped)``; empties the directory on overwrite."""
        parts = self.parts()
        if parts and not (resume or overwrite):
            raise ConfigurationError(f"{self.uri} already holds results. Pass resume=True (--resume) to "
                                     "continue it, or overwrite=True (--overwrite) to start again.")
        if overwrite and not resume:
            for part in parts:
                self.fs.delete_file(part)
            return set(), 0, 0
        done: set[str] = set()
        prior_errors = dropped = 0
        for part in parts:
            table = pq.read_table(part, columns=["_sg_key", "_sg_ok"], filesystem=self.fs)
            failed = int(pc.sum(pc.invert(table.column("_sg_ok"))).as_py() or 0)
            if failed and retry_errors:
                dropped += failed
                self._drop_errors(part)
                table = table.filter(table.column("_sg_ok"))
            else:
                prior_errors += failed
            done.update(table.column("_sg_key").to_pylist())
        return done, prior_errors, dropped

    def _drop_errors(self, part: str) -> None:
        """Rewrite ``part`` without its failed rows (whole-file move), or delete it if none are left."""
        table = pq.read_table(part, filesystem=self.fs)
        kept = table.filter(table.column("_sg_ok"))
        if len(kept) == 0:
            self.fs.delete_file(part)
            return
        tmp = f"{self.path}/.tmp-{uuid.uuid4().hex}.parquet"
        with self.fs.open_output_stream(tmp) as sink:
            pq.write_table(kept, sink)
        self.fs.move(tmp, part)

    def read(self) -> pa.Table:
        """Every row in the directory, as one table."""
        parts = self.parts()
        if not parts:
            return pa.table({})
        tables = [pq.read_table(p, filesystem=self.fs) for p in parts]
        return pa.concat_tables(tables, promote_options="default")


