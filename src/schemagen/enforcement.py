"""Where each keyword of a tool's schema is enforced: in the local grammar, on the server
(strict mode), or only after the fact (validation plus reask). Pure tables and walks.

The grammar table is llguidance's, checked case by case against the official JSON Schema
Test Suite by ``benchmarks/compliance.py``: a keyword is listed only where its compiled
grammar never accepted an invalid instance there. :func:`grammar_schema` gives the local
backend the schema minus what the grammar can't do (always a loosening), so such a schema
is still constrained as far as it can be, and validation plus reask does the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

from schemagen.schema_json import subschemas

__all__ = [
    "GRAMMAR_KEYWORDS",
    "KeywordEnforcement",
    "describe_enforcement",
    "enforcement_report",
    "grammar_schema",
]

Where = Literal["grammar", "server", "validation"]
_T = TypeVar("_T")

#: keywords llguidance compiles into the grammar exactly
GRAMMAR_KEYWORDS = frozenset(
    {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "prefixItems",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "anyOf",
        "allOf",
        "$ref",
        "format",
        "multipleOf",
        "minProperties",
        "maxProperties",
        "patternProperties",
    }
)
#: keywords left out of the grammar; dropping any of them only loosens the schema
GRAMMAR_DROPPED = frozenset(
    {
        "uniqueItems",
        "contains",
        "minContains",
        "maxContains",
        "propertyNames",
        "dependentRequired",
        "dependentSchemas",
        "dependencies",
        "if",
        "then",
        "else",
        "not",
        "unevaluatedItems",
        "unevaluatedProperties",
        "$dynamicRef",
        "$dynamicAnchor",
    }
)
#: keywords jsonschema (and pydantic) check; anything else carries no constraint
#: (``$dynamicAnchor`` only names a place to resolve a ``$dynamicRef`` to)
VALIDATION_KEYWORDS = GRAMMAR_KEYWORDS | (GRAMMAR_DROPPED - {"$dynamicAnchor"}) | {"oneOf", "additionalItems"}
#: formats llguidance has a grammar for
GRAMMAR_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid", "uri"}
)
#: keywords the server enforces in strict mode, as the strict transform leaves them
SERVER_KEYWORDS = frozenset(
    {"type", "enum", "const", "properties", "required", "additionalProperties", "items", "anyOf", "$ref"}
)
_COUNTS = frozenset({"minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"})
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


@overload
def grammar_schema(schema: dict[str, Any]) -> dict[str, Any]: ...
@overload
def grammar_schema(schema: list[Any]) -> list[Any]: ...
@overload
def grammar_schema(schema: _T) -> _T: ...  # a leaf value comes back as it is
def grammar_schema(schema: object) -> Any:
    """``schema`` for the local grammar: keywords llguidance can't compile are dropped,
    ``oneOf`` becomes ``anyOf`` (exclusivity is left to validation). Only loosens."""
    if isinstance(schema, list):
        return [grammar_schema(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in GRAMMAR_DROPPED or (key in ("format", "pattern") and not _in_grammar(key, value)):
            continue
        if key in ("properties", "patternProperties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {name: grammar_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "allOf", "prefixItems", "additionalItems"):
            out[key] = grammar_schema(value)
        elif key == "oneOf":
            if "anyOf" not in schema:
                out["anyOf"] = grammar_schema(value)
        elif key in _COUNTS and isinstance(value, float) and value.is_integer():
            out[key] = int(value)  # 2.0 is a valid length in JSON Schema; llguidance wants 2
        else:
            out[key] = value  # enum/const values and other data are kept as they are
    if "unevaluatedProperties" in schema and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = True  # dropped, not closed: the local backend closes bare objects
    return out


def enforcement_report(
    source: dict[str, Any], strict: dict[str, Any] | None
) -> tuple[KeywordEnforcement, ...]:
    """Every enforceable keyword of ``source`` (the non-strict parameters); ``strict`` is the
    strict form sent to the server, or None when strict mode is off."""
    kept: set[tuple[str, str]] = set()
    if strict is not None:
        kept = {(path, k) for node, path in subschemas(strict) for k in node if k in SERVER_KEYWORDS}
    # a keyword inside a dropped one (``not``, ``if``, ``contains``...) is not in the grammar
    outside = {path for _, path in subschemas(grammar_schema(source))}
    out = []
    for node, path in subschemas(source):
        for keyword, value in node.items():
            if keyword not in VALIDATION_KEYWORDS:
                continue
            # inlined or re-nested paths differ; a keyword strict mode keeps is kept everywhere
            server = (
                strict is not None
                and keyword in SERVER_KEYWORDS
                and ((path, keyword) in kept or keyword != "$ref")
            )
            grammar = _in_grammar(keyword, value) and _grammar_path(path) in outside
            out.append(KeywordEnforcement(path, keyword, grammar, server, True))
    return tuple(out)


def _grammar_path(path: str) -> str:
    return re.sub(r"\.oneOf\[", ".anyOf[", path)


def describe_enforcement(entries: tuple[KeywordEnforcement, ...]) -> str:
    """The report as lines, for debug output."""
    return "\n".join(f"  {e}" for e in entries) or "  (no keywords to enforce)"
