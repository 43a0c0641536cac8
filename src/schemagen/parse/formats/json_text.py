"""Plain, fenced or in-prose JSON: ``{"name": ..., "arguments": {...}}``, a list of such calls,
or the arguments alone (then the call's name is left open)."""

from __future__ import annotations

from typing import Any

from schemagen.parse.formats._support import decode_arguments, envelope
from schemagen.parse.formats.base import ParsedCall, ParseReport
from schemagen.parse.jsonfix import find_json_values


def _is_call(value: Any) -> bool:
    """An envelope, not a payload that happens to have a "name" field: its arguments must be
    an object, or JSON text of one."""
    name, arguments, _, has_arguments = envelope(value)
    if not (name and has_arguments):
        return False
    return isinstance(arguments, dict) or (isinstance(arguments, str) and arguments.lstrip().startswith("{"))


class JSONTextParser:
    name = "json"

    def detect(self, text: str) -> bool:
        return "{" in text or "[" in text

    def parse(self, text: str, *, schema: dict[str, Any] | None = None) -> ParseReport:
        report = ParseReport(parser=self.name)
        for index, decoded in enumerate(find_json_values(text)):
            what = f"value {index}"
            report.notes.extend(f"{what}: {note}" for note in decoded.notes)
            value = decoded.value
            # A list of envelopes is several calls; any other value is one call's payload.
            items = value if isinstance(value, list) and value and all(map(_is_call, value)) else [value]
            for item in items:
                if _is_call(item):
                    name, arguments, call_id, _ = envelope(item)
                else:
                    name, arguments, call_id = None, item, None
                ok, arguments = decode_arguments(arguments, report, what, require_object=False)
                if ok:
                    report.calls.append(ParsedCall(name=name, arguments=arguments, raw=text, id=call_id))
        if not report.calls and not report.skipped:
            report.skipped.append("no JSON object found in the text")
        return report


PARSER = JSONTextParser()
