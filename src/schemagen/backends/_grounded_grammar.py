"""A llguidance Lark grammar for a JSON schema whose grounded strings must be spans of a text.

Objects and lists on the way to a grounded string are written out in Lark (keys in schema
order, every key present, compact or one-space JSON as the backend emits); everything else is
an inline ``%json`` node, so llguidance's own JSON-schema compiler does the rest. A grounded
string is ``"`` + a ``substring_words`` span of the text + ``"``: the model can only copy.
"""

from __future__ import annotations

import json
from typing import Any

from schemagen.grounding import MARKER, has_marker, segments

_JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ",", "key_separator": ":"}


class Unsupported(Exception):
    """The schema has a grounded string where this builder can't reach it (the caller falls back
    to the plain JSON grammar and the after-parse check)."""


def _lit(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def grounded_lark(schema: dict[str, Any], text: str, *, compact: bool = True) -> str:
    """The Lark grammar for ``schema`` (refs inlined, ``MARKER`` on grounded strings; see
    :func:`schemagen.grounding.mark`) with spans taken from ``text``."""
    sources = segments(text)
    if not sources:
        raise Unsupported("the text has nothing to quote")
    ws = "" if compact else ' " "?'
    options = dict(_JSON_OPTIONS)
    if not compact:
        options["whitespace_pattern"] = "[ ]?"
    rules: list[str] = []

    def rule(body: str) -> str:
        name = f"r{len(rules)}"
        rules.append(f"{name}: {body}")
        return name

    def node(s: dict[str, Any]) -> str:
        if not has_marker(s):
            return rule("%json " + json.dumps({"x-guidance": options, **s}, ensure_ascii=False))
        if s.get(MARKER):
            return "SPAN_STRING"
        branches = s.get("anyOf") or s.get("oneOf")
        if isinstance(branches, list):
            return rule(" | ".join(node(b) for b in branches))
        if s.get("type") == "object" and isinstance(s.get("properties"), dict):
            parts = []
            for i, (key, sub) in enumerate(s["properties"].items()):
                sep = f'"," {ws} ' if i else ""
                parts.append(f'{sep}{_lit(json.dumps(key, ensure_ascii=False) + ":")}{ws} {node(sub)}')
            return rule(f'"{{" {ws} ' + " ".join(parts) + f' {ws} "}}"')
        if s.get("type") == "array" and isinstance(s.get("items"), dict):
            item = node(s["items"])
            low = int(s.get("minItems", 0))
            high = s.get("maxItems")
            more_low = max(low - 1, 0)
            more = f'("," {ws} {item})' + (f"{{{more_low},{int(high) - 1}}}" if high is not None
                                           else f"{{{more_low},}}")
            body = f"{item} {more}"
            if high is not None and int(high) < 1:
                return rule('"[" "]"')
            if low == 0:
                body = f"({body})?"
            return rule(f'"[" {ws} {body} {ws} "]"')
        if s.get("type") == "null":
            return rule('"null"')
        raise Unsupported(f"a grounded string inside {s.get('type') or 'an untyped node'}")

    start = node(schema)
    spans = " | ".join("%regex " + json.dumps({"substring_words": src}, ensure_ascii=False)
                       for src in sources)
    lines = [f"start: {start}", *rules, 'SPAN_STRING: "\\"" SPAN "\\""', f"SPAN: {spans}"]
    return "\n".join(lines) + "\n"
