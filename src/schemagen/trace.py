"""What happened, attempt by attempt, and the debug printout of it.

Every record is scrubbed of secrets when shown (see :mod:`schemagen.redact`).
"""

from __future__ import annotations

import json
import os
import sys
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from schemagen.exchange import Completion, Request, Usage
from schemagen.grounding import Citation
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
    mode: str = ""  # the output mode this attempt was rendered in
    reasoning: str = ""  # reasoning text taken out of the completion before parsing
    citations: list[Citation] = field(default_factory=list)  # grounded values: found? where?

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
            "mode": self.mode,
            "reasoning": self.reasoning,
            "grounding": [c.to_dict() for c in self.citations],
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
    mode: str | None = None  # the mode the extraction ended in
    steps: list[dict[str, str]] = field(default_factory=list)  # mode="auto" step-downs, in order

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "schema_changes": self.schema_changes,
            "notes": [redact_text(n) for n in self.notes],
            "mode": self.mode,
            "steps": redact(self.steps),
            "attempts": [a.to_dict() for a in self.attempts],
        }


def debug_enabled(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return os.environ.get("SCHEMAGEN_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


#: How :func:`visible` marks what can't be seen; printed above every prompt it shows.
VISIBLE_LEGEND = "↵ newline, ⇥ tab, · trailing space, ⟨U+…⟩ other invisible characters"


def _mark(ch: str) -> str:
    if ch == "\t":
        return "⇥"
    if ch == "\r":
        return "␍"
    if ch != " " and unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp", "Co", "Cn"):
        return f"⟨U+{ord(ch):04X}⟩"
    return ch


def visible(text: str) -> str:
    """``text`` with its invisible characters shown (see :data:`VISIBLE_LEGEND`); line breaks are
    kept after their ↵ so the layout stays readable. Special tokens are text already and stay as
    written (``<|im_start|>``)."""
    lines = []
    for line in text.split("\n"):
        body = line.rstrip(" ")
        lines.append("".join(map(_mark, body)) + "·" * (len(line) - len(body)))
    return "↵\n".join(lines)


def _clip_middle(text: str, limit: int) -> str:
    """The start and (mostly) the end of a long prompt: its end is where templates go wrong."""
    if len(text) <= limit:
        return text
    head = limit // 4
    return f"{text[:head]}\n... ({len(text) - limit} characters left out) ...\n{text[-(limit - head):]}"


def _without_prompt(body: dict[str, Any]) -> dict[str, Any]:
    return {k: ("<the prompt above>" if k == "prompt" else v) for k, v in body.items()}


def describe_attempt(record: AttemptRecord, *, limit: int = 4000) -> str:
    """Plain-text account of an attempt, for error messages (secrets scrubbed).

    When schemagen rendered the prompt (raw mode) it is shown exactly, invisible characters
    marked, followed by the raw completion and what the parsers made of it.
    """
    data = record.to_dict()

    def clip(text: str) -> str:
        return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more characters)"

    mode = f", mode {record.mode}" if record.mode else ""
    parts = [f"--- attempt {record.number} ({record.outcome}{mode}) ---"]
    if record.prompt is not None:
        prompt = data["prompt"]
        parts.append(f"prompt (exact text sent, {len(prompt)} characters; {VISIBLE_LEGEND}):\n"
                     + _clip_middle(visible(prompt), limit))
        parts.append(f"prompt ends with: {prompt[-40:]!r}")
        parts.append("request:\n" + clip(_dump(_without_prompt(data["request"]))))
        completion = record.completion
        if completion is not None:
            text = redact_text(completion.text)
            parts.append(f"raw completion (exact text received, {len(text)} characters, "
                         f"finish_reason={completion.finish_reason}):\n" + clip(visible(text)))
        if record.source:
            parts.append(f"arguments read by {record.source}:\n" + clip(data["output"]))
    else:
        parts.append("request:\n" + clip(_dump(data["request"])))
        parts.append("raw output:\n" + clip(data["output"] or _dump(data["response"])))
    if record.bound:
        parts.append(f"bound: {record.bound}")
    if record.reasoning:
        parts.append("reasoning (left out of the parse):\n" + clip(redact_text(record.reasoning)))
    if record.notes:
        parts.append("notes:\n" + "\n".join(f"- {n}" for n in data["notes"]))
    if record.errors:
        parts.append("errors:\n" + redact_text(record.errors))
    return "\n".join(parts)


def print_attempt(record: AttemptRecord) -> None:
    """The debug printout (stderr, rich) of one attempt: request, raw response, verdict.

    Text from the model or the template is printed as plain text, never as rich markup, so
    markers like ``[TOOL_CALLS]`` appear as they are.
    """
    from rich.console import Console
    from rich.panel import Panel
    from rich.syntax import Syntax
    from rich.text import Text

    console = Console(stderr=True, file=sys.stderr)
    data = record.to_dict()
    title = f"schemagen attempt {record.number}: {record.outcome}"
    if record.mode:
        title += f" · mode {record.mode}"
    request = data["request"]
    if record.prompt is not None:
        console.print(Panel(Text(visible(data["prompt"])), title=f"{title} · exact prompt",
                            subtitle=VISIBLE_LEGEND, expand=False))
        request = _without_prompt(request)
    console.print(Panel(Syntax(_dump(request), "json", word_wrap=True), title=f"{title} · request"))
    if record.prompt is not None and record.completion is not None:
        finish = record.completion.finish_reason
        console.print(Panel(Text(visible(redact_text(record.completion.text))),
                            title=f"raw completion · finish_reason={finish}", expand=False))
    if data["response"] is not None:
        console.print(Panel(Syntax(_dump(data["response"]), "json", word_wrap=True), title="raw response"))
    if record.reasoning:
        console.print(Panel(Text(redact_text(record.reasoning)), title="reasoning (not parsed)", style="dim"))
    for note in data["notes"]:
        console.print(Text.assemble(("note: ", "dim"), note))
    if record.errors:
        console.print(Panel(Text(redact_text(record.errors)), title="errors", style="red"))
