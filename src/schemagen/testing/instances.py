"""A minimal valid instance of a JSON schema (enough for tool schemas built from models)."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]


def example_for_schema(schema: Any, root: Any = None, _depth: int = 0) -> Any:
    """A small value valid for ``schema``. Not supported: ``pattern``, ``not``, ``if``."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or _depth > 32:
        return None

    def again(s: Any) -> Any:
        return example_for_schema(s, root, _depth + 1)

    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            if part:
                target = target[part.replace("~1", "/").replace("~0", "~")]
        return again(target)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return again(options[0])
    if schema.get("allOf"):
        merged: JSON = {}
        for part in schema["allOf"]:
            value = again(part)
            if not isinstance(value, dict):
                return value
            merged.update(value)
        return merged
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties") or {}
        return {name: again(props.get(name, {})) for name in schema.get("required", [])}
    if kind == "array" or (kind is None and "items" in schema):
        prefix = [again(s) for s in schema.get("prefixItems") or []]
        count = max(int(schema.get("minItems", 0)) - len(prefix), 0)
        items = schema.get("items")
        if isinstance(items, dict):
            return prefix + [again(items) for _ in range(count)]
        return prefix + [None] * count
    if kind == "string":
        fmt = schema.get("format")
        value = {"date": "2024-01-01", "date-time": "2024-01-01T00:00:00Z", "time": "00:00:00",
                 "email": "a@example.com", "uri": "https://example.com/",
                 "uuid": "00000000-0000-4000-8000-000000000000"}.get(str(fmt), "")
        return value or "x" * max(int(schema.get("minLength", 1)), 0)
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        value = low if low is not None else (min(0, high) if high is not None else 0)
        if "exclusiveMinimum" in schema and "minimum" not in schema:
            value = value + 1 if kind == "integer" else value + 0.5
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return False
    return None
