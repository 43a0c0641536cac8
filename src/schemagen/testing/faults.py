"""Scripted behaviours: how the fault server answers one model call.

Each constructor returns a :class:`Behaviour`; queue them with ``FaultServer.enqueue``:
answers (``tool_call``, ``content``, ``refusal``, ``truncated``, ``malformed_arguments``,
``from_schema``), HTTP errors (``status``, ``rate_limit`` with ``Retry-After``,
``context_length_error``), and transport faults (``hang``, ``reset``, ``disconnect``).
``respond(fn)`` decides per call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from schemagen.testing._wire import JSON, Call, Drop, Hang, Reply, json_bytes, openai_error
from schemagen.testing.instances import example_for_schema

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
        spec: dict[str, int] = dict(self.usage) if isinstance(self.usage, Mapping) else {}
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
        return Reply(200, json_bytes(body))


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
        self.calls: tuple[tuple[str, Any], ...] = tuple(calls)

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

class Status(Behaviour):
    """An HTTP error (or any status). ``body``: dict (JSON), str/bytes (verbatim) or None
    (an OpenAI-shaped error for the code). ``headers``: dict or pairs."""

    def __init__(self, code: int, body: Any = None, headers: Any = None, *, delay: float = 0.0) -> None:
        super().__init__(delay=delay)
        self.code = code
        self.body = body
        pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
        self.headers: tuple[tuple[str, str], ...] = tuple(pairs)

    def outcome(self, call: Call | None) -> Reply:
        body = openai_error(self.code) if self.body is None else self.body
        if isinstance(body, (dict, list)):
            return Reply(self.code, json_bytes(body), self.headers)
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
