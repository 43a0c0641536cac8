"""Plain data passed between the stages: what render produces, what a backend returns.

No I/O here. Backends turn a :class:`Request` into a :class:`Completion`; render and
parse only ever see these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Endpoint = Literal["chat", "completions"]


@dataclass(frozen=True)
class Usage:
    """Token usage, summed with ``+`` over attempts."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    requests: int = 0
    cost: float | None = None  # in USD, only when the model's price is known
    reasoning_tokens: int = 0  # of completion_tokens, those spent reasoning (already counted in them)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        both_unknown = self.cost is None and other.cost is None
        cost = None if both_unknown else (self.cost or 0.0) + (other.cost or 0.0)
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            requests=self.requests + other.requests,
            cost=cost,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "total_tokens": self.total_tokens,
            "requests": self.requests,
        }
        if self.reasoning_tokens:
            out["reasoning_tokens"] = self.reasoning_tokens
        if self.cost is not None:
            out["cost"] = round(self.cost, 8)
        return out

    @classmethod
    def from_openai(cls, usage: Any) -> Usage:
        """Read an OpenAI-style ``usage`` object or dict; missing fields count as zero."""
        if usage is None:
            return cls(requests=1)
        if not isinstance(usage, dict):
            usage = usage.model_dump() if hasattr(usage, "model_dump") else dict(vars(usage))
        details = usage.get("prompt_tokens_details") or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        reasoning = int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
        reasoning = reasoning or int(usage.get("reasoning_tokens") or 0)
        # OpenAI counts reasoning inside completion_tokens; a server whose total shows it left
        # them out gets them added, so budgets and cost see every token paid for.
        total = int(usage.get("total_tokens") or 0)
        if reasoning and total >= prompt + completion + reasoning:
            completion += reasoning
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=int((details or {}).get("cached_tokens") or 0),
            requests=1,
            reasoning_tokens=reasoning,
        )


@dataclass(frozen=True)
class Request:
    """One request, exactly as it goes on the wire.

    ``body`` is the JSON body for ``/v1/chat/completions`` (endpoint="chat") or
    ``/v1/completions`` (endpoint="completions"). ``constraint`` is a JSON schema the
    output must match, for backends that enforce one themselves (local generation).
    ``source_text`` is the input text, sent with a constraint: grounded strings are spans of it,
    and it bounds free strings when a local answer that looped is retried. ``avoid_loops`` marks
    a reask after an answer the repetition guard stopped: a backend that can rule repeats out
    (the local one) does so from the start instead of looping again first.
    """

    endpoint: Endpoint
    body: dict[str, Any]
    constraint: dict[str, Any] | None = None
    #: Per-call transport options that never go in the body: ``headers``, ``params``
    #: (the query), ``timeout`` (from ``extra_headers=``, ``extra_query=``, ``timeout=``).
    options: dict[str, Any] = field(default_factory=dict)
    source_text: str | None = None
    avoid_loops: bool = False

    @property
    def max_tokens(self) -> int | None:
        value = self.body.get("max_tokens", self.body.get("max_completion_tokens"))
        return int(value) if value is not None else None


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # the raw JSON text, exactly as the server sent it
    id: str | None = None


@dataclass(frozen=True)
class Completion:
    """What came back, normalised across backends. ``raw`` keeps the server's JSON."""

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    refusal: str | None = None
    usage: Usage = field(default_factory=lambda: Usage(requests=1))
    raw: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what the backend changed on the way (e.g. a field the server refused)

    @property
    def text(self) -> str:
        """The content, or '' when there is none."""
        return self.content or ""
