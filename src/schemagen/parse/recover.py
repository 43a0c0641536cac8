"""Stage 4: completion -> decoded arguments -> validated value. Pure functions.

Tolerant on the way in (tool_calls, then native tool-call text or JSON in the
content, repaired where broken), strict on the way out (Pydantic decides).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from schemagen.exchange import Completion
from schemagen.parse.formats import ParseReport, parse_tool_calls
from schemagen.parse.jsonfix import NotJSON, loads_lenient
from schemagen.schema import ToolSpec


@dataclass
class Recovered:
    """Arguments recovered from a completion, and how."""

    arguments: Any
    source: str  # "tool_calls" or "content:<parser>"
    raw: str  # the text the arguments came from
    notes: list[str] = field(default_factory=list)
    reports: list[ParseReport] = field(default_factory=list)


class NoToolCall(ValueError):
    """The completion holds nothing that could be the tool's arguments."""

    def __init__(self, message: str, reports: list[ParseReport] | None = None) -> None:
        self.reports: list[ParseReport] = reports or []
        super().__init__(message)


def _pick_call(spec: ToolSpec, reports: list[ParseReport]) -> Any | None:
    for report in reversed(reports):
        for call in report.calls:
            if call.name in (None, spec.name):
                return call
    return None


def recover_from_text(spec: ToolSpec, text: str, *, fmt: str = "auto") -> Recovered:
    """Arguments from free text: native tool-call markup, fenced or in-prose JSON."""
    reports = parse_tool_calls(text, fmt=fmt, schema=spec.parameters)
    call = _pick_call(spec, reports)
    if call is None:
        tried = ", ".join(r.parser for r in reports) or "none"
        raise NoToolCall(f"no `{spec.name}` call found in the text (parsers tried: {tried})", reports)
    parser = next(r.parser for r in reversed(reports) if call in r.calls)
    notes = [n for r in reports for n in r.notes]
    return Recovered(call.arguments, f"content:{parser}", call.raw, notes, reports)


def recover_arguments(spec: ToolSpec, completion: Completion) -> Recovered:
    """The tool's arguments from a chat completion: tool_calls first, then the content."""
    for call in completion.tool_calls:
        if call.name != spec.name and len(completion.tool_calls) > 1:
            continue
        notes = [] if call.name == spec.name else [f"tool name {call.name!r} != {spec.name!r}; used anyway"]
        try:
            decoded = loads_lenient(call.arguments)
        except NotJSON as exc:
            raise NoToolCall(f"tool_call arguments are not JSON: {exc}") from exc
        return Recovered(decoded.value, "tool_calls", call.arguments, notes + decoded.notes)
    if completion.text.strip():
        recovered = recover_from_text(spec, completion.text)
        recovered.notes.insert(0, "the server ignored tool_choice; arguments recovered from content")
        return recovered
    raise NoToolCall("the response has neither tool_calls nor content")


def validate(spec: ToolSpec, arguments: Any) -> Any:
    """The caller's value, or pydantic.ValidationError."""
    return spec.validate(arguments)


def format_errors(error: ValidationError) -> str:
    """Validation errors as short lines a model (and a person) can act on."""
    lines = []
    for err in error.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        got = err.get("input")
        shown = repr(got) if not isinstance(got, dict | list) else type(got).__name__
        if len(shown) > 80:
            shown = shown[:77] + "..."
        lines.append(f"- {loc}: {err['msg']} (got {shown})")
    return "\n".join(lines)


def error_fields(error: ValidationError) -> list[str]:
    """Top-level field names the errors point at."""
    return sorted({str(e["loc"][0]) for e in error.errors() if e["loc"]})
