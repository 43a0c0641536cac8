"""Where each keyword of a tool's schema is enforced: in the local grammar, on the server
(strict mode), or only after the fact (validation plus reask). Pure tables and a walk.

The grammar table is llguidance's, checked case by case against the official JSON Schema
Test Suite by ``benchmarks/compliance.py``: a keyword is listed only where its compiled
grammar never accepted an invalid instance there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from schemagen.schema_json import subschemas

__all__ = ["GRAMMAR_KEYWORDS", "KeywordEnforcement", "describe_enforcement", "enforcement_report"]

Where = Literal["grammar", "server", "validation"]

#: keywords llguidance compiles into the grammar exactly
GRAMMAR_KEYWORDS = frozenset({
    "type", "enum", "const", "properties", "required", "additionalProperties", "items", "prefixItems",
    "minItems", "maxItems", "minLength", "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "anyOf", "$ref", "format",
})
#: keywords jsonschema (and pydantic) check; anything else carries no constraint
VALIDATION_KEYWORDS = GRAMMAR_KEYWORDS | {
    "multipleOf", "uniqueItems", "contains", "minContains", "maxContains", "minProperties", "maxProperties",
    "patternProperties", "propertyNames", "dependentRequired", "dependentSchemas", "dependencies", "if",
    "then", "else", "not", "allOf", "oneOf", "unevaluatedItems", "unevaluatedProperties", "$dynamicRef",
    "additionalItems",
}
#: formats llguidance has a grammar for
GRAMMAR_FORMATS = frozenset({"date-time", "time", "date", "email", "ipv4", "ipv6", "uuid"})
#: keywords the server enforces in strict mode, as the strict transform leaves them
SERVER_KEYWORDS = frozenset({"type", "enum", "const", "properties", "required", "additionalProperties",
                             "items", "anyOf", "$ref"})
_NOT_REGULAR = re.compile(r"\(\?[=!<]|\\[1-9]|\\[pP]\{")  # lookaround, backrefs, unicode classes


@dataclass(frozen=True)
class KeywordEnforcement:
    """One keyword at one JSON path of the tool's parameters, and who enforces it."""

    path: str
    keyword: str
    grammar: bool  # in llguidance's grammar (local backends)
    server: bool  # by the server in strict mode
    validated: bool  # after the fact, by pydantic or jsonschema, with a reask on failure

    @property
    def where(self) -> tuple[Where, ...]:
        out: list[Where] = []
        if self.grammar:
            out.append("grammar")
        if self.server:
            out.append("server")
        if self.validated:
            out.append("validation")
        return tuple(out)

    def __str__(self) -> str:
        return f"{self.path}: {self.keyword} -> {', '.join(self.where) or 'NOT ENFORCED'}"


def _in_grammar(keyword: str, value: Any) -> bool:
    if keyword not in GRAMMAR_KEYWORDS:
        return False
    if keyword == "format":
        return value in GRAMMAR_FORMATS
    if keyword == "pattern":
        return isinstance(value, str) and not _NOT_REGULAR.search(value)
    if keyword == "$ref":
        return isinstance(value, str) and value.startswith("#")
    return True


def enforcement_report(source: dict[str, Any], strict: dict[str, Any] | None) -> tuple[KeywordEnforcement, ...]:
    """Every enforceable keyword of ``source`` (the non-strict parameters); ``strict`` is the
    strict form sent to the server, or None when strict mode is off."""
    kept: set[tuple[str, str]] = set()
    if strict is not None:
        kept = {(path, k) for node, path in subschemas(strict) for k in node if k in SERVER_KEYWORDS}
    out = []
    for node, path in subschemas(source):
        for keyword, value in node.items():
            if keyword not in VALIDATION_KEYWORDS:
                continue
            # inlined or re-nested paths differ; a keyword strict mode keeps is kept everywhere
            server = strict is not None and keyword in SERVER_KEYWORDS and (
                (path, keyword) in kept or keyword != "$ref")
            out.append(KeywordEnforcement(path, keyword, _in_grammar(keyword, value), server, True))
    return tuple(out)


def describe_enforcement(entries: tuple[KeywordEnforcement, ...]) -> str:
    """The report as lines, for debug output."""
    return "\n".join(f"  {e}" for e in entries) or "  (no keywords to enforce)"
