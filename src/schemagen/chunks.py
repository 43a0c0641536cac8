"""Streamed chunks: the deltas a backend yields while a completion arrives, and the
accumulator that puts OpenAI-style SSE chunks back together. Pure (no I/O).

Moved here from ``backends/openai_compat.py`` so streaming drivers and tests can use it
without the HTTP backend; that module re-exports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from schemagen.engine.repetition import REPETITION, RepetitionGuard
from schemagen.exchange import Endpoint, Request


@dataclass(frozen=True)
class Delta:
    """A piece of a completion as it arrives: ``content`` text, or a tool call's ``arguments``."""

    channel: Literal["content", "arguments"]
    text: str
    index: int = 0  # the tool call's index, for ``arguments``


GuardFactory = Callable[[], RepetitionGuard]


class StreamAccumulator:
    """Puts streamed chunks back together into a non-streamed response body. Pure.

    ``add(chunk)`` returns True when the repetition guard fired and the stream should
    be closed. Without a usage chunk (servers that ignore ``stream_options``), the
    usage is estimated: prompt tokens counted from the request, one completion token
    per chunk that carried text (what llama.cpp and OpenAI send).
    """

    def __init__(self, endpoint: Endpoint, guard: GuardFactory | None = RepetitionGuard) -> None:
        self.endpoint = endpoint
        self._guard = guard
        self._guards: dict[object, RepetitionGuard] = {}
        self.content: str = ""
        self.refusal: str = ""
        self.reasoning: dict[str, str] = {}  # reasoning_content / reasoning deltas, kept for the trace
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: Any = None
        self.chunks_with_text: int = 0
        self.fields: dict[str, Any] = {}
        self.repetition: str | None = None
        self.deltas: list[Delta] = []  # since the last take(); read by streaming drivers

    def _grow(self, key: object, delta: str) -> bool:
        if self._guard is None or not delta:
            return False
        guard = self._guards.get(key)
        if guard is None:
            guard = self._guards[key] = self._guard()
        if guard.feed(delta):
            self.repetition = str(guard.found)
            return True
        return False

    def add(self, chunk: Any) -> bool:
        if not isinstance(chunk, dict):
            return False
        for key in ("id", "model", "created", "system_fingerprint"):
            if key in chunk and key not in self.fields:
                self.fields[key] = chunk[key]
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        fired = False
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            if self.endpoint == "completions":
                text = choice.get("text") or ""
                fired |= self._take_text(text)
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content") or ""
            self.refusal += delta.get("refusal") or ""
            for name in ("reasoning_content", "reasoning"):
                if isinstance(delta.get(name), str):
                    self.reasoning[name] = self.reasoning.get(name, "") + delta[name]
            fired |= self._take_text(text)
            for tc in delta.get("tool_calls") or ():
                index = int(tc.get("index", 0))
                call = self.calls.setdefault(index, {"id": None, "name": "", "arguments": ""})
                call["id"] = call["id"] or tc.get("id")
                fn = tc.get("function") or {}
                name = fn.get("name") or ""
                if name and name != call["name"]:  # llama.cpp repeats the name in every delta
                    call["name"] += name
                piece = fn.get("arguments") or ""
                if piece:
                    call["arguments"] += piece
                    self.deltas.append(Delta("arguments", piece, index))
                    self.chunks_with_text += 1
                    fired |= self._grow(("call", index), piece)
        return fired

    def _take_text(self, text: str) -> bool:
        if not text:
            return False
        self.content += text
        self.deltas.append(Delta("content", text))
        self.chunks_with_text += 1
        return self._grow("content", text)

    def take(self) -> list[Delta]:
        """The deltas added since the last call."""
        deltas, self.deltas = self.deltas, []
        return deltas

    def response(self, request: Request, model: str) -> dict[str, Any]:
        """The body a non-streamed call would have returned (plus what streaming adds)."""
        finish = REPETITION if self.repetition else self.finish_reason
        if self.endpoint == "completions":
            choice: dict[str, Any] = {"index": 0, "text": self.content, "finish_reason": finish}
        else:
            message: dict[str, Any] = {"role": "assistant", "content": self.content or None}
            if self.refusal:
                message["refusal"] = self.refusal
            message.update(self.reasoning)
            if self.calls:
                message["tool_calls"] = [
                    {"id": c["id"], "type": "function",
                     "function": {"name": c["name"], "arguments": c["arguments"]}}
                    for _, c in sorted(self.calls.items())
                ]
            choice = {"index": 0, "message": message, "finish_reason": finish}
        data: dict[str, Any] = {**self.fields, "choices": [choice], "streamed": True}
        if self.usage is not None:
            data["usage"] = self.usage
        else:
            from schemagen.tokens import count_request, counter_for

            prompt = count_request(request, counter_for(model))
            data["usage"] = {"prompt_tokens": prompt, "completion_tokens": self.chunks_with_text,
                             "total_tokens": prompt + self.chunks_with_text}
            data["usage_estimated"] = True
        if self.repetition:
            data["repetition"] = self.repetition
        return data


__all__ = ["Delta", "GuardFactory", "StreamAccumulator"]
