"""Grounded strings: values that must be verbatim spans of the input text.

``Quote`` (or ``Annotated[str, Grounded(...)]``) marks one field; ``extract(..., grounded=True)``
marks every free string field. Local llguidance backends enforce it in the grammar (a substring
constraint on the input); every backend checks it after parsing and reasks with the fields that
don't occur. The trace records, per field, whether the value was found and where (character
offsets into the text): citations for free.

Pure: schema walking, marking and checking. The grammar itself is built in ``backends/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from schemagen.errors import SchemaError

#: The schema key that marks a grounded string; kept out of what goes on the wire.
MARKER = "x-grounded"
Path = tuple[str, ...]  # property names, "*" for every list item


@dataclass(frozen=True)
class Grounded:
    """Marks a ``str`` field whose value must occur verbatim in the input.

    Whitespace runs always compare equal; ``case_sensitive=False`` (the default) also ignores case.
    """

    case_sensitive: bool = False

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema: dict[str, Any] = handler(core_schema)
        target = handler.resolve_ref_schema(schema) if "$ref" in schema else schema
        if target.get("type") != "string":
            raise SchemaError(
                f"Quote/Grounded marks strings only, not {target.get('type') or 'this type'}: a grounded "
                "value must be a span of the text. Use Quote on str fields (Optional[Quote] is fine).",
                keyword=MARKER,
            )
        target[MARKER] = "case" if self.case_sensitive else True
        return schema


Quote = Annotated[str, Grounded()]


@dataclass(frozen=True)
class GroundedField:
    path: Path
    case_sensitive: bool = False

    def __str__(self) -> str:
        return _label(self.path)


@dataclass(frozen=True)
class Citation:
    """Where a grounded value was found: ``text[start:end]``, or ``found=False``."""

    field: str  # e.g. "items[0].description"
    value: str
    found: bool
    start: int | None = None
    end: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "value": self.value, "grounded": self.found,
                "start": self.start, "end": self.end}


def _label(path: Path) -> str:
    out = ""
    for part in path:
        out += "[*]" if part == "*" else (f".{part}" if out else part)
    return out or "$"


# ---------------------------------------------------------------- schema walking


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    seen = 0
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and seen < 32:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name not in defs:
            return node
        node, seen = defs[name], seen + 1
    return node


def _strings(
    node: Any, defs: dict[str, Any], path: Path, depth: int = 0,
) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every string-typed schema node under ``node`` with its value path."""
    node = _resolve(node, defs)
    if not isinstance(node, dict) or depth > 16:
        return
    if node.get("type") == "string":
        yield path, node
    for branch in node.get("anyOf", []) + node.get("oneOf", []):
        yield from _strings(branch, defs, path, depth + 1)
    for key, sub in (node.get("properties") or {}).items():
        yield from _strings(sub, defs, (*path, key), depth + 1)
    if isinstance(node.get("items"), dict):
        yield from _strings(node["items"], defs, (*path, "*"), depth + 1)


def free_text(node: dict[str, Any]) -> bool:
    """A string a model writes freely (not an enum, constant, date format or pattern)."""
    return not any(k in node for k in ("enum", "const", "format", "pattern"))


def pop_markers(schema: dict[str, Any]) -> tuple[GroundedField, ...]:
    """The fields marked grounded in ``schema``; the markers are removed from it (in place)."""
    defs = schema.get("$defs") or {}
    found = {path: node.get(MARKER) == "case" for path, node in _strings(schema, defs, ()) if MARKER in node}

    def strip(node: Any) -> None:
        if isinstance(node, dict):
            node.pop(MARKER, None)
            for value in node.values():
                strip(value)
        elif isinstance(node, list):
            for value in node:
                strip(value)

    strip(schema)
    return tuple(GroundedField(path, case) for path, case in found.items())


def all_strings(schema: dict[str, Any]) -> tuple[GroundedField, ...]:
    """Every free-text string field (``grounded=True``)."""
    defs = schema.get("$defs") or {}
    paths = dict.fromkeys(path for path, node in _strings(schema, defs, ()) if free_text(node))
    return tuple(GroundedField(path) for path in paths)


def mark(schema: dict[str, Any], fields: tuple[GroundedField, ...]) -> dict[str, Any]:
    """A copy of ``schema`` (refs inlined) with ``MARKER`` on each grounded string node: the
    local backend builds its substring grammar from it."""
    import copy

    defs = schema.get("$defs") or {}
    wanted = {f.path for f in fields}

    def visit(node: Any, path: Path, depth: int) -> Any:
        node = copy.deepcopy(_resolve(node, defs))
        if not isinstance(node, dict) or depth > 16:
            return node
        node.pop("$defs", None)
        if node.get("type") == "string" and path in wanted and free_text(node):
            node[MARKER] = True
        for key in ("anyOf", "oneOf"):
            if isinstance(node.get(key), list):
                node[key] = [visit(b, path, depth + 1) for b in node[key]]
        if isinstance(node.get("properties"), dict):
            node["properties"] = {k: visit(v, (*path, k), depth + 1) for k, v in node["properties"].items()}
        if isinstance(node.get("items"), dict):
            node["items"] = visit(node["items"], (*path, "*"), depth + 1)
        return node

    return dict(visit(schema, (), 0))


def has_marker(schema: Any) -> bool:
    if isinstance(schema, dict):
        return MARKER in schema or any(has_marker(v) for v in schema.values())
    if isinstance(schema, list):
        return any(has_marker(v) for v in schema)
    return False


# ---------------------------------------------------------------- checking values


def find(value: str, text: str, *, case_sensitive: bool = False) -> tuple[int, int] | None:
    """``(start, end)`` of ``value`` in ``text``; whitespace runs match any whitespace run."""
    parts = value.split()
    if not parts:
        return None
    pattern = r"\s+".join(re.escape(p) for p in parts)
    match = re.search(pattern, text, 0 if case_sensitive else re.IGNORECASE)
    return (match.start(), match.end()) if match else None


def _values(data: Any, path: Path, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if not path:
        yield prefix or "$", data
        return
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(data, list):
            for i, item in enumerate(data):
                yield from _values(item, rest, f"{prefix}[{i}]")
    elif isinstance(data, dict) and head in data:
        yield from _values(data[head], rest, f"{prefix}.{head}" if prefix else head)


def cite(arguments: Any, text: str, fields: tuple[GroundedField, ...]) -> list[Citation]:
    """A citation for every grounded string value in ``arguments`` (None and "" are skipped)."""
    out = []
    for f in fields:
        for label, value in _values(arguments, f.path):
            if not isinstance(value, str) or not value.strip():
                continue
            span = find(value, text, case_sensitive=f.case_sensitive)
            out.append(Citation(label, value, span is not None, *(span or (None, None))))
    return out


def errors(citations: list[Citation]) -> str:
    """Reask lines for the values that don't occur in the text."""
    return "\n".join(
        f"- `{c.field}`: {c.value!r} does not occur in the text; copy it exactly from the text"
        for c in citations if not c.found
    )


def segments(text: str) -> list[str]:
    """The text as the grammar's substring sources: whitespace runs become one space, and the
    characters a JSON string would have to escape split it (a span never contains them)."""
    flat = " ".join(text.split())
    parts = re.split(r'["\\\x00-\x1f\x7f]', flat)
    return list(dict.fromkeys(p.strip() for p in parts if p.strip()))


__all__ = [
    "MARKER",
    "Citation",
    "Grounded",
    "GroundedField",
    "Quote",
    "all_strings",
    "cite",
    "errors",
    "find",
    "has_marker",
    "mark",
    "pop_markers",
    "segments",
]
