"""A scripted loopback OpenAI-compatible server, for tests and benchmarks.

Real integration tests run against a real llama.cpp server. This one exists only for
what a real server can't be asked to do on cue: answer 429 with ``Retry-After`` on the
third request, reset the connection, hang until the client times out, return malformed
tool-call arguments, run a Batch API job whose items partly fail.

Standard library only. One asyncio event loop in a background thread serves every
connection (HTTP/1.1 with keep-alive), so a per-request ``latency`` or a ``hang`` never
blocks other requests, and ``stop()`` is immediate.

    from tests.fault_server import FaultServer, tool_call, rate_limit, reset

    with FaultServer() as srv:
        srv.enqueue(rate_limit(retry_after=1), reset(), tool_call({"name": "Ada"}))
        client = openai.OpenAI(base_url=srv.base_url, api_key="test", max_retries=0)
        ...
        assert srv.requests[0].headers["authorization"] == "Bearer test"

Which behaviour answers a model call (``/v1/chat/completions``, ``/v1/completions`` and
each line of a batch): the next one in the queue (``enqueue``); else ``faults(index)``
if that is set and returns a behaviour; else ``default`` (by default
:func:`from_schema`: a tool call whose arguments are a minimal valid instance of the
forced tool's parameters schema). ``index`` counts model calls from 0, in arrival order.

Run standalone (for benchmarks that want the server out of process)::

    python -m tests.fault_server --port 8000 --latency 0.05
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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Behaviour",
    "Call",
    "FaultServer",
    "RequestRecord",
    "completion_text",
    "content",
    "context_length_error",
    "disconnect",
    "example_for_schema",
    "from_schema",
    "hang",
    "malformed_arguments",
    "rate_limit",
    "refusal",
    "reset",
    "respond",
    "status",
    "tool_call",
    "tool_calls",
    "truncated",
]

JSON = dict[str, Any]


# --------------------------------------------------------------------------------------
# What a behaviour decides: a reply, a hang, or a dropped connection.


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"


@dataclass(frozen=True)
class Hang:
    seconds: float


@dataclass(frozen=True)
class Drop:
    abrupt: bool  # True: TCP RST (SO_LINGER 0); False: a clean FIN


@dataclass(frozen=True)
class Call:
    """One model call as a behaviour sees it."""

    endpoint: str  # "chat" or "completions"
    body: JSON
    index: int
    raw_size: int = 0

    @property
    def forced_tool(self) -> JSON | None:
        """The tool the request forces (or its only tool), as the ``function`` dict."""
        tools = [t.get("function", t) for t in self.body.get("tools") or [] if isinstance(t, dict)]
        choice = self.body.get("tool_choice")
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name") or choice.get("name")
            for tool in tools:
                if tool.get("name") == name:
                    return tool
            return {"name": name} if name else None
        if len(tools) == 1 and choice != "none":
            return tools[0]
        return None


# --------------------------------------------------------------------------------------
# Behaviours


class Behaviour:
    """Decides how one model call is answered. ``delay`` adds to the server's latency."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay

    def outcome(self, call: Call) -> Reply | Hang | Drop:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                           if v not in (None, 0.0, ()) and not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


UsageSpec = Mapping[str, int] | bool | None
#: (content, [(tool name, raw arguments)], refusal, finish_reason)
Message = tuple[str | None, list[tuple[str, str]], str | None, str]


class Answer(Behaviour):
    """A 200 answer. Subclasses say what the assistant message holds.

    ``usage``: None estimates it (about 4 characters a token); a mapping overrides any of
    ``prompt_tokens``, ``completion_tokens``, ``cached_tokens``, ``total_tokens``;
    False leaves ``usage`` out of the response, as some servers do.
    """

    def __init__(self, *, usage: UsageSpec = None, model: str | None = None, delay: float = 0.0) -> None:
        super().__init__(delay=delay)
        self.usage = usage
        self.model = model

    def message(self, call: Call) -> Message:
        raise NotImplementedError

    def usage_for(self, call: Call, output: str) -> JSON | None:
        if self.usage is False:
            return None
        spec = dict(self.usage or {})
        prompt = int(spec.get("prompt_tokens", max(1, call.raw_size // 4)))
        completion = int(spec.get("completion_tokens", max(1, len(output) // 4)))
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": int(spec.get("total_tokens", prompt + completion)),
            "prompt_tokens_details": {"cached_tokens": int(spec.get("cached_tokens", 0))},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }

    def outcome(self, call: Call) -> Reply:
        text, calls, refused, finish_reason = self.message(call)
        output = (text or "") + "".join(args for _, args in calls) + (refused or "")
        model = self.model or call.body.get("model") or "fault-model"
        created = int(time.time())
        if call.endpoint == "completions":
            finish = "stop" if finish_reason == "tool_calls" else finish_reason
            body: JSON = {
                "id": f"cmpl-{call.index}",
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "text": output, "logprobs": None, "finish_reason": finish}],
            }
        else:
            message: JSON = {"role": "assistant", "content": text, "refusal": refused}
            if calls:
                message["tool_calls"] = [
                    {"id": f"call_{call.index}_{i}", "type": "function",
                     "function": {"name": name, "arguments": args}}
                    for i, (name, args) in enumerate(calls)
                ]
            body = {
                "id": f"chatcmpl-{call.index}",
                "object": "chat.completion",
                "created": created,
                "model": model,
                "system_fingerprint": "fault-server",
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": finish_reason}],
            }
        usage = self.usage_for(call, output)
        if usage is not None:
            body["usage"] = usage
        return Reply(200, _json_bytes(body))


def _arguments_text(arguments: Any, call: Call) -> str:
    if callable(arguments):
        arguments = arguments(call)
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


class ToolCall(Answer):
    """One tool call. ``arguments``: a dict (sent as JSON), a str (sent verbatim) or a
    callable ``(Call) -> dict | str``. ``name`` defaults to the forced tool's name.

    ``finish_reason`` defaults to "tool_calls" (llama.cpp, vLLM); OpenAI itself says
    "stop" when ``tool_choice`` names a function.
    """

    def __init__(
        self, arguments: Any, name: str | None = None, *, content: str | None = None,
        finish_reason: str = "tool_calls", usage: UsageSpec = None, delay: float = 0.0,
    ) -> None:
        super().__init__(usage=usage, delay=delay)
        self.arguments = arguments
        self.name = name
        self.content = content
        self.finish_reason = finish_reason

    def message(self, call: Call) -> Message:
        name = self.name or (call.forced_tool or {}).get("name") or "tool"
        return self.content, [(name, _arguments_text(self.arguments, call))], None, self.finish_reason


class ToolCalls(Answer):
    """Several tool calls in one message: ``[(name, arguments), ...]``."""

    def __init__(self, calls: Iterable[tuple[str, Any]], *, usage: UsageSpec = None,
                 delay: float = 0.0) -> None:
        super().__init__(usage=usage, delay=delay)
        self.calls = tuple(calls)

    def message(self, call: Call) -> Message:
        return None, [(name, _arguments_text(args, call)) for name, args in self.calls], None, "tool_calls"


class MalformedArguments(ToolCall):
    """A tool call whose ``arguments`` is the given text, typically invalid JSON."""

    def __init__(self, text: str, name: str | None = None, *, usage: UsageSpec = None,
                 delay: float = 0.0) -> None:
        super().__init__(text, name, usage=usage, delay=delay)


class Truncated(ToolCall):
    """``finish_reason="length"`` with the partial arguments received so far."""

    def __init__(self, partial_arguments: str, name: str | None = None, *, usage: UsageSpec = None,
                 delay: float = 0.0) -> None:
        super().__init__(partial_arguments, name, finish_reason="length", usage=usage, delay=delay)


class Content(Answer):
    """A plain assistant message (no tool call). ``text`` may be None (e.g. content_filter)."""

    def __init__(self, text: str | None, finish_reason: str = "stop", *, usage: UsageSpec = None,
                 delay: float = 0.0) -> None:
        super().__init__(usage=usage, delay=delay)
        self.text = text
        self.finish_reason = finish_reason

    def message(self, call: Call) -> Message:
        return self.text, [], None, self.finish_reason


class CompletionText(Content):
    """Text for ``/v1/completions`` (on the chat endpoint it becomes the content)."""


class Refusal(Answer):
    """``message.refusal`` set, ``content`` null. On /v1/completions the text is the refusal."""

    def __init__(self, text: str, *, usage: UsageSpec = None, delay: float = 0.0) -> None:
        super().__init__(usage=usage, delay=delay)
        self.text = text

    def message(self, call: Call) -> Message:
        return None, [], self.text, "stop"


class FromSchema(Answer):
    """A valid answer for whatever the request asks: a tool call with a minimal instance
    of the forced tool's ``parameters``; else JSON content for a ``response_format``
    json_schema; else ``text``."""

    def __init__(self, text: str = "ok", *, usage: UsageSpec = None, delay: float = 0.0) -> None:
        super().__init__(usage=usage, delay=delay)
        self.text = text
        self._cache: dict[str, str] = {}

    def _instance(self, schema: Any) -> str:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._cache:
            self._cache[key] = json.dumps(example_for_schema(schema))
        return self._cache[key]

    def message(self, call: Call) -> Message:
        tool = call.forced_tool
        if tool is not None:
            arguments = self._instance(tool.get("parameters") or {})
            return None, [(tool.get("name") or "tool", arguments)], None, "tool_calls"
        fmt = call.body.get("response_format") or {}
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            return self._instance((fmt.get("json_schema") or {}).get("schema") or {}), [], None, "stop"
        return self.text, [], None, "stop"


_DEFAULT_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model.", "invalid_request_error", None),
    404: ("The model does not exist or you do not have access to it.", "invalid_request_error",
          "model_not_found"),
    408: ("Request timed out.", "server_error", None),
    409: ("Conflict.", "invalid_request_error", None),
    422: ("Unprocessable entity.", "invalid_request_error", None),
    429: ("Rate limit reached for requests. Please try again later.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error",
          None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The server is overloaded or not ready yet.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
}


def openai_error(code: int, message: str | None = None, *, type: str | None = None,
                 error_code: str | None = None, param: str | None = None) -> JSON:
    default_message, default_type, default_code = _DEFAULT_ERRORS.get(
        code, (f"HTTP {code}", "server_error" if code >= 500 else "invalid_request_error", None))
    return {"error": {"message": message or default_message, "type": type or default_type,
                      "param": param, "code": error_code or default_code}}


class Status(Behaviour):
    """An HTTP error (or any status). ``body``: dict (JSON), str/bytes (verbatim) or None
    (an OpenAI-shaped error for the code). ``headers``: dict or pairs."""

    def __init__(self, code: int, body: Any = None, headers: Any = None, *, delay: float = 0.0) -> None:
        super().__init__(delay=delay)
        self.code = code
        self.body = body
        pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
        self.headers = tuple(pairs)

    def outcome(self, call: Call | None) -> Reply:
        body = openai_error(self.code) if self.body is None else self.body
        if isinstance(body, (dict, list)):
            return Reply(self.code, _json_bytes(body), self.headers)
        raw = body.encode() if isinstance(body, str) else bytes(body)
        return Reply(self.code, raw, self.headers, content_type="text/plain; charset=utf-8")


class HangBehaviour(Behaviour):
    """Answer nothing for ``seconds`` (or until the server stops), then close the connection."""

    def __init__(self, seconds: float = 30.0) -> None:
        super().__init__()
        self.seconds = seconds

    def outcome(self, call: Call) -> Hang:
        return Hang(self.seconds)


class DropBehaviour(Behaviour):
    def __init__(self, abrupt: bool, *, delay: float = 0.0) -> None:
        super().__init__(delay=delay)
        self.abrupt = abrupt

    def outcome(self, call: Call) -> Drop:
        return Drop(self.abrupt)

    def __repr__(self) -> str:
        return "reset()" if self.abrupt else "disconnect()"


class Respond(Behaviour):
    """Chooses the behaviour per call: ``fn(Call) -> Behaviour``."""

    def __init__(self, fn: Callable[[Call], Behaviour]) -> None:
        super().__init__()
        self.fn = fn


# Factory functions: the public way to build behaviours.

def tool_call(arguments: Any, name: str | None = None, **kw: Any) -> ToolCall:
    return ToolCall(arguments, name, **kw)


def tool_calls(calls: Iterable[tuple[str, Any]], **kw: Any) -> ToolCalls:
    return ToolCalls(calls, **kw)


def malformed_arguments(text: str = '{"name": "Ada", ', name: str | None = None, **kw: Any) -> ToolCall:
    return MalformedArguments(text, name, **kw)


def truncated(partial_arguments: str, name: str | None = None, **kw: Any) -> ToolCall:
    return Truncated(partial_arguments, name, **kw)


def content(text: str | None, finish_reason: str = "stop", **kw: Any) -> Content:
    return Content(text, finish_reason, **kw)


def completion_text(text: str, finish_reason: str = "stop", **kw: Any) -> Content:
    return CompletionText(text, finish_reason, **kw)


def refusal(text: str = "I can't help with that.", **kw: Any) -> Refusal:
    return Refusal(text, **kw)


def from_schema(text: str = "ok", **kw: Any) -> FromSchema:
    return FromSchema(text, **kw)


def status(code: int, body: Any = None, headers: Any = None, **kw: Any) -> Status:
    return Status(code, body, headers, **kw)


def rate_limit(retry_after: float | str | None = None, retry_after_ms: float | None = None,
               **kw: Any) -> Status:
    """429 with ``Retry-After`` (seconds) and/or ``retry-after-ms``, as OpenAI sends them."""
    headers = []
    if retry_after is not None:
        headers.append(("Retry-After", str(retry_after)))
    if retry_after_ms is not None:
        headers.append(("retry-after-ms", str(retry_after_ms)))
    return Status(429, None, headers, **kw)


def context_length_error(prompt_tokens: int = 9000, max_context: int = 8192, *, style: str = "openai",
                         **kw: Any) -> Status:
    """400 for a prompt over the context window, worded like OpenAI or like llama.cpp."""
    if style == "llama":
        body: JSON = {"error": {
            "code": 400, "type": "exceed_context_size_error",
            "message": "the request exceeds the available context size, try increasing it",
            "n_prompt_tokens": prompt_tokens, "n_ctx": max_context}}
    else:
        body = openai_error(
            400, f"This model's maximum context length is {max_context} tokens. However, your messages "
            f"resulted in {prompt_tokens} tokens. Please reduce the length of the messages.",
            error_code="context_length_exceeded", param="messages")
    return Status(400, body, **kw)


def hang(seconds: float = 30.0) -> HangBehaviour:
    return HangBehaviour(seconds)


def reset(**kw: Any) -> DropBehaviour:
    """Close the TCP connection abruptly (RST, SO_LINGER 0) without a response."""
    return DropBehaviour(True, **kw)


def disconnect(**kw: Any) -> DropBehaviour:
    """Close the connection cleanly (FIN) without a response."""
    return DropBehaviour(False, **kw)


def respond(fn: Callable[[Call], Behaviour]) -> Respond:
    return Respond(fn)


# --------------------------------------------------------------------------------------
# A minimal valid instance of a JSON schema (enough for tool schemas built from models).


def example_for_schema(schema: Any, root: Any = None, _depth: int = 0) -> Any:
    """A small value valid for ``schema``. Not supported: ``pattern``, ``not``, ``if``."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or _depth > 32:
        return None
    again = lambda s: example_for_schema(s, root, _depth + 1)  # noqa: E731
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            if part:
                target = target[part.replace("~1", "/").replace("~0", "~")]
        return again(target)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return again(options[0])
    if schema.get("allOf"):
        merged: JSON = {}
        for part in schema["allOf"]:
            value = again(part)
            if not isinstance(value, dict):
                return value
            merged.update(value)
        return merged
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties") or {}
        return {name: again(props.get(name, {})) for name in schema.get("required", [])}
    if kind == "array" or (kind is None and "items" in schema):
        prefix = [again(s) for s in schema.get("prefixItems") or []]
        count = max(int(schema.get("minItems", 0)) - len(prefix), 0)
        items = schema.get("items")
        if isinstance(items, dict):
            return prefix + [again(items) for _ in range(count)]
        return prefix + [None] * count
    if kind == "string":
        fmt = schema.get("format")
        value = {"date": "2024-01-01", "date-time": "2024-01-01T00:00:00Z", "time": "00:00:00",
                 "email": "a@example.com", "uri": "https://example.com/",
                 "uuid": "00000000-0000-4000-8000-000000000000"}.get(fmt, "")
        return value or "x" * max(int(schema.get("minLength", 1)), 0)
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        value = low if low is not None else (min(0, high) if high is not None else 0)
        if "exclusiveMinimum" in schema and "minimum" not in schema:
            value = value + 1 if kind == "integer" else value + 0.5
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return False
    return None


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


def _now() -> int:
    return int(time.time())


def _route(path: str) -> str:
    """The OpenAI route of a path: ``/v1/x``, Azure's ``/openai/deployments/<name>/x`` and ``/openai/x``."""
    if path.startswith("/v1/"):
        return path[3:]
    if path.startswith("/openai/deployments/"):
        return "/" + path.split("/", 4)[4] if path.count("/") >= 4 else path
    if path.startswith("/openai/"):
        return path[len("/openai"):]
    return path


class FaultServer:
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
        self.batch_polls = max(1, batch_polls)
        self.batch_final = batch_final
        self.batch_output_order = batch_output_order
        self.record = record
        self.host = host
        self.port = port
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
            return {k: _public(v) for k, v in self._batches.items()}

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
        parts = []
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
                    outcome: Reply | Hang | Drop = _error(
                        400, "We could not parse the JSON body of your request.")
                elif body.get("stream"):
                    record.behaviour = "stream_unsupported"
                    outcome = _error(400, "The fault server does not stream.")
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
            outcome = _error(500, "fault server error; see FaultServer.errors")
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
            return _ok({"object": "list", "data": [
                {"id": "fault-model", "object": "model", "created": 0, "owned_by": "fault-server"}]})
        if parts and parts[0] == "files":
            return self._files_api(method, parts[1:], headers, raw)
        if parts and parts[0] == "batches":
            return self._batches_api(method, parts[1:], body)
        return _error(404, f"Unknown route: {method} {route}")

    # -- Files API --------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        sep = "-" if prefix == "file" else "_"
        return f"{prefix}{sep}fault{next(self._ids):06d}"

    def _store_file(self, data: bytes, filename: str, purpose: str) -> JSON:
        obj = {"id": self._new_id("file"), "object": "file", "bytes": len(data), "created_at": _now(),
               "filename": filename, "purpose": purpose, "status": "processed", "expires_at": None,
               "status_details": None}
        with self._lock:
            self._files[obj["id"]] = obj
            self._file_data[obj["id"]] = data
        return obj

    def _files_api(self, method: str, parts: list[str], headers: dict[str, str], raw: bytes) -> Reply:
        if not parts and method == "POST":
            fields = _parse_multipart(headers.get("content-type", ""), raw)
            if "file" not in fields:
                return _error(400, "Missing file in multipart body.", param="file")
            filename, data = fields["file"]
            purpose = fields.get("purpose", (None, b""))[1].decode()
            if purpose not in ("batch", "assistants", "fine-tune", "vision", "user_data", "evals"):
                return _error(400, f"Invalid purpose: {purpose!r}.", param="purpose")
            return _ok(self._store_file(data, filename or "upload", purpose))
        if not parts and method == "GET":
            with self._lock:
                data = list(self._files.values())
            return _ok({"object": "list", "data": data, "has_more": False})
        with self._lock:
            obj = self._files.get(parts[0])
            data = self._file_data.get(parts[0], b"")
        if obj is None:
            return _error(404, f"No such File object: {parts[0]}", param="id")
        if len(parts) == 1 and method == "GET":
            return _ok(obj)
        if len(parts) == 1 and method == "DELETE":
            with self._lock:
                self._files.pop(parts[0], None)
                self._file_data.pop(parts[0], None)
            return _ok({"id": parts[0], "object": "file", "deleted": True})
        if parts[1:] == ["content"] and method == "GET":
            return Reply(200, data, content_type="application/octet-stream")
        return _error(404, "Unknown files route.")

    # -- Batches API ------------------------------------------------------------------

    def _batches_api(self, method: str, parts: list[str], body: Any) -> Reply:
        if not parts and method == "POST":
            return self._create_batch(body if isinstance(body, dict) else {})
        if not parts and method == "GET":
            with self._lock:
                data = [_public(b) for b in self._batches.values()]
            return _ok({"object": "list", "data": data, "has_more": False,
                        "first_id": data[0]["id"] if data else None,
                        "last_id": data[-1]["id"] if data else None})
        with self._lock:
            batch = self._batches.get(parts[0])
        if batch is None:
            return _error(404, f"No batch found with id '{parts[0]}'.")
        if len(parts) == 1 and method == "GET":
            return _ok(self._poll_batch(batch))
        if parts[1:] == ["cancel"] and method == "POST":
            if batch["status"] not in ("validating", "in_progress", "finalizing"):
                return _error(409, f"Cannot cancel a batch with status '{batch['status']}'.")
            batch.update(status="cancelling", cancelling_at=_now())
            return _ok(dict(batch))
        return _error(404, "Unknown batches route.")

    def _create_batch(self, body: JSON) -> Reply:
        endpoint = body.get("endpoint")
        if endpoint in ("/chat/completions", "/completions"):  # Azure OpenAI's form
            endpoint = "/v1" + endpoint
        if endpoint not in ("/v1/chat/completions", "/v1/completions"):
            return _error(400, f"Unsupported endpoint for the fault server: {endpoint!r}.", param="endpoint")
        if body.get("completion_window") != "24h":
            return _error(400, "completion_window must be '24h'.", param="completion_window")
        with self._lock:
            found = body.get("input_file_id") in self._files
        if not found:
            return _error(404, f"No such File object: {body.get('input_file_id')}", param="input_file_id")
        created = _now()
        batch: JSON = {
            "id": self._new_id("batch"), "object": "batch", "endpoint": endpoint, "errors": None,
            "input_file_id": body["input_file_id"], "completion_window": "24h", "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": created,
            "in_progress_at": None, "expires_at": created + 86400, "finalizing_at": None,
            "completed_at": None, "failed_at": None, "expired_at": None, "cancelling_at": None,
            "cancelled_at": None, "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"), "model": None, "usage": None,
        }
        with self._lock:
            self._batches[batch["id"]] = batch
            self._batch_polls[batch["id"]] = 0
        return _ok(dict(batch))

    def _poll_batch(self, batch: JSON) -> JSON:
        with self._lock:
            self._batch_polls[batch["id"]] += 1
            polls = self._batch_polls[batch["id"]]
        state = batch["status"]
        if state == "cancelling":
            batch.update(status="cancelled", cancelled_at=_now())
        elif state in ("validating", "in_progress", "finalizing"):
            if state == "validating":
                lines, errors = self._validate_batch(batch)
                if errors or self.batch_final == "failed":
                    errors = errors or [{"code": "invalid_request", "message": "The batch failed validation.",
                                         "param": None, "line": None}]
                    batch.update(status="failed", failed_at=_now(), errors={"object": "list", "data": errors})
                    return dict(batch)
                batch["_lines"] = lines
                batch.update(status="in_progress", in_progress_at=_now(),
                             request_counts={"total": len(lines), "completed": 0, "failed": 0})
            if polls >= self.batch_polls:
                self._finish_batch(batch)
            elif polls == self.batch_polls - 1 and self.batch_polls >= 3:
                batch.update(status="finalizing", finalizing_at=_now())
        return _public(batch)

    def _validate_batch(self, batch: JSON) -> tuple[list[JSON], list[JSON]]:
        with self._lock:
            data = self._file_data.get(batch["input_file_id"], b"")
        lines: list[JSON] = []
        errors: list[JSON] = []
        seen: set[str] = set()
        for number, text in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if not text.strip():
                continue
            try:
                item = json.loads(text)
            except ValueError:
                errors.append({"code": "invalid_json_line", "line": number, "param": None,
                               "message": f"Line {number} is not valid JSON."})
                continue
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            if not isinstance(custom_id, str) or not isinstance(item.get("body"), dict):
                errors.append({"code": "missing_required_parameter", "line": number, "param": "custom_id",
                               "message": f"Line {number} needs a custom_id and a body."})
            elif item.get("url") not in (batch["endpoint"], batch["endpoint"].removeprefix("/v1")):
                errors.append({"code": "mismatched_url", "line": number, "param": "url",
                               "message": f"Line {number} has url {item.get('url')!r}, "
                               f"the batch is for {batch['endpoint']!r}."})
            elif custom_id in seen:
                errors.append({"code": "duplicate_custom_id", "line": number, "param": "custom_id",
                               "message": f"Duplicate custom_id {custom_id!r}."})
            else:
                seen.add(custom_id)
                lines.append(item)
        if not lines and not errors:
            errors.append({"code": "empty_file", "line": None, "param": None,
                           "message": "The input file has no requests."})
        return lines, errors

    def _finish_batch(self, batch: JSON) -> None:
        lines: list[JSON] = batch.pop("_lines", [])
        endpoint = "chat" if batch["endpoint"] == "/v1/chat/completions" else "completions"
        outputs: list[JSON] = []
        failures: list[JSON] = []
        usage = {"input_tokens": 0, "output_tokens": 0, "cached": 0}
        expired = self.batch_final == "expired"
        for n, item in enumerate(lines):
            line: JSON = {"id": f"batch_req_{batch['id']}_{n}", "custom_id": item["custom_id"],
                          "response": None, "error": None}
            if expired:
                line["error"] = {"code": "batch_expired", "message":
                                 "This request could not be executed before the completion window expired."}
                failures.append(line)
                continue
            raw = _json_bytes(item["body"])
            record = self._new_record("POST", item["url"], {}, raw, item["body"])
            record.batch_id, record.custom_id = batch["id"], item["custom_id"]
            behaviour, call = self._choose(endpoint, item["body"], len(raw))
            record.index, record.behaviour = call.index, behaviour
            outcome = behaviour.outcome(call)
            record.finished = time.monotonic()
            if isinstance(outcome, Reply):
                record.status = outcome.status
                try:
                    response_body: Any = json.loads(outcome.body)
                except ValueError:
                    response_body = outcome.body.decode("utf-8", "replace")
                line["response"] = {"status_code": outcome.status, "request_id": f"req_{batch['id']}_{n}",
                                    "body": response_body}
                if outcome.status == 200:
                    u = response_body.get("usage") or {}
                    usage["input_tokens"] += u.get("prompt_tokens", 0)
                    usage["output_tokens"] += u.get("completion_tokens", 0)
                    usage["cached"] += (u.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
                    outputs.append(line)
                else:
                    failures.append(line)
            else:
                line["error"] = {"code": "server_error",
                                 "message": "The request failed: the server dropped the connection."}
                failures.append(line)
        if self.batch_output_order == "reversed":
            outputs.reverse()
            failures.reverse()
        now = _now()
        if outputs:
            data = b"".join(_json_bytes(x) + b"\n" for x in outputs)
            name = f"{batch['id']}_output.jsonl"
            batch["output_file_id"] = self._store_file(data, name, "batch_output")["id"]
        if failures:
            data = b"".join(_json_bytes(x) + b"\n" for x in failures)
            name = f"{batch['id']}_error.jsonl"
            batch["error_file_id"] = self._store_file(data, name, "batch_output")["id"]
        batch.update(
            request_counts={"total": len(lines), "completed": len(outputs), "failed": len(failures)},
            usage={"input_tokens": usage["input_tokens"],
                   "input_tokens_details": {"cached_tokens": usage["cached"]},
                   "output_tokens": usage["output_tokens"],
                   "output_tokens_details": {"reasoning_tokens": 0},
                   "total_tokens": usage["input_tokens"] + usage["output_tokens"]},
            finalizing_at=batch["finalizing_at"] or now,
        )
        if expired:
            batch.update(status="expired", expired_at=now)
        else:
            batch.update(status="completed", completed_at=now)


def _public(batch: JSON) -> JSON:
    return {k: v for k, v in batch.items() if not k.startswith("_")}


def _ok(obj: Any) -> Reply:
    return Reply(200, _json_bytes(obj))


def _error(code: int, message: str, *, param: str | None = None) -> Reply:
    return Reply(code, _json_bytes(openai_error(code, message, param=param)))


def _parse_multipart(content_type: str, raw: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``{field: (filename, data)}`` from a multipart/form-data body."""
    boundary = None
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        return {}
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in raw.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.partition(b"\r\n\r\n")
        data = data[:-2] if data.endswith(b"\r\n") else data
        name = filename = None
        for line in head.decode("utf-8", "replace").split("\r\n"):
            if line.lower().startswith("content-disposition:"):
                for param in line.split(";")[1:]:
                    key, _, value = param.strip().partition("=")
                    if key == "name":
                        name = value.strip('"')
                    elif key == "filename":
                        filename = value.strip('"')
        if name:
            fields[name] = (filename, data)
    return fields


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            408: "Request Timeout", 409: "Conflict", 422: "Unprocessable Entity", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the scripted OpenAI-compatible fault server.")
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
