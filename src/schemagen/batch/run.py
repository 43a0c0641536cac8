"""Batch extraction: many records through one Client, bounded, rate limited, resumable.

    results = schemagen.extract_many(Invoice, records, concurrency=64, rpm=500,
                                     checkpoint="out.jsonl")
    async for r in schemagen.aextract_many(Invoice, records, concurrency=64):
        ...

A fixed pool of ``concurrency`` workers pulls records from a lazy iterator, so 10k
records never become 10k tasks and inputs are never loaded whole. Each item goes
through the core (:meth:`Client.aextract_result`: reasks, transport retries) on one
shared Client, whose backend is wrapped to pass every request through one shared
:class:`~schemagen.batch.ratelimit.RateLimiter` and one shared budget. A failing item becomes
an error record; only a budget stop or an error no item can survive (bad key, unknown
model) stops the batch.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from typing import Any, Generic, Literal, TypeVar, overload

from schemagen.backends.base import Backend
from schemagen.batch.checkpoint import Checkpoint
from schemagen.batch.ratelimit import RateLimiter
from schemagen.batch.records import Record, count_records, is_path, iter_records
from schemagen.batch.results import BatchResult, BatchResults, BatchSummary, ErrorInfo
from schemagen.client import Client, _client_for
from schemagen.engine.budget import Budget
from schemagen.engine.estimate import Estimator
from schemagen.engine.pricing import estimate_cost, with_cost
from schemagen.engine.run import Settings
from schemagen.errors import BudgetExceeded, ConfigurationError, RateLimitError, RequestRejectedError
from schemagen.exchange import Completion, Request, Usage
from schemagen.observe import start_batch
from schemagen.tokens import Counter, counter_for

T = TypeVar("T")
J = TypeVar("J")
Mode = Literal["online", "batch_api"]

#: Output tokens reserved per request for TPM and budget estimates when max_tokens is unset.
DEFAULT_OUTPUT_RESERVE = 1024
#: HTTP statuses no item can get past: stop the batch instead of writing N identical errors.
FATAL_STATUS = frozenset({401, 403, 404})
#: Errors meaning "the server can't be reached"; this many in a row (or 2x concurrency) stop the batch.
UNREACHABLE = frozenset({"APIConnectionError", "APITimeoutError"})
UNREACHABLE_RUN = 20


# ---------------------------------------------------------------- the backend every request goes through


class _LimitedBackend:
    """Wraps the Client's backend: rate limit, absorb 429s, check and charge the budget.

    429s are retried here (up to ``max_throttle_retries`` per request) after the shared
    cool-down, so a burst of them slows the whole batch down instead of failing items.
    Other transport errors go on to the Client's own retry policy.
    """

    def __init__(self, inner: Backend, batch: BatchRun[Any]) -> None:
        self.inner = inner
        self.batch = batch
        self.endpoints = inner.endpoints
        self.model = inner.model
        self.supports_strict = inner.supports_strict

    def __getattr__(self, name: str) -> Any:  # chat_template, max_context, async_client, ...
        return getattr(self.inner, name)

    def complete(self, request: Request) -> Completion:  # the sync twin is not used by batches
        return self.inner.complete(request)

    def close(self) -> None:  # the inner backend belongs to the caller's Client
        pass

    async def acomplete(self, request: Request) -> Completion:
        batch = self.batch
        limiter = batch.limiter
        tokens = batch.estimate(request) if batch.counts_tokens else 0
        batch.book_budget(tokens)
        try:
            for throttles in range(batch.max_throttle_retries + 1):
                await limiter.acquire(tokens)
                try:
                    completion: Completion = await self.inner.acomplete(request)
                except RateLimitError as exc:
                    limiter.throttle(exc.retry_after)
                    limiter.release(ok=False)
                    batch.summary.throttled += 1
                    if throttles >= batch.max_throttle_retries:
                        raise
                    continue
                except BaseException:
                    limiter.release(ok=False)
                    raise
                limiter.release(ok=True)
                break
        finally:
            batch.unbook_budget(tokens)
        batch.charge(completion.usage)
        return completion


# ---------------------------------------------------------------- the run


class BatchRun(Generic[T]):
    """One batch: iterate it (``async for``) to run it; ``summary`` fills in as it goes.

    Made by :func:`aextract_many`; it can be iterated once.
    """

    def __init__(
        self,
        target: Any,
        records: Any,
        *,
        client: Client,
        overrides: dict[str, Any],
        concurrency: int = 16,
        rpm: float | None = None,
        tpm: float | None = None,
        checkpoint: str | Any | None = None,
        resume: bool = False,
        overwrite: bool = False,
        retry_errors: bool = False,
        budget: Budget | int | float | None = None,
        mode: Mode = "online",
        progress: bool = False,
        total: int | None = None,
        text_field: str = "text",
        id_field: str = "id",
        fsync_interval: float = 1.0,
        max_throttle_retries: int = 8,
        poll_interval: float = 10.0,
        batch_fallback: Literal["online", "report"] = "online",
        batch_dir: str | Any | None = None,
    ) -> None:
        if concurrency < 1:
            raise ConfigurationError(f"concurrency must be at least 1, got {concurrency}")
        if mode not in ("online", "batch_api"):
            raise ConfigurationError(f"mode must be 'online' or 'batch_api', got {mode!r}")
        if resume and checkpoint is None:
            raise ConfigurationError("resume needs a checkpoint file (checkpoint=... / --out)")
        self.target = target
        self.source = records
        self.overrides = overrides
        self.concurrency = concurrency
        self.mode = mode
        self.progress_enabled = progress
        self.text_field: str = text_field
        self.id_field: str = id_field
        self.max_throttle_retries = max_throttle_retries
        self.poll_interval = poll_interval
        self.batch_fallback = batch_fallback
        self.batch_dir = batch_dir
        self.resume: bool = resume
        self.overwrite: bool = overwrite
        self.retry_errors: bool = retry_errors
        self.budget: Budget | None = Budget.coerce(budget)
        # A backend that can't serve parallel requests (one local model) says so; honour it.
        cap = getattr(client.backend, "max_concurrency", None)
        in_flight = min(concurrency, cap) if isinstance(cap, int) and cap > 0 else concurrency
        self.limiter: RateLimiter = RateLimiter(concurrency=in_flight, rpm=rpm, tpm=tpm)
        self.counts_tokens: bool = self.limiter.needs_tokens or self.budget is not None
        self.base_client: Client = client
        # Same backend (one connection pool, one loaded model), every request through the limiter.
        self.client: Client = copy.copy(client)
        self.client.backend = _LimitedBackend(client.backend, self)
        self.client.settings = _without_budget(client.settings, self.budget)
        # The backend's own tokenizer when the Client has one (local models), else tiktoken.
        self.counter: Counter = getattr(client, "counter", None) or counter_for(client.settings.model)
        self.estimator: Estimator = Estimator(
            self.counter, client.settings.model, output_reserve=DEFAULT_OUTPUT_RESERVE)
        self.checkpoint: Checkpoint | None = (
            Checkpoint(checkpoint, fsync_interval=fsync_interval) if checkpoint else None)
        self.summary: BatchSummary = BatchSummary(total=total)
        self.done_ids: set[str] = set()
        self._reserved = 0
        self._unreachable_run = 0
        self._stopping = False
        self._fatal: BaseException | None = None
        self._started = False
        self._progress: Any = None

    # ------------------------------------------------------------ shared state, used by the backend

    def estimate(self, request: Request) -> int:
        """Prompt tokens plus the output bound: what a provider counts against TPM."""
        return self.estimator.estimate(request).total_tokens

    def book_budget(self, tokens: int) -> None:
        """Refuse a request whose estimate, on top of what is spent and in flight, would go over."""
        if self.budget is None:
            return
        if self._stopping and self.summary.stopped == "budget":
            raise BudgetExceeded("The batch budget is spent; nothing was sent.", spent=self.budget.spent)
        self.budget.check(self.booked_usage(self._reserved + tokens))
        self._reserved += tokens

    @property
    def tool_cache_misses(self) -> int:
        """How often the tool definitions were counted (once per distinct tool list)."""
        return self.estimator.tool_cache_misses

    def booked_usage(self, tokens: int) -> Usage:
        """Estimated tokens as a Usage a budget can check, priced as input (a lower bound of the
        cost, so a ``max_cost`` budget refuses what surely won't fit)."""
        return Usage(prompt_tokens=tokens, cost=estimate_cost(self.client.settings.model, tokens, 0))

    def unbook_budget(self, tokens: int) -> None:
        if self.budget is not None:
            self._reserved -= tokens

    def charge(self, usage: Usage) -> None:
        """Count an answer's usage once, priced first (so a ``max_cost`` budget can trip)."""
        usage = with_cost(usage, self.client.settings.model)
        self.summary.usage = self.summary.usage + usage
        if self.budget is None:
            return
        try:
            self.budget.charge(usage)
        except BudgetExceeded as exc:
            self.stop("budget", str(exc))

    def stop(self, why: str, reason: str) -> None:
        """Start no new item; items in flight finish (a budget stop refuses their next request)."""
        if not self._stopping:
            self._stopping = True
            self.summary.stopped, self.summary.reason = why, reason

    # ------------------------------------------------------------ running

    def __aiter__(self) -> AsyncIterator[BatchResult[T]]:
        if self._started:
            raise RuntimeError("a BatchRun can be iterated only once")
        self._started = True
        return self._run()

    async def _run(self) -> AsyncIterator[BatchResult[T]]:
        started = time.perf_counter()
        # One batch span (OpenTelemetry) whose children are the items' extraction spans.
        name = self.client.start(self.target, "", self.overrides).spec.name
        self.client.observers, observations = start_batch(
            self.client.observers, name, {"schemagen.batch.mode": self.mode,
                                          "schemagen.batch.concurrency": self.concurrency})
        error: BaseException | None = None
        try:
            self._preflight()
            if self.checkpoint is not None:
                self.done_ids = self.checkpoint.open(
                    resume=self.resume, overwrite=self.overwrite, retry_errors=self.retry_errors)
                self.summary.truncated_bytes = self.checkpoint.truncated_bytes
                self.summary.dropped_errors = self.checkpoint.dropped_errors
                self.summary.prior_errors = self.checkpoint.prior_errors
            if self.summary.total is None and (self.progress_enabled or not is_path(self.source)):
                self.summary.total = count_records(self.source)  # len(), or one streaming pass over a file
            self._start_progress()
            records = iter_records(self.source, text_field=self.text_field, id_field=self.id_field)
            if self.mode == "batch_api":
                from schemagen.batch.openai_batch import run_batch_api

                stream = run_batch_api(self, records)
            else:
                stream = self.pool(self._online_jobs(records), self._process_online)
            async for result in stream:
                yield result
            if self._fatal is not None:
                raise self._fatal
        except BaseException as exc:
            error = exc
            raise
        finally:
            for observation in observations:
                observation.end(self.summary, error)
            self.summary.wall_s = time.perf_counter() - started
            if self.checkpoint is not None:
                self.checkpoint.close()
            self._stop_progress()

    def _preflight(self) -> None:
        """Fail fast, before any record, on a target that can't become a tool (SchemaError)."""
        self.client.start(self.target, "", self.overrides)

    def pending(self, records: Iterator[Record], written: AbstractSet[str] = frozenset()
                ) -> Iterator[tuple[int, Record]]:
        """Records not yet done, numbered; skips (and counts) those already in the checkpoint,
        and passes over ``written`` (done earlier in this run) without counting them."""
        for index, record in enumerate(records):
            if record.id in written:
                continue
            if record.id in self.done_ids:
                self.summary.skipped += 1
                self._advance(skipped=True)
                continue
            yield index, record

    def _online_jobs(self, records: Iterator[Record]) -> Iterator[tuple[int, Record]]:
        return self.pending(records)

    async def _process_online(self, job: tuple[int, Record]) -> BatchResult[T] | None:
        index, record = job
        if record.text is None:
            return BatchResult.unreadable(record, index)
        try:
            extraction = await self.client.aextract_result(self.target, record.text, **self.overrides)
        except Exception as exc:
            return self.settle(record, exc, index)
        return BatchResult(record.id, extraction.value, attempts=extraction.attempts, usage=extraction.usage,
                           line=record.line, index=index)

    def settle(self, record: Record, exc: BaseException, index: int) -> BatchResult[T] | None:
        """An item's exception: an error record, or None when the batch must stop without it."""
        if isinstance(exc, BudgetExceeded):
            self.stop("budget", str(exc))
            self.summary.unfinished += 1
            return None
        if isinstance(exc, RequestRejectedError) and exc.status_code in FATAL_STATUS:
            if self._fatal is None:
                self._fatal = exc
            self.stop("error", str(exc))
            self.summary.unfinished += 1
            return None
        return BatchResult.failure(record, exc, index)

    async def pool(
        self, jobs: Iterator[J], process: Callable[[J], Awaitable[BatchResult[T] | None]], *,
        stoppable: bool = True,
    ) -> AsyncIterator[BatchResult[T]]:
        """Run ``process`` over ``jobs`` with ``concurrency`` workers; yields results as they finish.

        Workers pull from the iterator themselves (pulling is synchronous, so no two get the
        same job), and each result is written to the checkpoint before it is yielded. A stop
        (budget) ends the pulling, unless ``stoppable`` is False (answers already paid for).
        """
        out: asyncio.Queue[BatchResult[T] | None] = asyncio.Queue(maxsize=self.concurrency)
        crashed: list[BaseException] = []

        async def worker() -> None:
            try:
                while not (self._stopping and (stoppable or self._fatal is not None or crashed)):
                    job = next(jobs, None)
                    if job is None:
                        return
                    result = await process(job)
                    if result is not None:
                        self.emit(result)
                        await out.put(result)
            except BaseException as exc:
                if not isinstance(exc, asyncio.CancelledError):
                    crashed.append(exc)
                self._stopping = True
                raise

        async def close() -> None:
            await asyncio.gather(*workers, return_exceptions=True)
            await out.put(None)

        workers = [asyncio.create_task(worker()) for _ in range(self.concurrency)]
        closer = asyncio.create_task(close())
        try:
            while (result := await out.get()) is not None:
                yield result
            if crashed:
                raise crashed[0]
        finally:
            for task in (*workers, closer):
                task.cancel()
            await asyncio.gather(*workers, closer, return_exceptions=True)

    def emit(self, result: BatchResult[T]) -> None:
        """Persist and count one finished item."""
        if self.checkpoint is not None:
            self.checkpoint.write(result.to_dict())
        if result.ok:
            self.summary.succeeded += 1
        else:
            self.summary.failed += 1
            assert result.error is not None
            self.summary.error_types[result.error.type] += 1
        # A server that is down turns every item into the same connection error: stop after
        # a run of them instead of writing one per remaining record.
        unreachable = result.error is not None and result.error.type in UNREACHABLE
        self._unreachable_run = self._unreachable_run + 1 if unreachable else 0
        if self._unreachable_run >= max(UNREACHABLE_RUN, 2 * self.concurrency):
            self.stop("unreachable", f"{self._unreachable_run} items in a row could not reach the server "
                      f"({result.error.message if result.error else ''}); once it is back, rerun with "
                      "--resume --retry-errors")
        self._advance()

    # ------------------------------------------------------------ progress

    def _start_progress(self) -> None:
        if not self.progress_enabled:
            return
        from schemagen.batch.progress import BatchProgress

        self._progress = BatchProgress(self.summary)
        self._progress.start()

    def _advance(self, skipped: bool = False) -> None:
        if self._progress is not None:
            self._progress.update(skipped=skipped)

    @property
    def stopping(self) -> bool:
        """True once the run stops taking new records (budget, abort, fatal error)."""
        return self._stopping

    def set_status(self, text: str) -> None:
        """A status line on the progress bar, when there is one."""
        if self._progress is not None:
            self._progress.set_status(text)

    def _stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _without_budget(settings: Settings, budget: Budget | None) -> Settings:
    """``settings`` less ``budget``: the batch charges it once per answer, so the Client's
    own charge of the same object (``Client(budget=b)`` and ``budget=b``) is dropped."""
    if budget is None or settings.budget is None:
        return settings
    items = settings.budget if isinstance(settings.budget, list | tuple) else (settings.budget,)
    kept = tuple(b for b in items if b is not budget)
    if len(kept) == len(items):
        return settings
    return dataclasses.replace(settings, budget=kept or None)


# ---------------------------------------------------------------- public API


def _resolve(kwargs: dict[str, Any]) -> Client:
    given = kwargs.get("client")
    if isinstance(given, Client):
        del kwargs["client"]
        return given
    return _client_for(kwargs)


@overload
def aextract_many(
    target: type[T],
    records: Iterable[Any] | str | Any,
    *,
    concurrency: int = 16,
    rpm: float | None = None,
    tpm: float | None = None,
    checkpoint: str | Any | None = None,
    resume: bool = False,
    overwrite: bool = False,
    retry_errors: bool = False,
    budget: Budget | int | float | None = None,
    mode: Mode = "online",
    progress: bool = False,
    total: int | None = None,
    text_field: str = "text",
    id_field: str = "id",
    fsync_interval: float = 1.0,
    max_throttle_retries: int = 8,
    poll_interval: float = 10.0,
    batch_fallback: Literal["online", "report"] = "online",
    batch_dir: str | Any | None = None,
    **kwargs: Any,
) -> BatchRun[T]: ...
@overload
def aextract_many(
    target: Any,
    records: Iterable[Any] | str | Any,
    *,
    concurrency: int = 16,
    rpm: float | None = None,
    tpm: float | None = None,
    checkpoint: str | Any | None = None,
    resume: bool = False,
    overwrite: bool = False,
    retry_errors: bool = False,
    budget: Budget | int | float | None = None,
    mode: Mode = "online",
    progress: bool = False,
    total: int | None = None,
    text_field: str = "text",
    id_field: str = "id",
    fsync_interval: float = 1.0,
    max_throttle_retries: int = 8,
    poll_interval: float = 10.0,
    batch_fallback: Literal["online", "report"] = "online",
    batch_dir: str | Any | None = None,
    **kwargs: Any,
) -> BatchRun[Any]: ...
def aextract_many(
    target: Any,
    records: Iterable[Any] | str | Any,
    *,
    concurrency: int = 16,
    rpm: float | None = None,
    tpm: float | None = None,
    checkpoint: str | Any | None = None,
    resume: bool = False,
    overwrite: bool = False,
    retry_errors: bool = False,
    budget: Budget | int | float | None = None,
    mode: Mode = "online",
    progress: bool = False,
    total: int | None = None,
    text_field: str = "text",
    id_field: str = "id",
    fsync_interval: float = 1.0,
    max_throttle_retries: int = 8,
    poll_interval: float = 10.0,
    batch_fallback: Literal["online", "report"] = "online",
    batch_dir: str | Any | None = None,
    **kwargs: Any,
) -> BatchRun[Any]:
    """Extract ``target`` from many records; ``async for`` over the result streams them as they finish.

    ``records``: an iterable of str / ``(id, text)`` / dicts with ``id``/``text``, or a path
    (JSONL, CSV, or a folder of .txt/.md files). ``client=`` takes a :class:`Client` (reused
    as is) or an OpenAI client; other keyword arguments are the usual connection settings
    and per-call overrides (``model=``, ``max_tokens=``, ``retries=``, ``temperature=``...).
    ``checkpoint=`` appends each result to a JSONL file as it finishes; ``resume=True``
    skips the ids already there. ``budget=`` (tokens, or a shared :class:`Budget`) stops the
    batch cleanly. ``mode="batch_api"`` goes through the OpenAI Batch API.
    The run's :class:`BatchSummary` is on ``.summary``.
    """
    client = _resolve(kwargs)
    return BatchRun(
        target, records, client=client, overrides=kwargs, concurrency=concurrency, rpm=rpm, tpm=tpm,
        checkpoint=checkpoint, resume=resume, overwrite=overwrite, retry_errors=retry_errors,
        budget=budget, mode=mode, progress=progress, total=total, text_field=text_field,
        id_field=id_field, fsync_interval=fsync_interval, max_throttle_retries=max_throttle_retries,
        poll_interval=poll_interval, batch_fallback=batch_fallback, batch_dir=batch_dir,
    )


@overload
def extract_many(target: type[T], records: Iterable[Any] | str | Any, **kwargs: Any) -> BatchResults[T]: ...
@overload
def extract_many(target: Any, records: Iterable[Any] | str | Any, **kwargs: Any) -> BatchResults[Any]: ...
def extract_many(target: Any, records: Iterable[Any] | str | Any, **kwargs: Any) -> BatchResults[Any]:
    """Sync twin of :func:`aextract_many`: every result, in input order, as a list (with ``.summary``).

    Keeps every result in memory; for large inputs prefer ``checkpoint=`` with
    :func:`aextract_many`, which streams.
    """
    run: BatchRun[Any] = aextract_many(target, records, **kwargs)

    async def collect() -> list[BatchResult[Any]]:
        try:
            return [result async for result in run]
        finally:
            # The connection pool was opened in this private loop, which ends here.
            close = getattr(run.base_client.backend, "aclose", None)
            if close is not None:
                await close()

    items = _run_sync(collect)
    results: BatchResults[Any] = BatchResults(sorted(items, key=lambda r: r.index))
    results.summary = run.summary
    return results


def _run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """``asyncio.run``, or the same on a helper thread when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_call(factory))
    values: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            values.append(asyncio.run(_call(factory)))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="schemagen-extract-many")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return values[0]


async def _call(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()


__all__ = [
    "BatchResult",
    "BatchResults",
    "BatchRun",
    "BatchSummary",
    "ErrorInfo",
    "aextract_many",
    "extract_many",
]
