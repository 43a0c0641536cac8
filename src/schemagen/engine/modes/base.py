"""A mode pairs a renderer with a parser: how a conversation becomes a request, and
how a completion becomes arguments. Both halves are pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from schemagen.exchange import Completion, Endpoint, Request
from schemagen.parse.recover import Recovered
from schemagen.schema import ToolSpec


@dataclass(frozen=True)
class RenderInput:
    spec: ToolSpec
    messages: Sequence[Mapping[str, Any]]
    model: str
    params: Mapping[str, Any]
    template: Any = None  # a ChatTemplate, for modes that render the prompt themselves
    constrain: bool = False  # ask the backend to enforce the output schema itself
    single_tool_call: bool = True  # send parallel_tool_calls: false
    relax: frozenset[str] = frozenset()  # optional parts the server refused (json_object's schema)


@dataclass(frozen=True)
class Rendered:
    request: Request
    prompt: str | None = None  # the exact prompt text, when the mode rendered one
    notes: tuple[str, ...] = field(default=())


class Mode(Protocol):
    name: str
    endpoint: Endpoint

    def render(self, inp: RenderInput) -> Rendered: ...

    def recover(self, spec: ToolSpec, completion: Completion, request: Request | None = None) -> Recovered:
        """Arguments from ``completion``; ``request`` is the one that produced it (its
        ``constraint`` says whether the output is bare arguments)."""
        ...
