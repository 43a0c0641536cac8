"""Qwen3(-Coder) XML tool calls::

    <tool_call>
    <function=get_weather>
    <parameter=city>
    Paris
    </parameter>
    </function>
    </tool_call>

Parameter values are text; the tool's JSON schema (``schema``) says which become integers,
numbers, booleans, null or JSON arrays/objects. Strings stay verbatim (less the newline the
format puts on each side). Without a schema, values stay text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from schemagen.parse.formats._support import (
    decode_json,
    parameters_schema,
    preview,
    type_text_value,
    valid_name,
)
from schemagen.parse.formats.base import ParsedCall, ParseReport

_FUNCTION = re.compile(
    r"<function=([^>\n]*)>(.*?)(</function>|(?=<function=)|(?=</tool_call>)|\Z)", re.DOTALL
)
_PARAMETER = re.compile(
    r"<parameter=([^>\n]*)>(.*?)(</parameter>|(?=<parameter=)|(?=</function>)|\Z)", re.DOTALL
)


def _strip_one_newline(value: str) -> str:
    if value.startswith("\n"):
        value = value[1:]
    if value.endswith("\n"):
        value = value[:-1]
    return value


class Qwen3XMLParser:
    name = "qwen3_xml"

    def detect(self, text: str) -> bool:
        return "<function=" in text

    def parse(self, text: str, *, schema: dict[str, Any] | None = None) -> ParseReport:
        report = ParseReport(parser=self.name)
        matches = list(_FUNCTION.finditer(text))
        if not matches:
            report.skipped.append(f"no <function=...> block in the text: {preview(text)}")
            return report
        if text.count("<tool_call>") > text.count("</tool_call>"):
            report.notes.append("a <tool_call> had no </tool_call>; read to the end")
        outside = _FUNCTION.sub("", text)
        outside = re.sub(r"</?tool_call>", "", outside).strip()
        if outside:
            report.notes.append(f"ignored text outside the function blocks: {preview(outside)}")
        if schema is None:
            report.notes.append("no schema given: parameter values kept as text")
        for index, match in enumerate(matches):
            self._parse_function(match, index, schema, report)
        return report

    def _parse_function(
        self, match: re.Match[str], index: int, schema: dict[str, Any] | None, report: ParseReport
    ) -> None:
        what = f"function {index}"
        name = match.group(1).strip().strip("\"'")
        body = match.group(2)
        if not valid_name(name):
            report.skipped.append(f"{what}: {preview(name)} is not a function name")
            return
        if not match.group(3):
            report.notes.append(f"{what}: <function={name}> had no </function>; read to the next or the end")
        params = list(_PARAMETER.finditer(body))
        if not params:
            if body.strip().startswith("{"):
                # JSON arguments inside the function tag, a form some models slip into.
                ok, value = decode_json(body, report, what)
                if ok and isinstance(value, Mapping):
                    report.notes.append(f"{what}: arguments were JSON inside <function=...>")
                    report.calls.append(ParsedCall(name=name, arguments=dict(value), raw=match.group(0)))
                    return
            if body.strip():
                report.skipped.append(f"{what}: no <parameter=...> in {name!r}: {preview(body)}")
                return
            report.calls.append(ParsedCall(name=name, arguments={}, raw=match.group(0)))
            return
        root = parameters_schema(schema, name) if schema is not None else None
        properties = root.get("properties") if isinstance(root, Mapping) else None
        arguments: dict[str, Any] = {}
        for param in params:
            key = param.group(1).strip().strip("\"'")
            if not param.group(3):
                report.notes.append(f"{what}: <parameter={key}> had no </parameter>")
            raw_value = _strip_one_newline(param.group(2))
            if key in arguments:
                report.notes.append(f"{what}: parameter {key!r} given twice; kept the last")
            if root is None:
                arguments[key] = raw_value
                continue
            if not isinstance(properties, Mapping) or key not in properties:
                report.notes.append(f"{what}: parameter {key!r} is not in the schema; kept as text")
                arguments[key] = raw_value
                continue
            ok, value = type_text_value(raw_value, properties[key], root)
            if not ok:
                report.notes.append(f"{what}: parameter {key!r} does not fit its schema type; kept as text")
            arguments[key] = value
        report.calls.append(ParsedCall(name=name, arguments=arguments, raw=match.group(0)))


PARSER = Qwen3XMLParser()
