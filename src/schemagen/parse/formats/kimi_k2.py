"""Kimi K2 tool calls::

    <|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>
    {"city": "Paris"}<|tool_call_end|><|tool_calls_section_end|>

The id is documented as ``functions.<name>:<index>``, but models and servers emit other shapes
(``name``, ``name:0``, ``call_0``...). Any shape is accepted: the name is read from the id when
it holds one, and left open (None) when it does not, rather than dropping the call.
"""

from __future__ import annotations

import re
from typing import Any

from schemagen.parse.formats._support import (
    leading_arguments,
    name_from_id,
    preview,
    tool_names,
)
from schemagen.parse.formats.base import ParsedCall, ParseReport

_CALL_BEGIN = "<|tool_call_begin|>"
_ARG_BEGIN = "<|tool_call_argument_begin|>"
# The section markers exist in singular and plural spellings.
_SECTION = re.compile(r"<\|tool_calls?_section_(?:begin|end)\|>")
# Any id shape is welcome, but not whitespace or other markers inside it.
_PLAUSIBLE_ID = re.compile(r"^[^\s<>|]*$")
_CALL = re.compile(
    r"<\|tool_call_begin\|>(.*?)(<\|tool_call_end\|>|(?=<\|tool_call_begin\|>)|(?=<\|tool_calls?_section_end\|>)|\Z)",
    re.DOTALL,
)


class KimiK2Parser:
    name = "kimi_k2"

    def detect(self, text: str) -> bool:
        return _CALL_BEGIN in text or bool(_SECTION.search(text))

    def parse(self, text: str, *, schema: dict[str, Any] | None = None) -> ParseReport:
        report = ParseReport(parser=self.name)
        matches = list(_CALL.finditer(text))
        if not matches:
            report.skipped.append(f"no <|tool_call_begin|> in the text: {preview(text)}")
            return report
        if "_section_begin|>" in text and not re.search(r"<\|tool_calls?_section_end\|>", text):
            report.notes.append("the tool-call section had no end marker; read to the end")
        outside = _SECTION.sub("", _CALL.sub("", text)).strip()
        if outside:
            report.notes.append(f"ignored text outside the tool calls: {preview(outside)}")
        known = tool_names(schema)
        for index, match in enumerate(matches):
            self._parse_call(match, index, known, report)
        return report

    def _parse_call(self, match: re.Match[str], index: int, known: list[str], report: ParseReport) -> None:
        what = f"call {index}"
        body = match.group(1)
        if not match.group(2):
            report.notes.append(f"{what}: no <|tool_call_end|>; read to the next call or the end")
        raw_id, found, args_text = body.partition(_ARG_BEGIN)
        if not found:
            # No argument marker: the id runs up to the JSON.
            brace = body.find("{")
            if brace < 0:
                report.skipped.append(f"{what}: no arguments: {preview(body)}")
                return
            raw_id, args_text = body[:brace], body[brace:]
            report.notes.append(f"{what}: no <|tool_call_argument_begin|>; read the JSON after the id")
        raw_id = raw_id.strip()
        if not _PLAUSIBLE_ID.match(raw_id):
            # e.g. DeepSeek markers spelled in ASCII, which share <|tool_call_begin|> with Kimi.
            report.skipped.append(f"{what}: {preview(raw_id)} is not a call id")
            return
        found = leading_arguments(args_text, report, what, "arguments are not a JSON object")
        if found is None:
            return
        arguments = found[1]
        name = name_from_id(raw_id, known, report) if raw_id else None
        if not raw_id:
            report.notes.append(f"{what}: empty call id; the call's name is left open")
        report.calls.append(ParsedCall(name=name, arguments=arguments, raw=match.group(0), id=raw_id or None))


PARSER = KimiK2Parser()
