"""Mistral tool calls, every tokenizer generation:

* old: ``[TOOL_CALLS] [{"name": ..., "arguments": {...}, "id": "abc123XYZ"}, ...]``
* new: ``[TOOL_CALLS]name[ARGS]{...}``, repeated per call
* with ids: ``[TOOL_CALLS]name[CALL_ID]abc123XYZ[ARGS]{...}``
"""

from __future__ import annotations

import re
from typing import Any

from schemagen.parse.formats._support import (
    decode_json,
    envelope_calls,
    leading_arguments,
    leading_json,
    preview,
    valid_name,
)
from schemagen.parse.formats.base import ParsedCall, ParseReport

_MARKER = "[TOOL_CALLS]"
_ARGS = "[ARGS]"
_CALL_ID = "[CALL_ID]"
_END = re.compile(r"</s>|\[/?(?:INST|AVAILABLE_TOOLS|TOOL_RESULTS)\]")


class MistralParser:
    name = "mistral"

    def detect(self, text: str) -> bool:
        return _MARKER in text

    def parse(self, text: str, *, schema: dict[str, Any] | None = None) -> ParseReport:
        report = ParseReport(parser=self.name)
        before, *segments = text.split(_MARKER)
        if not segments:
            report.skipped.append(f"no [TOOL_CALLS] marker in the text: {preview(text)}")
            return report
        if before.strip():
            report.notes.append(f"ignored text before [TOOL_CALLS]: {preview(before)}")
        for index, segment in enumerate(segments):
            segment = _END.split(segment)[0]
            what = f"segment {index}"
            if segment.lstrip()[:1] in ("[", "{"):
                self._parse_json_list(segment, what, report)
            else:
                self._parse_named(segment, what, report)
        return report

    def _parse_json_list(self, segment: str, what: str, report: ParseReport) -> None:
        fragment, rest = leading_json(segment) or (segment, "")
        if rest.strip():
            report.notes.append(f"{what}: ignored text after the JSON: {preview(rest)}")
        ok, value = decode_json(fragment, report, what)
        if ok:
            envelope_calls(value, report, what, fragment, shape="{name, arguments}")

    def _parse_named(self, segment: str, what: str, report: ParseReport) -> None:
        header, found_args, after = segment.partition(_ARGS)
        if not found_args:
            # `name{...}` without [ARGS]: seen from models that drop the marker token.
            brace = segment.find("{")
            if brace <= 0:
                report.skipped.append(f"{what}: no [ARGS] after the function name: {preview(segment)}")
                return
            header, after = segment[:brace], segment[brace:]
            report.notes.append(f"{what}: no [ARGS] marker; read the JSON after the name")
        call_id: str | None = None
        if _CALL_ID in header:
            name_part, _, id_part = header.partition(_CALL_ID)
            header, call_id = name_part, id_part.strip() or None
        name = header.strip()
        if not valid_name(name):
            report.skipped.append(f"{what}: {preview(name)} is not a function name")
            return
        found = leading_arguments(after, report, what, "no JSON arguments after [ARGS]")
        if found is not None:
            report.calls.append(ParsedCall(name=name, arguments=found[1], raw=_MARKER + segment, id=call_id))


PARSER = MistralParser()
