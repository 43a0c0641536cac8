"""DeepSeek V3 / R1 and V3.1 tool calls (markers use U+FF5C ``｜`` and U+2581 ``▁``)::

    V3:   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather
          ```json
          {"city": "Paris"}
          ```<｜tool▁call▁end｜><｜tool▁calls▁end｜>
    V3.1: <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{"city": "Paris"}
          <｜tool▁call▁end｜><｜tool▁calls▁end｜>

ASCII spellings of the markers (``|``, ``_``), which some detokenisers produce, are accepted.
"""

from __future__ import annotations

import re
from typing import Any

from schemagen.parse.formats._support import (
    leading_arguments,
    preview,
    strip_fence,
    valid_name,
)
from schemagen.parse.formats.base import ParsedCall, ParseReport


def _marker(*words: str) -> str:
    return r"<[｜|]" + r"[▁_]".join(words) + r"[｜|]>"


_CALLS_BEGIN = _marker("tool", "calls", "begin")
_CALLS_END = _marker("tool", "calls", "end")
_CALL_BEGIN = _marker("tool", "call", "begin")
_CALL_END = _marker("tool", "call", "end")
_SEP = re.compile(_marker("tool", "sep"))
_CALL = re.compile(
    rf"{_CALL_BEGIN}(.*?)({_CALL_END}|(?={_CALL_BEGIN})|(?={_CALLS_END})|\Z)", re.DOTALL
)
_ANY_MARKER = re.compile(rf"{_CALLS_BEGIN}|{_CALL_BEGIN}")
_END_OF_SENTENCE = re.compile(r"<[｜|]end[▁_]of[▁_]sentence[｜|]>")


class DeepSeekV3Parser:
    name = "deepseek_v3"

    def detect(self, text: str) -> bool:
        return bool(_ANY_MARKER.search(text))

    def parse(self, text: str, *, schema: dict[str, Any] | None = None) -> ParseReport:
        report = ParseReport(parser=self.name)
        text = _END_OF_SENTENCE.sub("", text)
        matches = list(_CALL.finditer(text))
        if not matches:
            report.skipped.append(f"no tool-call begin marker in the text: {preview(text)}")
            return report
        if re.search(_CALLS_BEGIN, text) and not re.search(_CALLS_END, text):
            report.notes.append("the tool-calls section had no end marker; read to the end")
        outside = re.sub(rf"{_CALLS_BEGIN}|{_CALLS_END}", "", _CALL.sub("", text)).strip()
        if outside:
            report.notes.append(f"ignored text outside the tool calls: {preview(outside)}")
        for index, match in enumerate(matches):
            self._parse_call(match, index, report)
        return report

    def _parse_call(self, match: re.Match[str], index: int, report: ParseReport) -> None:
        what = f"call {index}"
        if not match.group(2):
            report.notes.append(f"{what}: no tool-call end marker; read to the next call or the end")
        parts = _SEP.split(match.group(1), maxsplit=1)
        if len(parts) != 2:
            report.skipped.append(f"{what}: no tool-sep marker: {preview(match.group(1))}")
            return
        head, tail = parts[0].strip(), parts[1]
        first_line, _, rest = tail.lstrip().partition("\n")
        if head == "function" and valid_name(first_line.strip()) and not first_line.lstrip().startswith("{"):
            name, args_text = first_line.strip(), rest  # V3: type, then name on its own line
        else:
            name, args_text = head, tail  # V3.1: name, then the JSON
        if not valid_name(name):
            report.skipped.append(f"{what}: {preview(name)} is not a function name")
            return
        args_text = strip_fence(args_text.strip())
        found = leading_arguments(args_text, report, what, f"arguments of {name!r} are not JSON", fence=True)
        if found is not None:
            report.calls.append(ParsedCall(name=name, arguments=found[1], raw=match.group(0)))


PARSER = DeepSeekV3Parser()
