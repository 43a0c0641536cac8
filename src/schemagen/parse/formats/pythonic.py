"""Pythonic tool calls (Llama 3.2/4, some others): ``[get_weather(city="Paris", days=3), f(x=[1, 2])]``.

Parsed with :mod:`ast`, never evaluated: only keyword arguments with literal values (strings,
numbers, booleans, None, lists, dicts, tuples) are accepted; a call with anything else is refused.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from schemagen.parse.formats._support import preview, strip_fence
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
