"""Pythonic tool calls (Llama 3.2/4, some others): ``[get_weather(city="Paris", days=3), f(x=[1, 2])]``.

Parsed with :mod:`ast`, never evaluated: only keyword arguments with literal values (strings,
numbers, booleans, None, lists, dicts, tuples) are accepted; a call with anything else is refused.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from schemagen.parse.formats._support import ArgumentText, preview, strip_fence
from schemagen.parse.formats.base import ParsedCall, ParseReport

_START = re.compile(r"\[\s*[A-Za-z_][\w.]*\s*\(")
_BARE_CALL = re.compile(r"^\s*[A-Za-z_][\w.]*\s*\(")
_WRAPPERS = re.compile(r"<\|python_(?:start|end)\|>|<\|eom(?:_id)?\|>|<\|eot(?:_id)?\|>")
_JSON_SPELLINGS = {"true": True, "false": False, "null": None}
_MAX_TEXT = 200_000
_MAX_TRIES = 64  # ast on huge garbage is slow and deep nesting can exhaust the stack


class _NotLiteral(ValueError):
    pass


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _literal(node: ast.expr, notes: list[str]) -> Any:
    if isinstance(node, ast.Name) and node.id in _JSON_SPELLINGS:
        notes.append(f"read JSON spelling {node.id!r} as a Python literal")
        return _JSON_SPELLINGS[node.id]
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return [_literal(item, notes) for item in node.elts]
    if isinstance(node, ast.Dict):
        out: dict[str, Any] = {}
        for key_node, value_node in zip(node.keys, node.values, strict=True):
            key = _literal(key_node, notes) if key_node is not None else None
            if not isinstance(key, str):
                raise _NotLiteral("a dict key that is not a string")
            out[key] = _literal(value_node, notes)
        return out
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError) as exc:
        raise _NotLiteral(ast.unparse(node)[:60]) from exc
    if not isinstance(value, str | int | float | bool | type(None)):
        raise _NotLiteral(f"{type(value).__name__} has no JSON form")
    return value


def _parse_expression(source: str) -> ast.expr | None:
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return tree.body


class PythonicParser:
    name = "pythonic"

    def detect(self, text: str) -> bool:
        return bool(_START.search(text)) or "<|python_start|>" in text

    def parse(self, text: str, *, schema: dict[str, Any] | None = None) -> ParseReport:
        report = ParseReport(parser=self.name)
        body = strip_fence(_WRAPPERS.sub("", text)).strip()
        if len(body) > _MAX_TEXT:
            report.skipped.append(f"text too long for a pythonic call list ({len(body)} characters)")
            return report
        expression, source = self._find_expression(body, report)
        if expression is None:
            report.skipped.append(f"no Python list of calls in the text: {preview(body)}")
            return report
        elements = expression.elts if isinstance(expression, ast.List) else [expression]
        for index, element in enumerate(elements):
            self._parse_call(element, index, source, report)
        return report

    def _find_expression(self, body: str, report: ParseReport) -> tuple[ast.expr | None, str]:
        if _BARE_CALL.match(body):
            expression = _parse_expression(body)
            if isinstance(expression, ast.Call):
                report.notes.append("a single call without the surrounding [ ]")
                return expression, body
        for start_match in _START.finditer(body):
            start = start_match.start()
            # Try each closing bracket from the last one back: prose may follow the list.
            ends = [i + 1 for i, ch in enumerate(body) if ch == "]" and i > start]
            for end in reversed(ends[-_MAX_TRIES:]):
                expression = _parse_expression(body[start:end])
                if isinstance(expression, ast.List):
                    if body[:start].strip() or body[end:].strip():
                        report.notes.append("ignored text around the call list")
                    return expression, body[start:end]
            for suffix in (")]", "]", "\")]", "')]"):  # cut off at the end of the output
                expression = _parse_expression(body[start:] + suffix)
                if isinstance(expression, ast.List):
                    report.notes.append(f"the call list was not closed; completed it with {suffix!r}")
                    return expression, body[start:]
        return None, body

    def _parse_call(self, element: ast.expr, index: int, source: str, report: ParseReport) -> None:
        what = f"call {index}"
        raw = ast.get_source_segment(source, element) or ast.unparse(element)
        if not isinstance(element, ast.Call):
            report.skipped.append(f"{what}: not a function call: {preview(raw)}")
            return
        name = _dotted(element.func)
        if name is None:
            report.skipped.append(f"{what}: the called thing is not a name: {preview(raw)}")
            return
        if element.args:
            report.skipped.append(f"{what}: {name}() has positional arguments, which name no parameter")
            return
        arguments: dict[str, Any] = {}
        notes: list[str] = []
        for keyword in element.keywords:
            if keyword.arg is None:
                report.skipped.append(f"{what}: {name}() uses **-unpacking")
                return
            try:
                arguments[keyword.arg] = _literal(keyword.value, notes)
            except _NotLiteral as exc:
                report.skipped.append(f"{what}: {name}({keyword.arg}=...) is not a literal value: {exc}")
                return
        report.notes.extend(f"{what}: {note}" for note in dict.fromkeys(notes))
        report.calls.append(ParsedCall(name=name, arguments=arguments, raw=raw))


PARSER = PythonicParser()

_KEYWORD = re.compile(r"\s*,?\s*([A-Za-z_]\w*)\s*=\s*")
_CLOSERS = {"(": ")", "[": "]", "{": "}"}
_ESCAPE_SIZES = {"x": 4, "u": 6, "U": 10}
_QUOTES = "'\""


class ArgumentStream(ArgumentText):
    """The first call's keyword arguments as JSON text, while they stream (for the partials;
    the final value is still read by :class:`PythonicParser` from the whole text). A string
    value is passed on as it grows; any other value once it ends (at its ``,`` or ``)``),
    read as a literal exactly as the parser reads it."""

    @staticmethod
    def find(text: str) -> int | None:
        match = _START.search(text)
        return None if match is None else match.start()

    def __init__(self, schema: Any = None, name: str | None = None) -> None:
        super().__init__("call")  # -> "keyword" -> "string" | "value" -> "keyword" ... -> "done"
        self.quote = ""
        self.scan = 0  # how far a non-string value has been scanned
        self.depth: list[str] = []  # what closes the brackets and strings open in that value

    def _step(self, out: list[str]) -> bool:
        """Consume what can be consumed; False when more text is needed."""
        buffer = self.buffer
        if self.state == "call":
            match = _START.search(buffer)
            if match is None:
                return False
            self.buffer, self.state = buffer[match.end():], "keyword"
            out.append("{")
            return True
        if self.state == "keyword":
            if buffer.lstrip(" \t\r\n,").startswith(")"):
                self.state, self.buffer = "done", ""
                out.append("}")
                return False
            match = _KEYWORD.match(buffer)
            if match is None or match.end() == len(buffer):
                return False  # the value's first character decides how it is read
            self.key, rest = match.group(1), buffer[match.end():]
            if rest[0] in _QUOTES:
                if len(rest) < 3 and rest == rest[0] * len(rest):
                    return False  # "" or a triple quote, still arriving
                if rest.startswith(rest[0] * 3):  # triple-quoted: read whole, as other values
                    self.buffer, self.state, self.scan, self.depth = rest, "value", 0, []
                    return True
                self.quote, self.state, self.buffer = rest[0], "string", rest[1:]
                out.append(self.member())
            else:
                self.buffer, self.state, self.scan, self.depth = rest, "value", 0, []
            return True
        if self.state == "string":
            return self._string(out)
        if self.state == "value":
            return self._other(out)
        return False

    def _string(self, out: list[str]) -> bool:
        """A string value: decode what is complete (escapes whole), pass it on."""
        buffer, i = self.buffer, 0
        while i < len(buffer):
            ch = buffer[i]
            if ch == self.quote:
                out.append(self._decoded(buffer[:i]) + '"')
                self.buffer, self.state = buffer[i + 1:], "keyword"
                return True
            if ch == "\\":
                if i + 1 >= len(buffer):
                    break
                size = _ESCAPE_SIZES.get(buffer[i + 1], 2)
                if buffer[i + 1] == "N":  # \N{NAME}
                    close = buffer.find("}", i)
                    size = close - i + 1 if close >= 0 else len(buffer) + 1 - i
                if i + size > len(buffer):
                    break
                i += size
                continue
            i += 1
        if i:
            out.append(self._decoded(buffer[:i]))
            self.buffer = buffer[i:]
        return False

    def _decoded(self, body: str) -> str:
        try:
            value = ast.literal_eval(self.quote + body + self.quote)
        except (ValueError, SyntaxError):
            value = body
        return json.dumps(str(value))[1:-1]

    def _other(self, out: list[str]) -> bool:
        """Any other value: find its end (a ``,`` or ``)`` outside brackets and strings)."""
        buffer, i, depth = self.buffer, self.scan, self.depth
        while i < len(buffer):
            ch = buffer[i]
            if depth and depth[-1] in _QUOTES:
                if ch == "\\":
                    i += 2
                    continue
                if ch == depth[-1]:
                    depth.pop()
            elif ch in _QUOTES:
                depth.append(ch)
            elif ch in _CLOSERS:
                depth.append(_CLOSERS[ch])
            elif depth and ch == depth[-1]:
                depth.pop()
            elif not depth and ch in ",)":
                self._emit(buffer[:i], out)
                self.buffer, self.state = buffer[i:], "keyword"
                return True
            i += 1
        self.scan = min(i, len(buffer))
        return False

    def _emit(self, source: str, out: list[str]) -> None:
        expression = _parse_expression(source)
        if expression is None:
            return
        try:
            value = _literal(expression, [])
        except _NotLiteral:
            return
        out.append(self.member(json.dumps(value)))
