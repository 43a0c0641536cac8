"""Output bounds: how many tokens an answer may take. Pure functions, no I/O.

Every request carries a ``max_tokens``: the caller's, or one derived here from the
JSON schema of the answer and the size of the input text. The rule::

    fixed     = the largest instance of the schema's bounded parts, in tokens: keys and
                punctuation, enums and consts, booleans, numbers (20/24 characters, fewer
                when minimum/maximum say so), strings with maxLength or a fixed-size
                format (date, uuid, ...), arrays with maxItems; an unbounded string
                counts as its quotes and an unbounded array or map as empty
    unbounded = 0 when the schema is fully bounded, else
                per_input * n  +  item * n / tokens_per_item
                (n = tokens of the input text; ``item`` = the skeleton of one item of each
                unbounded array or map: answers copy at most about the input, and each
                list item is assumed to come from at least ``tokens_per_item`` input tokens)
    max_tokens = slack * fixed + margin                                    (fully bounded)
    max_tokens = min(ceiling, max(floor, slack * (fixed + unbounded) + margin))   (otherwise)

then capped at the context left (window - prompt) when the window is known.
Reasoning models (o1, o3, o4, gpt-5, and by name qwen3, qwq, deepseek-r1, gpt-oss,
magistral) get ``reasoning_extra`` more, since their reasoning counts against the
same limit; for another thinking model pass ``max_tokens=`` or a larger floor.

Bounded content is measured in characters (a token is at least one character), so
a schema with ``maxLength``/``maxItems``/enums everywhere gets a true upper bound; the
input-based part is an allowance with headroom, not a prediction.

The same rule serves every backend: :func:`max_output_tokens` takes only the JSON
schema and the input's token count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Count = Callable[[str], int]

# Largest printed sizes, in characters: int64 and float64 repr, fixed-size string formats.
INTEGER_CHARS = 20
NUMBER_CHARS = 24
FORMAT_CHARS: dict[str, int] = {
    "date": 10,
    "time": 21,
    "date-time": 32,
    "uuid": 36,
    "ipv4": 15,
    "ipv6": 45,
    "email": 254,  # RFC 5321's limit
}
# Model names whose hidden reasoning tokens count against max_completion_tokens.
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5", "qwen3", "qwq", "deepseek-r1", "gpt-oss", "magistral")


def _default_count(text: str) -> int:
    # Keys and literal values are words; about two characters a token is generous.
    return max(1, math.ceil(len(text) / 2))


@dataclass(frozen=True)
class BoundRule:
    """The knobs of the derived bound (see the module docstring for the formula)."""

    floor: int = 256
    ceiling: int = 4096
    per_input: float = 2.5
    tokens_per_item: int = 8
    slack: float = 1.25
    margin: int = 16
    reasoning_extra: int = 8192

    def __post_init__(self) -> None:
        if not 0 < self.floor <= self.ceiling:
            raise ValueError(f"need 0 < floor <= ceiling, got floor={self.floor}, ceiling={self.ceiling}")
        if self.tokens_per_item < 1 or self.per_input < 0 or self.slack < 1:
            raise ValueError("need tokens_per_item >= 1, per_input >= 0 and slack >= 1")


DEFAULT_RULE = BoundRule()


@dataclass(frozen=True)
class SchemaSize:
    """How big an answer to a schema can be: a fixed part, plus what grows with the input."""

    fixed: int
    item: int = 0  # skeleton tokens of one item of each unbounded array/map, summed
    text: bool = False  # has an unbounded string (or an untyped value)

    @property
    def bounded(self) -> bool:
        return not self.text and self.item == 0

    def __add__(self, other: SchemaSize) -> SchemaSize:
        return SchemaSize(self.fixed + other.fixed, self.item + other.item, self.text or other.text)

    def widest(self, other: SchemaSize) -> SchemaSize:
        return SchemaSize(max(self.fixed, other.fixed), max(self.item, other.item), self.text or other.text)


_UNBOUNDED_TEXT = SchemaSize(2, 0, True)


class _Sizer:
    def __init__(self, root: Mapping[str, Any], count: Count) -> None:
        self.defs: Mapping[str, Any] = {**root.get("definitions", {}), **root.get("$defs", {})}
        self.count = count
        self.active: set[str] = set()

    def literal(self, value: Any) -> int:
        import json

        return self.count(json.dumps(value, ensure_ascii=False))

    def size(self, node: Any) -> SchemaSize:
        if node is False:
            return SchemaSize(0)
        if node is True or not isinstance(node, Mapping) or not node:
            return _UNBOUNDED_TEXT  # any value at all
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name in self.active or name not in self.defs:
                return SchemaSize(2, 16, True)  # recursion: grows with the input
            if not isinstance(self.defs[name], Mapping):  # a boolean schema in $defs (JSON Schema targets)
                return self.size(self.defs[name])
            self.active.add(name)
            try:
                return self.size({**self.defs[name], **{k: v for k, v in node.items() if k != "$ref"}})
            finally:
                self.active.discard(name)
        if "const" in node:
            return SchemaSize(self.literal(node["const"]))
        if isinstance(node.get("enum"), list) and node["enum"]:
            return SchemaSize(max(self.literal(v) for v in node["enum"]))
        for key in ("anyOf", "oneOf"):
            branches = node.get(key)
            if isinstance(branches, list) and branches:
                rest = {k: v for k, v in node.items() if k != key}
                out = SchemaSize(0)
                for branch in branches:
                    merged = {**rest, **branch} if isinstance(branch, Mapping) else branch
                    out = out.widest(self.size(merged))
                return out
        if isinstance(node.get("allOf"), list):
            merged = {k: v for k, v in node.items() if k != "allOf"}
            for part in node["allOf"]:
                if isinstance(part, Mapping):
                    merged.update(part)
            return self.size(merged)
        types = node.get("type")
        if isinstance(types, list):
            out = SchemaSize(0)
            for t in types:
                out = out.widest(self.size({**node, "type": t}))
            return out
        if types is None:
            if "properties" in node:
                types = "object"
            elif "items" in node or "prefixItems" in node:
                types = "array"
            else:
                return _UNBOUNDED_TEXT
        return self.typed(str(types), node)

    def typed(self, kind: str, node: Mapping[str, Any]) -> SchemaSize:
        if kind == "null":
            return SchemaSize(4)
        if kind == "boolean":
            return SchemaSize(5)
        if kind == "integer":
            return SchemaSize(self.integer_chars(node))
        if kind == "number":
            return SchemaSize(NUMBER_CHARS)
        if kind == "string":
            if isinstance(node.get("maxLength"), int):
                return SchemaSize(node["maxLength"] + 2)
            fmt = node.get("format")
            if isinstance(fmt, str) and fmt in FORMAT_CHARS:
                return SchemaSize(FORMAT_CHARS[fmt] + 2)
            return _UNBOUNDED_TEXT
        if kind == "array":
            return self.array(node)
        if kind == "object":
            return self.obj(node)
        return _UNBOUNDED_TEXT

    def integer_chars(self, node: Mapping[str, Any]) -> int:
        low = node.get("minimum", node.get("exclusiveMinimum"))
        high = node.get("maximum", node.get("exclusiveMaximum"))
        if isinstance(low, int | float) and isinstance(high, int | float):
            return max(len(str(int(low))), len(str(int(high))))
        return INTEGER_CHARS

    def array(self, node: Mapping[str, Any]) -> SchemaSize:
        out = SchemaSize(2)  # brackets
        prefix = node.get("prefixItems")
        if isinstance(prefix, list):
            for sub in prefix:
                out = out + self.size(sub) + SchemaSize(1)
            if node.get("items") is False:
                return out
        items = node.get("items", True)
        if items is False:
            return out
        one = self.size(items) + SchemaSize(1)  # the comma
        limit = node.get("maxItems")
        if isinstance(limit, int):
            return out + SchemaSize(one.fixed * limit, one.item * limit, one.text)
        # Unbounded: one item's skeleton repeats with the input (its own growth included).
        return out + SchemaSize(0, one.fixed + one.item, one.text)

    def obj(self, node: Mapping[str, Any]) -> SchemaSize:
        out = SchemaSize(2)  # braces
        props = node.get("properties")
        if isinstance(props, Mapping):
            for name, sub in props.items():
                out = out + SchemaSize(self.literal(str(name)) + 2) + self.size(sub)  # ": " and ","
        extra = node.get("additionalProperties")
        if extra is not None and extra is not False and not (isinstance(props, Mapping) and extra is True):
            value = self.size(extra)
            limit = node.get("maxProperties")
            entry = _UNBOUNDED_TEXT + SchemaSize(2) + value
            if isinstance(limit, int):
                # keys are free text, so even a bounded map has text that grows with the input
                return out + SchemaSize(entry.fixed * limit, entry.item * limit, True)
            return out + SchemaSize(0, entry.fixed + entry.item, True)
        return out


def schema_size(schema: Mapping[str, Any], count: Count | None = None) -> SchemaSize:
    """The size of the largest answer to ``schema``: fixed tokens, and what grows with the input.

    ``count`` counts the tokens of keys and literal values (default: two characters a token).
    """
    return _Sizer(schema, count or _default_count).size(schema)


@dataclass(frozen=True)
class Bound:
    """A derived ``max_tokens`` and how it came about (for traces and error messages)."""

    max_tokens: int
    needed: int  # slack * (fixed + unbounded) + margin, before floor, ceiling and context
    bounded: bool  # the schema alone bounds the answer
    limited_by: str  # "schema", "input", "floor", "ceiling" or "context"
    input_tokens: int

    def explain(self) -> str:
        basis = "the schema's bounded fields" if self.bounded else f"{self.input_tokens} input tokens"
        return f"max_tokens={self.max_tokens} derived from {basis} (limited by {self.limited_by})"


def is_reasoning_model(model: str | None) -> bool:
    name = (model or "").lower().rsplit("/", 1)[-1].removeprefix("ft:")  # fine-tunes: ft:o4-mini:org::id
    return name.startswith(REASONING_PREFIXES)


def output_bound(
    schema: Mapping[str, Any],
    input_tokens: int,
    *,
    context_left: int | None = None,
    rule: BoundRule = DEFAULT_RULE,
    count: Count | None = None,
    reasoning: bool = False,
) -> Bound:
    """The derived output bound for an answer to ``schema`` from an input of ``input_tokens``.

    ``context_left`` (window minus prompt, when the window is known) caps the result;
    the caller decides whether a capped bound is still worth sending (see :func:`fits`).
    """
    size = schema_size(schema, count)
    n = max(0, int(input_tokens))
    grown = 0.0 if size.bounded else rule.per_input * n + size.item * n / rule.tokens_per_item
    needed = math.ceil(rule.slack * (size.fixed + grown)) + rule.margin
    limited_by = "schema" if size.bounded else "input"
    value = needed
    if value < rule.floor and not size.bounded:  # a bounded schema's size is already a worst case
        value, limited_by = rule.floor, "floor"
    if value > rule.ceiling:
        value, limited_by = rule.ceiling, "ceiling"
    if reasoning:
        value += rule.reasoning_extra
        needed += rule.reasoning_extra
    if context_left is not None and value > context_left:
        value, limited_by = max(0, context_left), "context"
    return Bound(value, needed, size.bounded, limited_by, n)


def fits(bound: Bound, rule: BoundRule = DEFAULT_RULE) -> bool:
    """Whether a context-capped bound still leaves a usable answer: at least what the
    schema needs, or the floor, whichever is smaller."""
    return bound.max_tokens >= min(bound.needed, rule.floor) and bound.max_tokens > 0


def max_output_tokens(
    schema: Mapping[str, Any],
    input_tokens: int,
    *,
    context_left: int | None = None,
    rule: BoundRule = DEFAULT_RULE,
    count: Count | None = None,
) -> int:
    """The derived ``max_tokens`` for ``schema`` and an input of ``input_tokens`` tokens.

    The entry point for backends that generate locally: same rule as HTTP requests.
    """
    return output_bound(schema, input_tokens, context_left=context_left, rule=rule, count=count).max_tokens
