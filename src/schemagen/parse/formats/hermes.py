"""Hermes / Qwen2.5 style: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, repeated
for several calls. Tolerates a missing closing tag at the end, a lost opening tag (detokenisers
that drop special tokens), code fences inside the tags and prose around them."""

from __future__ import annotations

import re
from typing import Any

from schemagen.parse.formats._support import decode_arguments, decode_json, envelope, preview
from schemagen.parse.formats.base import ParsedCall, ParseReport
from schemagen.parse.jsonfix import json_spans

_OPEN = "<tool_call>"
_CLOSE = "</tool_call>"
_BLOCK = re.compile(r"<tool_call>(.*?)(</tool_call>|(?=<tool_call>)|\Z)", re.DOTALL)


class HermesParser:
    name = "hermes"

    def detect(self, text: str) -> bool:
        return _OPEN in text or _CLOSE in text

    def parse(self, text: str, *, schema: dict[str, Any] | None = None) -> ParseReport:
        report = ParseReport(parser=self.name)
        blocks: list[str] = []
        for match in _BLOCK.finditer(text):
            if not match.group(2):
                report.notes.append("a <tool_call> had no </tool_call>; read to the next block or the end")
            blocks.append(match.group(1))
        if not blocks and _CLOSE in text:
            # The opening tag was stripped as a special token: the JSON before </tool_call> is the call.
            before = text.split(_CLOSE)[0]
            spans = json_spans(before)
            if spans:
                report.notes.append("found </tool_call> without <tool_call>; read the JSON before it")
                blocks.append(before[spans[-1][0]: spans[-1][1]])
        if not blocks:
            report.skipped.append(f"no <tool_call> block in the text: {preview(text)}")
            return report
        outside = _BLOCK.sub("", text).replace(_CLOSE, "").strip()
        if outside and _OPEN in text:
            report.notes.append(f"ignored text outside the tool-call blocks: {preview(outside)}")
        for index, block in enumerate(blocks):
            self._parse_block(block, index, report)
        return report

    def _parse_block(self, block: str, index: int, report: ParseReport) -> None:
        what = f"block {index}"
        body = block.strip()
        if not body:
            report.skipped.append(f"{what}: empty <tool_call> block")
            return
        if body.startswith("<function="):
            report.skipped.append(f"{what}: XML function call (qwen3_xml format), not JSON")
            return
        ok, value = decode_json(body, report, what)
        if not ok:
            return
        for item in value if isinstance(value, list) else [value]:
            name, arguments, call_id, has_arguments = envelope(item)
            if not name:
                report.skipped.append(f"{what}: JSON without a function name: {preview(str(item))}")
                continue
            if not has_arguments:
                report.notes.append(f"{what}: call to {name!r} has no arguments key; read as {{}}")
                arguments = {}
            ok, arguments = decode_arguments(arguments, report, what)
            if ok:
                report.calls.append(ParsedCall(name=name, arguments=arguments, raw=block, id=call_id))


PARSER = HermesParser()
