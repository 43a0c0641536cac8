"""The scripted OpenAI-compatible server: one asyncio loop in a background thread.

It serves ``/v1/chat/completions`` and ``/v1/completions`` (each model call answered by the
next scripted behaviour, see :mod:`schemagen.testing.faults`), ``/v1/models``, and the Files
and Batches APIs (:mod:`schemagen.testing.batch_api`). HTTP/1.1 with keep-alive; a
``latency`` or a ``hang`` never blocks other connections, and ``stop()`` is immediate.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import socket
import struct
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from schemagen.testing._wire import JSON, Call, Drop, Hang, Reply, error, ok
from schemagen.testing.batch_api import BatchAPI, public
from schemagen.testing.faults import Behaviour, FromSchema, Respond, rate_limit, status

# --------------------------------------------------------------------------------------
# Recording


@dataclass
class RequestRecord:
    """One HTTP request (or one batch line, with ``batch_id`` set).

    ``headers`` are raw, with lower-case names: ``authorization`` is kept so tests can
    assert the key was sent. It is left out of ``repr`` so it doesn't land in logs.
    """

    seq: int
    time: float  # time.monotonic() at arrival
    method: str
    path: str
    headers: dict[str, str] = field(repr=False)
    raw_body: bytes = field(repr=False)
    body: Any = None  # the parsed JSON body, or None
    index: int | None = None  # model-call index; None for files/batches endpoints
    behaviour: Behaviour | str | None = None
    status: int | None = None  # None while pending, and for hang/reset/disconnect
    finished: float | None = None
    batch_id: str | None = None
    custom_id: str | None = None
    query: dict[str, str] = field(default_factory=dict, repr=False)  # the URL's query parameters

    @property
    def is_model_call(self) -> bool:
        return self.index is not None


# --------------------------------------------------------------------------------------
# The server


def _route(path: str) -> str:
    """The OpenAI route of a path: ``/v1/x``, Azure's ``/openai/deployments/<name>/x`` and ``/openai/x``."""
    if path.startswith("/v1/"):
        return path[3:]
    if path.startswith("/openai/deployments/"):
        return "/" + path.split("/", 4)[4] if path.count("/") >= 4 else path
    if path.startswith("/openai/"):
        return path[len("/openai"):]
    return path


class FaultServer(BatchAPI):
    """A scripted OpenAI-compatible server on 127.0.0.1.

    ``default``: the behaviour when the queue is empty and ``faults`` says nothing (a
    Behaviour, or a callable ``(Call) -> Behaviour``). ``faults``: ``(index) -> Behaviour |
    None``, for load tests. ``latency``: seconds added to every request (or a callable
    ``(seq) -> seconds``), concurrently. ``batch_polls``: how many ``batches.retrieve``
    calls a batch takes to finish (in_progress, [finalizing,] then the final status).
    ``batch_final``: "completed", "expired" (nothing runs; every line gets
    ``batch_expired`` in the error file) or "failed" (fails validation).
    ``batch_output_order``: "input" or "reversed" (OpenAI doesn't promise the order).
    ``record``: keep ``requests`` (turn off for very long benchmarks).
    """

    def __init__(
        self,
        *,
        default: Behaviour | Callable[[Call], Behaviour] | None = None,
        faults: Callable[[int], Behaviour | None] | None = None,
        latency: float | Callable[[int], float] = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        batch_polls: int = 2,
        batch_final: str = "completed",
        batch_output_order: str = "input",
        record: bool = True,
    ) -> None:
        if default is not None and not isinstance(default, Behaviour):
            default = Respond(default)
        self.default: Behaviour = default or FromSchema()
        self.faults = faults
        self.latency = latency
        self.batch_polls: int = max(1, batch_polls)
        self.batch_final = batch_final
        self.batch_output_order = batch_output_order
        self.record = record
        self.host = host
        self.port: int = port
        #: exceptions raised while answering (a bug in a callable, or in this server);
        #: ``stop()`` raises if there are any, so they can't go unnoticed.
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._queue: collections.deque[Behaviour] = collections.deque()
        self._records: list[RequestRecord] = []
        self._seq = itertools.count()
        self._index = itertools.count()
        self._ids = itertools.count(1)
        self._files: dict[str, JSON] = {}
        self._file_data: dict[str, bytes] = {}
        self._batches: dict[str, JSON] = {}
        self._batch_polls: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._stop_future: asyncio.Future[None] | None = None
        self._conns: set[asyncio.Task[None]] = set()

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> FaultServer:
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="fault-server", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._start_error is not None:
            raise RuntimeError("fault server failed to start") from self._start_error
        return self

    def stop(self, *, check: bool = True) -> None:
        """Stop serving, drop every open connection. Raises if answering ever failed
        (``self.errors``), unless ``check=False``."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(self._signal_stop)
            thread.join(10)
        if check and self.errors:
            raise AssertionError("the fault server failed while answering:\n" + "\n".join(self.errors))

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.stop(check=exc_type is None)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no ``/v1``)."""
        if not self._ready.is_set():
            raise RuntimeError("the fault server is not started; use it as a context manager")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, for ``openai.OpenAI(base_url=...)``."""
        return self.url + "/v1"

    # -- scripting --------------------------------------------------------------------

    def enqueue(self, *behaviours: Behaviour) -> FaultServer:
        """Queue behaviours; each answers one model call, in order."""
        with self._lock:
            self._queue.extend(behaviours)
        return self

    script = enqueue

    @property
    def pending(self) -> int:
        """Behaviours still queued."""
        with self._lock:
            return len(self._queue)

    def clear(self) -> None:
        """Empty the queue and forget recorded requests."""
        with self._lock:
            self._queue.clear()
            self._records.clear()

    # -- inspection -------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request so far (a copy of the list), in arrival order."""
        with self._lock:
            return list(self._records)

    @property
    def model_requests(self) -> list[RequestRecord]:
        """Only model calls (chat, completions and batch lines)."""
        return [r for r in self.requests if r.index is not None]

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RequestRecord]:
        """Block until ``count`` requests have arrived (e.g. to know a hang has begun)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            records = self.requests
            if len(records) >= count:
                return records
            time.sleep(0.002)
        raise TimeoutError(f"{len(self.requests)} of {count} requests arrived in {timeout}s")

    @property
    def files(self) -> dict[str, bytes]:
        """Stored file contents by id (uploads and batch outputs)."""
        with self._lock:
            return dict(self._file_data)

    @property
    def batches(self) -> dict[str, JSON]:
        with self._lock:
            return {k: public(v) for k, v in self._batches.items()}

    # -- event loop -------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start()
            self._start_error = exc
            self._ready.set()
        finally:
            loop.close()

    def _signal_stop(self) -> None:
        if self._stop_future is not None and not self._stop_future.done():
            self._stop_future.set_result(None)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop_future = loop.create_future()
        server = await asyncio.start_server(
            self._connection, self.host, self.port, backlog=1024, limit=1 << 20, reuse_address=True)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop_future
        finally:
            server.close()
            for task in list(self._conns):
                task.cancel()
            if self._conns:
                await asyncio.gather(*self._conns, return_exceptions=True)
            await server.wait_closed()

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        abrupt = False
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                except asyncio.LimitOverrunError:
                    writer.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
                    return
                lines = head[:-4].decode("latin-1").split("\r\n")
                try:
                    method, target, version = lines[0].split(" ", 2)
                except ValueError:
                    return
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    name = name.strip().lower()
                    headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
                try:
                    if "chunked" in headers.get("transfer-encoding", "").lower():
                        raw = await self._read_chunked(reader)
                    else:
                        size = int(headers.get("content-length") or 0)
                        raw = await reader.readexactly(size) if size else b""
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
                outcome = await self._answer(method, target, headers, raw)
                if isinstance(outcome, Reply):
                    writer.write(self._encode(outcome, keep_alive))
                    await writer.drain()
                    if not keep_alive:
                        return
                elif isinstance(outcome, Hang):
                    await self._sleep(outcome.seconds)
                    return
                else:
                    if outcome.abrupt:
                        abrupt = True
                        sock = writer.get_extra_info("socket")
                        if sock is not None:
                            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
        except (ConnectionError, asyncio.CancelledError):
            abrupt = True
        finally:
            self._conns.discard(task)
            if abrupt:
                writer.transport.abort()
            else:
                writer.close()

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)

    @staticmethod
    def _encode(reply: Reply, keep_alive: bool) -> bytes:
        reason = _REASONS.get(reply.status, "Status")
        head = [f"HTTP/1.1 {reply.status} {reason}", f"Content-Type: {reply.content_type}",
                f"Content-Length: {len(reply.body)}", "x-request-id: fault-server",
                "Connection: keep-alive" if keep_alive else "Connection: close"]
        head += [f"{k}: {v}" for k, v in reply.headers]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.body

    # -- routing ----------------------------------------------------------------------

    def _new_record(self, method: str, path: str, headers: dict[str, str], raw: bytes,
                    body: Any = None) -> RequestRecord:
        record = RequestRecord(next(self._seq), time.monotonic(), method, path, headers, raw, body)
        if self.record:
            with self._lock:
                self._records.append(record)
        return record

    async def _answer(self, method: str, target: str, headers: dict[str, str], raw: bytes
                      ) -> Reply | Hang | Drop:
        path, _, query = target.partition("?")
        body: Any = None
        if raw and "json" in headers.get("content-type", ""):
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        record = self._new_record(method, path, headers, raw, body)
        record.query = dict(urllib.parse.parse_qsl(query))
        route = _route(path)
        try:
            latency = self.latency(record.seq) if callable(self.latency) else self.latency
            if route in ("/chat/completions", "/completions") and method == "POST":
                endpoint = "chat" if route == "/chat/completions" else "completions"
                if not isinstance(body, dict):
                    record.behaviour = "invalid_json"
                    outcome: Reply | Hang | Drop = error(
                        400, "We could not parse the JSON body of your request.")
                elif body.get("stream"):
                    record.behaviour = "stream_unsupported"
                    outcome = error(400, "The fault server does not stream.")
                else:
                    behaviour, call = self._choose(endpoint, body, len(raw))
                    record.index, record.behaviour = call.index, behaviour
                    await self._sleep(latency + behaviour.delay)
                    outcome = behaviour.outcome(call)
                    latency = 0.0
            else:
                record.behaviour = route
                outcome = self._api(method, route, headers, raw, body)
            await self._sleep(latency)
        except Exception:  # a bug in a test callable or in this server
            self.errors.append(f"{method} {path}:\n{traceback.format_exc()}")
            outcome = error(500, "fault server error; see FaultServer.errors")
        record.status = outcome.status if isinstance(outcome, Reply) else None
        record.finished = time.monotonic()
        return outcome

    def _choose(self, endpoint: str, body: JSON, raw_size: int) -> tuple[Behaviour, Call]:
        with self._lock:
            index = next(self._index)
            behaviour = self._queue.popleft() if self._queue else None
        if behaviour is None and self.faults is not None:
            behaviour = self.faults(index)
        if behaviour is None:
            behaviour = self.default
        call = Call(endpoint, body, index, raw_size)
        while isinstance(behaviour, Respond):
            behaviour = behaviour.fn(call)
        return behaviour, call

    def _api(self, method: str, route: str, headers: dict[str, str], raw: bytes, body: Any) -> Reply:
        parts = [p for p in route.split("/") if p]
        if parts == ["models"] and method == "GET":
            return ok({"object": "list", "data": [
                {"id": "fault-model", "object": "model", "created": 0, "owned_by": "fault-server"}]})
        if parts and parts[0] == "files":
            return self._files_api(method, parts[1:], headers, raw)
        if parts and parts[0] == "batches":
            return self._batches_api(method, parts[1:], body)
        return error(404, f"Unknown route: {method} {route}")

    # -- Files API --------------------------------------------------------------------


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            408: "Request Timeout", 409: "Conflict", 422: "Unprocessable Entity", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m schemagen.testing", description="Serve the scripted OpenAI-compatible fault server."
    )
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--fault-every", type=int, default=0, help="answer every Nth model call with a fault")
    parser.add_argument("--fault-status", type=int, default=429)
    args = parser.parse_args(argv)
    faults = None
    if args.fault_every:
        every, code = args.fault_every, args.fault_status
        faults = lambda i: (rate_limit(retry_after=0) if code == 429 else status(code)) if i % every == every - 1 else None  # noqa: E731, E501
    with FaultServer(port=args.port, latency=args.latency, faults=faults, record=False) as srv:
        print(srv.base_url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
