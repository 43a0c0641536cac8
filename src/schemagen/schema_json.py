"""Stage 1 for JSON Schema targets: a schema dict in, a checked validator out. Pure.

A dict target is checked once against its metaschema (its ``$schema`` draft, 2020-12 by
default), every ``$ref`` must resolve without the network (remote refs are refused,
never fetched), and every ``format`` must be checkable. Values are validated with
``jsonschema`` and its errors become a ``pydantic.ValidationError`` (type ``json_schema``,
``loc`` = the JSON path), so the engine's reask loop treats both kinds of target alike.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urldefrag, urljoin

import jsonschema
import jsonschema.exceptions
import jsonschema.validators
from pydantic_core import PydanticCustomError, ValidationError
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT202012, specification_with

from schemagen.errors import SchemaError

__all__ = ["JsonSchemaTarget", "json_schema_target", "subschemas"]

#: the base URI of a schema without ``$id``; refs relative to it can't be fetched either
ROOT_URI = "urn:schemagen:root"

# Keywords whose values are sub-schemas: {name: schema}, [schema], or schema.
_MAP_KEYS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_LIST_KEYS = ("allOf", "anyOf", "oneOf", "prefixItems")
_ONE_KEYS = (
    "items",
    "additionalItems",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
)


def _direct(node: dict[str, Any], path: str) -> Iterator[tuple[Any, str]]:
    for key in _MAP_KEYS:
        sub = node.get(key)
        if isinstance(sub, dict):
            yield from ((child, f"{path}.{key}.{name}") for name, child in sub.items())
    for key in (*_LIST_KEYS, "items"):
        sub = node.get(key)
        if isinstance(sub, list):  # ``items`` is a list in drafts before 2020-12
            yield from ((child, f"{path}.{key}[{i}]") for i, child in enumerate(sub))
    for key in _ONE_KEYS:
        if key in node:
            yield node[key], f"{path}.{key}"


def subschemas(node: Any, path: str = "$") -> Iterator[tuple[dict[str, Any], str]]:
    """Every schema object in ``node`` (itself included) with its JSON path; keyword-aware,
    so an ``enum`` or ``const`` value that looks like a schema is not entered."""
    if not isinstance(node, dict):
        return
    yield node, path
    for child, child_path in _direct(node, path):
        yield from subschemas(child, child_path)


def _refuse(uri: str) -> Resource[Any]:
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # remote refs are never fetched (no network, no SSRF)


def _validator_class(schema: dict[str, Any]) -> type[Any]:
    declared = schema.get("$schema")
    cls: type[Any] = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    if isinstance(declared, str) and cls.META_SCHEMA.get("$id", cls.META_SCHEMA.get("id", "")).rstrip(
        "#"
    ) != declared.rstrip("#"):
        raise SchemaError(
            f"unknown $schema {declared!r}: use a JSON Schema draft URI "
            "(2020-12 is the default when $schema is left out)",
            path="$",
            keyword="$schema",
        )
    return cls


def _json_path(parts: Any) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _check_refs(schema: dict[str, Any], registry: Registry[Any]) -> None:
    """Every $ref must resolve inside the schema (or to a bundled metaschema)."""

    def visit(node: Any, path: str, base: str) -> None:
        if not isinstance(node, dict):
            return
        own = node.get("$id")
        if isinstance(own, str) and not own.startswith("#"):
            base = urljoin(base, own)
        for key in ("$ref", "$dynamicRef"):
            ref = node.get(key)
            if not isinstance(ref, str):
                continue
            try:
                registry.resolver(base_uri=base).lookup(ref)
            except (Unresolvable, NoSuchResource) as exc:
                remote = bool(urldefrag(ref).url) and not _known(registry, urldefrag(urljoin(base, ref)).url)
                why = (
                    (
                        "a remote $ref is never fetched; put the schema under $defs and refer to it with "
                        "#/$defs/<name>"
                    )
                    if remote
                    else f"it does not resolve inside the schema ({exc})"
                )
                raise SchemaError(f"$ref {ref!r} can't be used: {why}", path=path, keyword=key) from None
        for child, child_path in _direct(node, path):
            visit(child, child_path, base)

    own = schema.get("$id")
    visit(schema, "$", own if isinstance(own, str) else ROOT_URI)


def _known(registry: Registry[Any], uri: str) -> bool:
    try:
        registry.contents(uri)
    except (NoSuchResource, LookupError):
        return False
    return True


def _check_formats(schema: dict[str, Any], checker: jsonschema.FormatChecker) -> None:
    for node, path in subschemas(schema):
        fmt = node.get("format")
        if isinstance(fmt, str) and fmt not in checker.checkers:
            # a remote backend can't enforce it either: a value breaking it would pass unnoticed
            raise SchemaError(
                f"format {fmt!r} can be neither enforced nor validated (no checker; known: "
                f"{', '.join(sorted(checker.checkers))}); remove it or use a pattern instead",
                path=path,
                keyword="format",
            )


@dataclass(frozen=True)
class JsonSchemaTarget:
    """A checked JSON Schema and its validator."""

    schema: dict[str, Any]
    validator: Any

    def errors(self, value: Any) -> list[jsonschema.exceptions.ValidationError]:
        return sorted(self.validator.iter_errors(value), key=lambda e: list(e.absolute_path))

    def validate(self, value: Any, *, prefix: tuple[str | int, ...] = ()) -> Any:
        """``value`` if valid, else a pydantic ``ValidationError`` with jsonschema's messages."""
        errors = self.errors(value)
        if not errors:
            return value
        raise ValidationError.from_exception_data(
            "json_schema",
            [
                {
                    "type": PydanticCustomError("json_schema", "{message}", {"message": _message(e)}),
                    "loc": prefix + tuple(e.absolute_path),
                    "input": e.instance,
                }
                for e in errors
            ],
        )


def _message(error: jsonschema.exceptions.ValidationError) -> str:
    text = error.message
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{text} (keyword {error.validator!r} at {_json_path(error.absolute_schema_path)})"


def json_schema_target(schema: Any) -> JsonSchemaTarget:
    """Check ``schema`` and build its validator. Raises SchemaError naming the fault."""
    if not isinstance(schema, dict):
        raise SchemaError(f"a JSON Schema target must be a dict, got {type(schema).__name__}", path="$")
    schema = copy.deepcopy(schema)
    try:
        json.dumps(schema)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"the schema is not JSON data: {exc}", path="$") from None
    cls = _validator_class(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise SchemaError(
            f"not a valid JSON Schema ({cls.__name__} metaschema): {exc.message}",
            path=_json_path(exc.absolute_path),
            keyword=str(exc.absolute_path[-1]) if exc.absolute_path else None,
        ) from None
    spec = specification_with(cls.META_SCHEMA.get("$schema", ""), default=DRAFT202012)
    root = schema.get("$id") if isinstance(schema.get("$id"), str) else ROOT_URI
    from jsonschema_specifications import REGISTRY as METASCHEMAS

    # referencing's attrs classes: mypy reads their __init__ without these keyword arguments
    resource: Resource[Any] = Resource(contents=schema, specification=spec)  # type: ignore[call-arg]
    local: Registry[Any] = Registry(retrieve=_refuse)  # type: ignore[call-arg]
    local = local.with_resource(root, resource).crawl()
    registry = local.combine(METASCHEMAS)
    _check_refs(schema, registry)
    checker = cls.FORMAT_CHECKER
    _check_formats(schema, checker)
    return JsonSchemaTarget(schema, cls(schema, registry=registry, format_checker=checker))
