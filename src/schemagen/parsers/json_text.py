"""Plain, fenced or in-prose JSON: ``{"name": ..., "arguments": {...}}`` or the arguments alone."""

from __future__ import annotations

from typing import Any

from schemagen.jsonfix import find_json_values
from schemagen.parsers.base import ParsedCall, ParseReport

_ARG_KEYS = ("arguments", "parameters", "args", "input")


def _unwrap(value: Any) -> tuple[str | None, Any]:
    """A ``{"name", "arguments"}`` envelope gives its parts; anything else is the arguments."""
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        for key in _ARG_KEYS:
            if key in value and isinstance(value[key], dict | str):
                return value["name"], value[key]
    if isinstance(value, dict) and isinstance(value.get("function"), dict):
        return _unwrap(value["function"])
    return None, value


class JSONTextParser:
    name = "json"

    def detect(self, text: str) -> bool:
        return "{" in text or "[" in text

    def parse(self, text: str, *, schema: dict[str, Any] | None = None) -> ParseReport:
        report = ParseReport(parser=self.name)
        for decoded in find_json_values(text):
            report.notes.extend(decoded.notes)
            name, args = _unwrap(decoded.value)
            if isinstance(args, str):
                try:
                    from schemagen.jsonfix import loads_lenient

                    args = loads_lenient(args).value
                except ValueError:
                    report.skipped.append(f"arguments string is not JSON: {args[:60]!r}")
                    continue
            report.calls.append(ParsedCall(name=name, arguments=args, raw=text))
        if not report.calls:
            report.skipped.append("no JSON object found in the text")
        return report


PARSER = JSONTextParser()
