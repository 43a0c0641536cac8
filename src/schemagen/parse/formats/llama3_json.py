"""Llama 3.x JSON tool calls: ``{"name": ..., "parameters": {...}}`` (``arguments`` accepted too),
optionally after ``<|python_tag|>``, several separated by ``;``. Only objects carrying a function
name count; other JSON is refused, unlike the plain ``json`` parser."""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

from schemagen.parse.formats._support import decode_json, envelope_calls, preview
from schemagen.parse.formats.base import ParseReport
from schemagen.parse.jsonfix import json_spans

_PYTHON_TAG = "<|python_tag|>"
_END_TOKENS = re.compile(r"<\|(?:eom_id|eot_id|end_of_text)\|>")
_LOOKS_LIKE_CALL = re.compile(r'\{\s*"name"\s*:\s*"[^"]*"\s*,\s*"(?:parameters|arguments)"\s*:')
_BUILTIN_CALL = re.compile(r"^\s*[A-Za-z_]\w*\.call\(")


class Llama3JSONParser:
    name = "llama3_json"

    def detect(self, text: str) -> bool:
        return _PYTHON_TAG in text or bool(_LOOKS_LIKE_CALL.search(text))

    def parse(self, text: str, *, schema: dict[str, Any] | None = None) -> ParseReport:
        report = ParseReport(parser=self.name)
        body = _END_TOKENS.sub("", text)
        if _PYTHON_TAG in body:
            before, _, body = body.partition(_PYTHON_TAG)
            if before.strip():
                report.notes.append(f"ignored text before <|python_tag|>: {preview(before)}")
        if _BUILTIN_CALL.match(body):
            report.skipped.append(f"built-in tool syntax (name.call(...)), not a JSON call: {preview(body)}")
            return report
        spans = json_spans(body)
        if not spans:
            report.skipped.append(f"no JSON object in the text: {preview(body)}")
            return report
        outside = "".join(body[end:start] for (_, end), (start, _) in pairwise(spans))
        outside = body[: spans[0][0]] + outside + body[spans[-1][1]:]
        if outside.replace(";", "").strip():
            report.notes.append(f"ignored text around the JSON call(s): {preview(outside)}")
        for index, (start, end) in enumerate(spans):
            fragment = body[start:end]
            what = f"object {index}"
            ok, value = decode_json(fragment, report, what)
            if ok:
                envelope_calls(value, report, what, fragment, shape="{name, parameters}", keep_id=False,
                               show_item=False)
        return report


PARSER = Llama3JSONParser()
