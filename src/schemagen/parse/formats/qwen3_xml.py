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

import json
import re
from collections.abc import Mapping
from typing import Any

from schemagen.parse.formats._support import (
    ArgumentText,
    allowed_types,
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

_OPEN_FUNCTION = re.compile(r"<function=([^>\n]*)>")
_OPEN_PARAMETER = re.compile(r"<parameter=([^>\n]*)>")
_VALUE_ENDS = ("</parameter>", "<parameter=", "</function>")


def _held(text: str, ends: tuple[str, ...]) -> int:
    """How many characters at the end of ``text`` could be the start of one of ``ends``."""
    for size in range(min(len(text), max(map(len, ends)) - 1), 0, -1):
        tail = text[-size:]
        if any(end.startswith(tail) for end in ends):
            return size
    return 0


class ArgumentStream(ArgumentText):
    """The first function's parameters as JSON text, while they stream (for the partials;
    the final value is still read by :class:`Qwen3XMLParser` from the whole text). String
    parameters are passed on as they grow; other types once their ``</parameter>`` arrives,
    typed by the schema as the parser types them."""

    @staticmethod
    def find(text: str) -> int | None:
        at = text.find("<function=")
        return None if at < 0 else at

    def __init__(self, schema: Mapping[str, Any] | None = None, name: str | None = None) -> None:
        root = parameters_schema(schema, name) if schema is not None else None
        self.root: Mapping[str, Any] = root if isinstance(root, Mapping) else {}
        properties = self.root.get("properties")
        self.properties: Mapping[str, Any] = properties if isinstance(properties, Mapping) else {}
        super().__init__("function")  # -> "between" -> "value" -> "between" ... -> "done"
        self.as_text = False  # the value streams as a JSON string
        self.fresh = True  # the value's first character is still to come (one newline is dropped)
        self.raw = ""  # a typed value's text so far

    def _step(self, out: list[str]) -> bool:
        """Consume what can be consumed; False when more text is needed."""
        buffer = self.buffer
        if self.state == "function":
            match = _OPEN_FUNCTION.search(buffer)
            if match is None:
                return False
            self.buffer, self.state = buffer[match.end():], "between"
            out.append("{")
            return True
        if self.state == "between":
            match = _OPEN_PARAMETER.search(buffer)
            end = buffer.find("</function>")
            if end >= 0 and (match is None or end < match.start()):
                self.state, self.buffer = "done", ""
                out.append("}")
                return False
            if match is None:
                return False
            self._start(match.group(1).strip().strip("\"'"), out)
            self.buffer = buffer[match.end():]
            return True
        if self.state != "value":
            return False
        if self.fresh:
            if not buffer:
                return False
            self.fresh = False
            if buffer.startswith("\n"):
                buffer = self.buffer = buffer[1:]
        found = [(at, tag) for tag in _VALUE_ENDS if (at := buffer.find(tag)) >= 0]
        if found:
            at, tag = min(found)
            piece = buffer[:at]
            self._value(piece[:-1] if piece.endswith("\n") else piece, out, last=True)
            self.buffer = buffer[at + len(tag):] if tag == "</parameter>" else buffer[at:]
            self.state = "between"
            return True
        keep = _held(buffer, _VALUE_ENDS)
        if keep < len(buffer) and buffer[len(buffer) - keep - 1] == "\n":
            keep += 1  # a newline just before the end tag is not part of the value
        self._value(buffer[:len(buffer) - keep], out, last=False)
        self.buffer = buffer[len(buffer) - keep:]
        return False

    def _start(self, key: str, out: list[str]) -> None:
        prop = self.properties.get(key)
        types = allowed_types(prop, self.root) if prop is not None else {"string"}
        self.key, self.state, self.fresh, self.raw = key, "value", True, ""
        self.as_text = types == {"string"}
        if self.as_text:
            out.append(self.member())

    def _value(self, text: str, out: list[str], *, last: bool) -> None:
        if self.as_text:
            out.append(json.dumps(text)[1:-1] + ('"' if last else ""))
            return
        self.raw += text
        if not last:
            return
        prop = self.properties.get(self.key)
        value = type_text_value(self.raw, prop, self.root)[1] if prop is not None else self.raw
        out.append(self.member(json.dumps(value, default=str)))
