"""OpenAI Batch API mode: submit every first attempt as one job, finish the rest online.

1. Render: each record's first request comes from the core's render stage
   (``ExtractionRun.next_request()``), byte for byte what online mode would send, as one
   ``{"custom_id", "method", "url", "body"}`` line. The texts go to a side file indexed by
   id (offsets only in memory), so nothing is kept per record but its id.
2. Upload the file(s), create the job(s), poll until they end: all through the backend's
   batch transport (:mod:`schemagen.backends.batch_transport`), never the SDK directly.
3. Download the output and error files and parse each answer with the core's parse
   stage (``ExtractionRun.receive``). An answer that fails validation is reasked online
   through the batch's Client, limiter and budget (``batch_fallback="online"``), or
   reported as an error record (``"report"``). Items the job failed to run (5xx, 429,
   expired, cancelled) are retried online too; 4xx are reported.

Every step is recorded in ``<checkpoint>.batch/state.json`` (written atomically), so
``resume`` re-attaches to a job already submitted instead of paying for it twice. The
folder is removed once every item of the job is in the checkpoint.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from schemagen.batch.records import Record
from schemagen.batch.results import BatchResult
from schemagen.errors import (
    BudgetExceeded,
    ConfigurationError,
    ExtractionError,
    RateLimitError,
    RequestRejectedError,
    ServerError,
    TransportError,
)
from schemagen.trace import describe_attempt

if TYPE_CHECKING:
    from schemagen.backends.batch_transport import BatchTransport
    from schemagen.batch.run import BatchRun
    from schemagen.engine.run import Extraction, ExtractionRun

T = TypeVar("T")
URLS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
#: OpenAI's limits per batch job are 50,000 requests and 200 MB; stay a little under.
MAX_REQUESTS = 50_000
MAX_BYTES = 190 * 1024 * 1024
#: Error codes in the error file that mean "never ran", not "the request was bad".
NOT_RUN = frozenset({"batch_expired", "batch_cancelled", "server_error", "rate_limit_exceeded"})


class _Job:
    """The on-disk state of one batch-mode run: request files, texts, job ids."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.state_path = folder / "state.json"
        self.texts_path = folder / "texts.jsonl"
        self.state: dict[str, Any] = {"chunks": [], "complete": False}
        self.offsets: dict[str, int] = {}  # id -> offset of its line in texts.jsonl

    @property
    def chunks(self) -> list[dict[str, Any]]:
        chunks: list[dict[str, Any]] = self.state["chunks"]  # the JSON state this class writes
        return chunks

    def save(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, self.state_path)

    def load(self) -> bool:
        """Load a state saved by an earlier run; False when there is none to resume."""
        if not self.state_path.exists():
            return False
        state = json.loads(self.state_path.read_text())
        if not state.get("complete"):
            return False  # rendering never finished, so nothing was submitted
        self.state = state
        with self.texts_path.open("rb") as handle:
            offset = 0
            for raw in handle:
                self.offsets[json.loads(raw)["id"]] = offset
                offset += len(raw)
        return True

    def text_of(self, handle: Any, rid: str) -> tuple[Record, int, dict[str, Any]]:
        """The record, its input position and its chunk."""
        handle.seek(self.offsets[rid])
        data = json.loads(handle.readline())
        return Record(rid, data["text"], data.get("line")), int(data["index"]), self.chunks[data["chunk"]]


async def run_batch_api(run: BatchRun[T], records: Iterator[Record]) -> AsyncIterator[BatchResult[T]]:
    """The batch-mode stream of results; see the module docstring."""
    driver = _Driver(run)
    async for result in driver.stream(records):
        yield result


class _Driver:
    def __init__(self, run: BatchRun[Any]) -> None:
        self.run = run
        inner = run.base_client.backend
        make = getattr(inner, "batch_transport", None)
        if make is None:
            raise ConfigurationError("mode='batch_api' needs a backend with a batch transport: the "
                                     "OpenAI-compatible one (base_url= or client=)")
        self.transport: BatchTransport = make()
        # Azure OpenAI's Batch API names the endpoint without the /v1 prefix.
        azure = bool(getattr(inner, "azure", False))
        self.urls = {k: v.removeprefix("/v1") if azure else v for k, v in URLS.items()}
        if run.batch_dir is not None:
            folder = Path(run.batch_dir)
        elif run.checkpoint is not None:
            folder = run.checkpoint.path.with_name(run.checkpoint.path.name + ".batch")
        else:
            folder = Path(tempfile.mkdtemp(prefix="schemagen-batch-"))
        self.job = _Job(folder)
        self.written: set[str] = set()  # ids this run wrote (run.done_ids holds the earlier ones)

    # ------------------------------------------------------------ the whole run

    async def stream(self, records: Iterator[Record]) -> AsyncIterator[BatchResult[Any]]:
        run, job = self.run, self.job
        if job.state_path.exists() and not run.resume:
            if not run.overwrite:
                raise ConfigurationError(
                    f"{job.folder} records a batch job from an earlier run. Pass resume (--resume) to "
                    "collect it, or overwrite (--overwrite) to discard it."
                )
            shutil.rmtree(job.folder)
        if run.resume and job.load():
            async for result in self._collect():
                yield result
            if not self._finished():
                return  # stopped inside the earlier job; the next resume goes on from there
            job.state, job.offsets = {"chunks": [], "complete": False}, {}
        async for result in self._render(records):
            yield result
        if not job.chunks:
            shutil.rmtree(job.folder, ignore_errors=True)
            return
        async for result in self._collect():
            yield result

    def _finished(self) -> bool:
        """Every item of the job is in the checkpoint: its folder can go."""
        if all(self._done(rid) for rid in self.job.offsets):
            shutil.rmtree(self.job.folder, ignore_errors=True)
            return True
        return False

    # ------------------------------------------------------------ 1. render

    async def _render(self, records: Iterator[Record]) -> AsyncIterator[BatchResult[Any]]:
        run, job = self.run, self.job
        job.folder.mkdir(parents=True, exist_ok=True)
        for stale in job.folder.glob("requests-*.jsonl"):
            stale.unlink()
        booked = 0
        texts = job.texts_path.open("wb")
        out: Any = None
        size = count = 0
        try:
            for index, record in run.pending(records, written=self.written):
                if run.stopping:
                    break
                if record.text is None:
                    result = BatchResult.unreadable(record, index)
                    self._emit(result)
                    yield result
                    continue
                try:
                    extraction = run.client.start(run.target, record.text, run.overrides)
                    request = extraction.next_request()
                except Exception as exc:  # e.g. ContextOverflowError: nothing would be sent
                    settled = run.settle(record, exc, index)
                    if settled is not None:
                        self._emit(settled)
                        yield settled
                    continue
                if run.budget is not None:
                    tokens = run.estimate(request)
                    try:
                        run.budget.check(run.booked_usage(booked + tokens))
                    except BudgetExceeded as exc:
                        run.stop("budget", str(exc))
                        break
                    booked += tokens
                url = self.urls[request.endpoint]
                line = json.dumps({"custom_id": record.id, "method": "POST", "url": url,
                                   "body": request.body}, ensure_ascii=False).encode() + b"\n"
                if out is None or count >= MAX_REQUESTS or size + len(line) > MAX_BYTES:
                    if out is not None:
                        out.close()
                    name = f"requests-{len(job.chunks)}.jsonl"
                    job.chunks.append({"file": name, "endpoint": url, "count": 0})
                    out = (job.folder / name).open("wb")
                    size = count = 0
                out.write(line)
                size, count = size + len(line), count + 1
                job.chunks[-1]["count"] = count
                job.offsets[record.id] = texts.tell()
                texts.write(json.dumps({"id": record.id, "text": record.text, "line": record.line,
                                        "index": index, "chunk": len(job.chunks) - 1},
                                       ensure_ascii=False).encode() + b"\n")
        finally:
            texts.close()
            if out is not None:
                out.close()
        if job.chunks:
            job.state["complete"] = True
            # A unique id for this job, sent as batch metadata: a resume after a crash between
            # batches.create and saving its id finds the job by it instead of paying twice.
            job.state["run_id"] = uuid.uuid4().hex
            job.state["created"] = time.time()
            job.save()

    # ------------------------------------------------------------ 2-3. submit, poll, collect

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """A batch-transport call (typed errors already) with the Client's transport retries."""
        return await self.run.client.policy.acall(fn)

    async def _submit(self) -> None:
        job, transport = self.job, self.transport
        for chunk in job.chunks:
            if chunk.get("input_file_id") is None:
                path = job.folder / chunk["file"]
                chunk["input_file_id"] = await self._call(partial(transport.upload, path))
                job.save()
            if chunk.get("batch_id") is None and chunk.get("creating"):
                chunk["batch_id"] = await self._find_created(chunk)  # created, then a crash
            if chunk.get("batch_id") is None:
                chunk["creating"] = True
                job.save()
                metadata = {"schemagen_file": chunk["file"], "schemagen_run": str(job.state.get("run_id"))}
                created = await self._call(
                    partial(transport.create, chunk["input_file_id"], chunk["endpoint"], metadata))
                chunk["batch_id"] = created.id
                job.save()
            if chunk["batch_id"] not in self.run.summary.batch_ids:
                self.run.summary.batch_ids.append(chunk["batch_id"])

    async def _find_created(self, chunk: dict[str, Any]) -> str | None:
        """The id of a job this run created for ``chunk`` but didn't live to save (None if
        there is none), found by its metadata among the provider's recent jobs."""
        since = float(self.job.state.get("created") or 0) - 3600  # older jobs can't be ours
        wanted = {"schemagen_run": str(self.job.state.get("run_id")), "schemagen_file": chunk["file"]}
        found = await self._call(partial(self.transport.find, wanted, since))
        if found is not None:
            self._status(f"batch API: re-attached to {found.id}")
            return found.id
        return None

    async def _poll(self) -> None:
        job = self.job
        while True:
            states = []
            for chunk in job.chunks:
                if chunk.get("status") in TERMINAL:
                    states.append(chunk)
                    continue
                batch = await self._call(partial(self.transport.retrieve, chunk["batch_id"]))
                chunk.update(status=batch.status, output_file_id=batch.output_file_id,
                             error_file_id=batch.error_file_id, done=batch.done)
                if batch.status == "failed" and batch.errors:
                    chunk["errors"] = "; ".join(batch.errors)
                states.append(chunk)
            done = sum(int(c.get("done") or 0) for c in states)
            total = sum(int(c["count"]) for c in states)
            status = ", ".join(sorted({str(c.get("status")) for c in states}))
            self._status(f"batch API: {status} {done}/{total}")
            if all(c.get("status") in TERMINAL for c in states):
                job.save()
                return
            await asyncio.sleep(self.run.poll_interval)

    async def _download(self) -> None:
        job = self.job
        for chunk in job.chunks:
            for key in ("output_file_id", "error_file_id"):
                file_id = chunk.get(key)
                target = job.folder / f"{chunk['file']}.{key[:-8]}.jsonl"
                if not file_id or target.exists():
                    continue
                tmp = target.with_suffix(".part")
                await self._call(partial(self.transport.download, file_id, tmp))
                os.replace(tmp, target)

    async def _collect(self) -> AsyncIterator[BatchResult[Any]]:
        await self._submit()
        await self._poll()
        await self._download()
        self._status("")
        with self.job.texts_path.open("rb") as texts:
            async for result in self.run.pool(self._answers(), partial(self._finish, texts), stoppable=False):
                self.written.add(result.id)
                yield result
        self._finished()

    def _answers(self) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """``(custom_id, answer line or None)`` for every item of the job not yet done, once."""
        seen: set[str] = set()
        for chunk in self.job.chunks:
            for kind in ("output", "error"):
                path = self.job.folder / f"{chunk['file']}.{kind}.jsonl"
                if not path.exists():
                    continue
                with path.open("rb") as handle:
                    for raw in handle:
                        if not raw.strip():
                            continue
                        entry = json.loads(raw)
                        rid = entry.get("custom_id")
                        if rid in self.job.offsets and rid not in seen:
                            seen.add(rid)
                            if not self._done(rid):
                                yield rid, entry
        for rid in self.job.offsets:  # the job ended without an answer for these
            if rid not in seen and not self._done(rid):
                yield rid, None

    # ------------------------------------------------------------ 4. parse, reask online

    async def _finish(self, texts: Any, job: tuple[str, dict[str, Any] | None]) -> BatchResult[Any] | None:
        from schemagen.backends.openai_compat import completion_from_json

        run = self.run
        rid, entry = job
        record, index, chunk = self.job.text_of(texts, rid)
        online = run.batch_fallback == "online"
        try:
            extraction = run.client.start(run.target, record.text or "", run.overrides)
            request = extraction.next_request()  # the attempt the batch answered
            response = (entry or {}).get("response") or {}
            if response.get("status_code") == 200 and isinstance(response.get("body"), dict):
                completion = completion_from_json(response["body"], request.endpoint)
                run.charge(completion.usage)
                extraction.receive(completion)
                if not extraction.done:
                    if not online:
                        raise _invalid(extraction)
                    return self._ok(record, index, await run.client.adrive(extraction))
                return self._ok(record, index, extraction.result())
            failure = _failure(entry, chunk)
            if online and (failure.retryable or entry is None or _not_run(entry)):
                value = await run.client.aextract_result(run.target, record.text or "", **run.overrides)
                return self._ok(record, index, value)
            raise failure
        except Exception as exc:
            return run.settle(record, exc, index)

    def _ok(self, record: Record, index: int, extraction: Extraction[Any]) -> BatchResult[Any]:
        return BatchResult(record.id, extraction.value, attempts=extraction.attempts, usage=extraction.usage,
                           line=record.line, index=index)

    def _emit(self, result: BatchResult[Any]) -> None:
        self.run.emit(result)
        self.written.add(result.id)

    def _done(self, rid: str) -> bool:
        """In the checkpoint: from an earlier run, or written by this one."""
        return rid in self.run.done_ids or rid in self.written

    def _status(self, text: str) -> None:
        self.run.set_status(text)


def _invalid(extraction: ExtractionRun[Any]) -> ExtractionError:
    message = ("The Batch API answer failed validation and batch_fallback='report' sends no reask. "
               f"The attempt:\n{describe_attempt(extraction.current)}")
    error = ExtractionError(message, attempts=list(extraction.trace.attempts))
    error.attach(usage=extraction.usage, trace=extraction.trace)
    return error


def _not_run(entry: dict[str, Any]) -> bool:
    return ((entry.get("error") or {}).get("code") or "") in NOT_RUN


def _failure(entry: dict[str, Any] | None, chunk: dict[str, Any]) -> TransportError:
    """The typed error for an item the job didn't answer with a 200."""
    if entry is None:
        status = chunk.get("status")
        why = f": {chunk['errors']}" if chunk.get("errors") else ""
        return ServerError(f"The batch job {chunk.get('batch_id')} ended '{status}' without an answer "
                           f"for this item{why}")
    response = entry.get("response") or {}
    code = response.get("status_code")
    error = entry.get("error") or (response.get("body") or {}).get("error") or {}
    message = error.get("message") if isinstance(error, dict) else str(error)
    text = f"The batch job answered this item with {f'HTTP {code}' if code else 'an error'}: {message}"
    if code == 429:
        return RateLimitError(text, status_code=code)
    if code is None or code >= 500 or code in (408, 409):
        return ServerError(text, status_code=code)
    return RequestRejectedError(text, status_code=code)
