"""What happened, attempt by attempt, and the debug printout of it.

Every record is scrubbed of secrets when shown (see :mod:`schemagen.redact`).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from schemagen.exchange import Completion, Request, Usage
from schemagen.redact import redact, redact_text


@dataclass
class TransportRetry:
    error: str
    wait_s: float


@dataclass
class AttemptRecord:
    """One request and what became of it."""

    number: int
    request: Request
    prompt: str | None = None  # the exact prompt text, when schemagen rendered it (raw/local)
    completion: Completion | None = None
    output: str = ""  # the raw text the arguments were read from
    source: str = ""  # where the arguments came from: "tool_calls", "content:<parser>"
    notes: list[str] = field(default_factory=list)  # repairs, tolerances, parsers tried
    errors: str | None = None  # validation/parse errors, as sent back in a reask
    outcome: str = "pending"  # "ok", "invalid", "no_call", "truncated", "refused", "transport"
    retries: list[TransportRetry] = field(default_factory=list)
    elapsed_s: float = 0.0
    bound: str | None = None  # how a derived max_tokens was chosen (None: the caller's, or none)

    @property
    def usage(self) -> Usage:
        return self.completion.usage if self.completion else Usage()

    def to_dict(self) -> dict[str, Any]:
        return redact({
            "number": self.number,
            "endpoint": self.request.endpoint,
            "request": self.request.body,
            "prompt": self.prompt,
            "response": self.completion.raw if self.completion else None,
            "output": self.output,
            "source": self.source,
            "notes": self.notes,
            "errors": self.errors,
            "outcome": self.outcome,
            "bound": self.bound,
            "transport_retries": [{"error": r.error, "wait_s": round(r.wait_s, 3)} for r in self.retries],
            "usage": self.usage.to_dict(),
            "elapsed_s": round(self.elapsed_s, 4),
        })


@dataclass
class Trace:
    """The full story of one extraction."""

    tool: dict[str, Any] | None = None
    schema_changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. lint findings, tool injection
    attempts: list[AttemptRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "schema_changes": self.schema_changes,
            "notes": [redact_text(n) for n in self.notes],
            "attempts": [a.to_dict() for a in self.attempts],
        }


def debug_enabled(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return os.environ.get("SCHEMAGEN_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def describe_attempt(record: AttemptRecord, *, limit: int = 4000) -> str:
    """Plain-text account of an attempt, for error messages (secrets scrubbed)."""
    data = record.to_dict()

    def clip(text: str) -> str:
        return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more characters)"

    parts = [f"--- attempt {record.number} ({record.outcome}) ---"]
    if record.prompt is not None:
        parts.append("prompt (exact text sent):\n" + clip(data["prompt"]))
    parts.append("request:\n" + clip(_dump(data["request"])))
    parts.append("raw output:\n" + clip(data["output"] or _dump(data["response"])))
    if record.bound:
        parts.append(f"bound: {record.bound}")
    if record.notes:
        parts.append("notes:\n" + "\n".join(f"- {n}" for n in data["notes"]))
    if record.errors:
        parts.append("errors:\n" + redact_text(record.errors))
    return "\n".join(parts)


def print_attempt(record: AttemptRecord) -> None:
    """The debug printout (stderr, rich) of one attempt: request, raw response, verdict."""
    from rich.console import Console
    from rich.panel import Panel
    from rich.syntax import Syntax

    console = Console(stderr=True, file=sys.stderr)
    data = record.to_dict()
    title = f"schemagen attempt {record.number}: {record.outcome}"
    if record.prompt is not None:
        console.print(Panel(data["prompt"], title=f"{title} · exact prompt", expand=False))
    console.print(Panel(Syntax(_dump(data["request"]), "json", word_wrap=True), title=f"{title} · request"))
    if data["response"] is not None:
        console.print(Panel(Syntax(_dump(data["response"]), "json", word_wrap=True), title="raw response"))
    for note in data["notes"]:
        console.print(f"[dim]note:[/dim] {note}")
    if record.errors:
        console.print(Panel(redact_text(record.errors), title="errors", style="red"))
