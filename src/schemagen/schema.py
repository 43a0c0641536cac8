"""Stage 1: a Python type or a JSON Schema dict becomes a forced tool definition.

Pure and cached per (target, strict). Any target whose schema is not an object
(``list[Invoice]``, ``Literal[...]``, ``Enum``, ``str``, ``{"type": "array"}``...) is
wrapped in an internal object and unwrapped again on return. Dataclasses and
TypedDicts go through pydantic's ``TypeAdapter``; dict targets through
:mod:`schemagen.schema_json` (validated with ``jsonschema``).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import functools
import inspect
import json
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

import typing_extensions
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model

from schemagen.enforcement import KeywordEnforcement, enforcement_report, grammar_schema
from schemagen.errors import SchemaError
from schemagen.grounding import GroundedField, pop_markers
from schemagen.schema_json import json_schema_target

StrictSetting = Union[bool, Literal["auto"]]  # noqa: UP007 - a runtime alias on 3.10

# Keywords OpenAI's strict mode rejects; they are moved into the description so the
# model still sees them, and Pydantic still enforces them on the way back.
STRICT_UNSUPPORTED: dict[str, tuple[str, ...]] = {
    "string": ("minLength", "maxLength", "pattern", "format"),
    "number": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
    "integer": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
    "array": ("minItems", "maxItems", "uniqueItems", "contains", "minContains", "maxContains"),
    "object": ("minProperties", "maxProperties", "patternProperties", "propertyNames"),
}
# Keywords that make a schema impossible to express in strict mode.
STRICT_IMPOSSIBLE = ("allOf", "not", "if", "then", "else", "prefixItems", "dependentRequired",
                     "dependentSchemas", "unevaluatedProperties", "unevaluatedItems", "$id", "$anchor",
                     "$dynamicRef", "$dynamicAnchor", "dependencies", "additionalItems")
_SCHEMA_MAP_KEYS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_LIST_KEYS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_KEYS = ("items", "additionalProperties", "not", "if", "then", "else", "contains")
_TOOL_NAME_BAD = re.compile(r"[^a-zA-Z0-9_-]")


@dataclass(frozen=True)
class SchemaChange:
    """One edit the transform made, at a JSON path of the tool's parameters."""

    path: str
    change: str

    def __str__(self) -> str:
        return f"{self.path}: {self.change}"


@dataclass(frozen=True)
class ToolSpec:
    """The forced tool for one target type: what to send, and how to read the answer."""

    name: str
    description: str
    parameters: dict[str, Any]
    strict: bool
    report: tuple[SchemaChange, ...]
    model: type[BaseModel] | None  # None for dict, dataclass and TypedDict targets
    unwrap: Callable[[Any], Any] = field(repr=False)
    wrapped: bool = False
    check: Callable[[Any], Any] | None = field(default=None, repr=False)  # arguments -> value
    source: dict[str, Any] = field(default_factory=dict, repr=False)  # parameters before strict
    enforcement: tuple[KeywordEnforcement, ...] = field(default=(), repr=False)
    grounded: tuple[GroundedField, ...] = ()  # fields marked Quote/Grounded (markers kept off the wire)

    @property
    def tool(self) -> dict[str, Any]:
        function: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }
        if self.strict:
            function["strict"] = True
        return {"type": "function", "function": function}

    @functools.cached_property
    def constraint(self) -> dict[str, Any]:
        """The schema a local grammar enforces: the parameters minus what it can't (see
        :mod:`schemagen.enforcement`); validation checks the rest."""
        return grammar_schema(self.parameters)

    @property
    def tool_choice(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name}}

    def validate(self, data: Any) -> Any:
        """Validate decoded arguments and return the caller's value (unwrapped).

        Raises ``pydantic.ValidationError`` for every kind of target.
        """
        if self.strict:
            data = drop_transform_nulls(self.source, data)
        if self.check is not None:
            return self.check(data)
        assert self.model is not None
        return self.unwrap(self.model.model_validate(data))


# ---------------------------------------------------------------- wrapping targets


def _is_model(tp: Any) -> bool:
    return inspect.isclass(tp) and issubclass(tp, BaseModel)


def _type_label(tp: Any) -> str:
    if _is_model(tp) or (inspect.isclass(tp) and issubclass(tp, enum.Enum)):
        return str(tp.__name__)
    if inspect.isclass(tp):
        return tp.__name__.capitalize()
    return "Value"


def _own_doc(tp: Any) -> str | None:
    doc = tp.__dict__.get("__doc__") if inspect.isclass(tp) else None
    return inspect.cleandoc(doc) if doc else None


def _wrap(target: Any) -> tuple[type[BaseModel], Callable[[Any], Any], str, str, bool]:
    """(model, unwrap, tool name, description, wrapped?) for any supported target type."""
    if _is_model(target):
        name = target.__name__
        desc = _own_doc(target) or f"Record the {name} found in the input."
        return target, lambda inst: inst, name, desc, False
    origin = get_origin(target)
    if origin in (list, typing.List):  # noqa: UP006 - typing.List is what get_origin can give
        (item,) = get_args(target) or (Any,)
        label = _type_label(item)
        model = create_model(
            f"{label}List",
            __config__=ConfigDict(extra="forbid"),
            items=(list[item], ...),  # type: ignore[valid-type]  # a type built at runtime
        )
        desc = f"Record every {label} found in the input, in order."
        if _own_doc(item):
            desc += f" Each {label}: {_own_doc(item)}"
        return model, lambda inst: inst.items, f"{label}List", desc, True
    is_choice = origin is Literal or (inspect.isclass(target) and issubclass(target, enum.Enum))
    if is_choice:
        label = _type_label(target) if origin is not Literal else "Label"
        model = create_model("Classification", __config__=ConfigDict(extra="forbid"), label=(target, ...))
        own = _own_doc(target) if origin is not Literal else None
        desc = own or "Classify the input: choose exactly one label."
        return model, lambda inst: inst.label, f"classify_{label}", desc, True
    label = _type_label(target)
    model = create_model("Answer", __config__=ConfigDict(extra="forbid"), value=(target, ...))
    return model, lambda inst: inst.value, f"answer_{label}", "Answer from the input.", True


# ---------------------------------------------------------------- schema walking


def _children(node: dict[str, Any], path: str) -> list[tuple[dict[str, Any], str]]:
    """Sub-schemas of a schema node with their JSON paths."""
    out: list[tuple[dict[str, Any], str]] = []
    for key in _SCHEMA_MAP_KEYS:
        sub = node.get(key)
        if isinstance(sub, dict):
            out += [(v, f"{path}.{key}.{k}") for k, v in sub.items() if isinstance(v, dict)]
    for key in _SCHEMA_LIST_KEYS:
        sub = node.get(key)
        if isinstance(sub, list):
            out += [(v, f"{path}.{key}[{i}]") for i, v in enumerate(sub) if isinstance(v, dict)]
    for key in _SCHEMA_KEYS:
        sub = node.get(key)
        if isinstance(sub, dict):
            out.append((sub, f"{path}.{key}"))
    return out


def _walk(node: dict[str, Any], path: str = "$") -> typing.Iterator[tuple[dict[str, Any], str]]:
    yield node, path
    for child, child_path in _children(node, path):
        yield from _walk(child, child_path)


def _ref_name(ref: str) -> str:
    """The $defs name a ``#/$defs/<name>`` ref points at; "" for any other ref."""
    name = ref.removeprefix("#/$defs/")
    return name if name != ref and "/" not in name else ""


def _refs_in(node: dict[str, Any]) -> list[str]:
    return [_ref_name(n["$ref"]) for n, _ in _walk(node) if isinstance(n.get("$ref"), str)]


def _recursive_defs(defs: dict[str, Any]) -> set[str]:
    """Names of $defs that can reach themselves through $refs."""
    graph = {name: set(_refs_in(d)) for name, d in defs.items()}
    recursive: set[str] = set()
    for start in graph:
        stack, seen = list(graph[start]), set()
        while stack:
            cur = stack.pop()
            if cur == start:
                recursive.add(start)
                break
            if cur in seen or cur not in graph:
                continue
            seen.add(cur)
            stack.extend(graph[cur])
    return recursive


def _auto_title(key: str) -> str:
    return key.replace("_", " ").title()


def _class_titles(schema: dict[str, Any]) -> set[str]:
    """Titles Pydantic gives models and enums: the root's and every $defs entry's."""
    titles = {d.get("title") for d in schema.get("$defs", {}).values() if isinstance(d, dict)}
    titles.add(schema.get("title"))
    return {t for t in titles if isinstance(t, str)}


def _drop_auto_titles(schema: dict[str, Any], class_titles: set[str], report: list[SchemaChange]) -> None:
    """Remove titles Pydantic derived from class or field names; keep titles a user wrote."""
    dropped = 0

    def visit(node: dict[str, Any], path: str, field_name: str | None) -> None:
        nonlocal dropped
        title = node.get("title")
        if isinstance(title, str) and (
            title in class_titles or (field_name is not None and title == _auto_title(field_name))
        ):
            del node["title"]
            dropped += 1
        for child, child_path in _children(node, path):
            parent_key, _, name = child_path[len(path) + 1:].partition(".")
            visit(child, child_path, name if parent_key == "properties" else None)

    visit(schema, "$", None)
    if dropped:
        report.append(SchemaChange("$", f"dropped {dropped} auto-generated titles"))


def _inline_refs(schema: dict[str, Any], report: list[SchemaChange], *, all_refs: bool) -> None:
    """Inline $defs used once (all non-recursive ones when ``all_refs``); drop unused defs.

    A ``$ref`` with sibling keywords is merged into the inlined copy, so no
    constraint is lost.
    """
    defs: dict[str, Any] = schema.get("$defs", {})
    if not defs:
        return
    recursive = _recursive_defs(defs)
    counts: dict[str, int] = {}
    for name in _refs_in({k: v for k, v in schema.items() if k != "$defs"}) + [
        r for d in defs.values() for r in _refs_in(d)
    ]:
        counts[name] = counts.get(name, 0) + 1
    inlinable = {n for n in defs if n not in recursive and (all_refs or counts.get(n, 0) <= 1)}

    def resolve(node: Any, path: str) -> Any:
        if isinstance(node, list):
            return [resolve(v, f"{path}[{i}]") for i, v in enumerate(node)]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and _ref_name(ref) in inlinable:
            name = _ref_name(ref)
            merged = copy.deepcopy(defs[name])
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            merged.update(siblings)
            report.append(SchemaChange(path, f"inlined $defs/{name}"))
            return resolve(merged, path)
        return {k: (resolve(v, f"{path}.{k}") if k != "$defs" else v) for k, v in node.items()}

    new = resolve({k: v for k, v in schema.items() if k != "$defs"}, "$")
    kept = {n: resolve(d, f"$.$defs.{n}") for n, d in defs.items() if n not in inlinable}
    schema.clear()
    schema.update(new)
    if kept:
        schema["$defs"] = kept


def _allows_null(node: dict[str, Any]) -> bool:
    t = node.get("type")
    if t == "null" or (isinstance(t, list) and "null" in t):
        return True
    return any(_allows_null(b) for b in node.get("anyOf", []) if isinstance(b, dict))


def _make_nullable(node: dict[str, Any]) -> dict[str, Any]:
    if _allows_null(node):
        return node
    t = node.get("type")
    if isinstance(t, str) and "$ref" not in node and "enum" not in node and "anyOf" not in node:
        return {**node, "type": [t, "null"]}
    if "anyOf" in node:
        return {**node, "anyOf": [*node["anyOf"], {"type": "null"}]}
    keep = {k: node[k] for k in ("description",) if k in node}
    inner = {k: v for k, v in node.items() if k not in keep}
    return {"anyOf": [inner, {"type": "null"}], **keep}


def _strict_transform(schema: dict[str, Any], report: list[SchemaChange]) -> dict[str, Any]:
    """OpenAI strict mode: closed objects, all properties required, no defaults,
    unsupported keywords moved to descriptions. Raises SchemaError when impossible."""

    def visit(node: dict[str, Any], path: str) -> dict[str, Any]:
        if not isinstance(node, dict):
            raise SchemaError("strict mode does not support boolean schemas", path=path)
        if node == {} or (set(node) <= {"description", "title"} and "type" not in node):
            raise SchemaError("strict mode needs a type for every value (Any is not allowed)",
                              path=path, keyword="type")
        for key in STRICT_IMPOSSIBLE:
            if key in node:
                raise SchemaError("strict mode does not support this keyword", path=path, keyword=key)
        node = dict(node)
        # A recursive $ref can't be inlined, and strict allows it no siblings.
        if "$ref" in node and len(node) > 1 and "$defs" not in node:
            dropped = sorted(k for k in node if k != "$ref")
            node = {"$ref": node["$ref"]}
            report.append(SchemaChange(path, f"dropped siblings of a recursive $ref: {dropped}"))
        if "default" in node:
            del node["default"]
            report.append(SchemaChange(path, "removed default"))
        types = node.get("type")
        type_list = types if isinstance(types, list) else [types] if isinstance(types, str) else []
        moved = []
        for t in type_list:
            for key in STRICT_UNSUPPORTED.get(t, ()):
                if key in node:
                    moved.append(f"{key}: {node.pop(key)!r}")
        if moved:
            note = "; ".join(moved)
            desc = node.get("description")
            node["description"] = f"{desc} ({note})" if desc else f"({note})"
            report.append(SchemaChange(path, f"moved to description: {note}"))
        if "object" in type_list or "properties" in node:
            extra = node.get("additionalProperties")
            if isinstance(extra, dict) or extra is True or ("properties" not in node and extra is None):
                raise SchemaError(
                    "strict mode needs fixed object keys (dict/mapping fields can't be strict)",
                    path=path, keyword="additionalProperties",
                )
            props = node.get("properties", {})
            required = set(node.get("required", []))
            new_props = {}
            for name, sub in props.items():
                sub_path = f"{path}.properties.{name}"
                sub = visit(sub, sub_path)
                if name not in required:
                    sub = _make_nullable(sub)
                    report.append(SchemaChange(sub_path, "optional field made required and nullable"))
                new_props[name] = sub
            node["properties"] = new_props
            node["required"] = list(new_props)
            if extra is None:
                report.append(SchemaChange(path, "set additionalProperties: false"))
            node["additionalProperties"] = False
        for key in ("anyOf", "oneOf"):
            if key in node:
                node[key] = [visit(b, f"{path}.{key}[{i}]") for i, b in enumerate(node[key])]
        if "oneOf" in node:
            node["anyOf"] = node.pop("oneOf")
            report.append(SchemaChange(path, "oneOf rewritten as anyOf"))
        if isinstance(node.get("items"), dict):
            node["items"] = visit(node["items"], f"{path}.items")
        if "$defs" in node:
            node["$defs"] = {n: visit(d, f"$.$defs.{n}") for n, d in node["$defs"].items()}
        return node

    return visit(schema, "$")


def compact_schema(schema: dict[str, Any], report: list[SchemaChange] | None = None) -> dict[str, Any]:
    """Drop auto titles and inline single-use $defs, keeping every constraint."""
    report = report if report is not None else []
    out = copy.deepcopy(schema)
    root_ref = out.get("$ref")
    if isinstance(root_ref, str) and _ref_name(root_ref) in out.get("$defs", {}):
        # A self-recursive root model is emitted as a bare $ref; a tool needs an object.
        defs = out["$defs"]
        out = {**copy.deepcopy(defs[_ref_name(root_ref)]), "$defs": defs}
    class_titles = _class_titles(out)
    _inline_refs(out, report, all_refs=False)
    _drop_auto_titles(out, class_titles, report)
    return out


def _lift_ref_siblings(schema: dict[str, Any], report: list[SchemaChange]) -> None:
    """Strict mode rejects keywords beside a ``$ref``: wrap such refs in a one-branch anyOf.

    Shared $defs stay shared (strict accepts $defs), so a DAG of models keeps its size
    instead of growing exponentially by inlining.
    """
    for node, path in _walk(schema):
        ref = node.get("$ref")
        if isinstance(ref, str) and len(node) > 1 and "anyOf" not in node and "$defs" not in node:
            node["anyOf"] = [{"$ref": node.pop("$ref")}]
            report.append(SchemaChange(path, "$ref with sibling keywords wrapped in anyOf"))


def strict_schema(schema: dict[str, Any], report: list[SchemaChange] | None = None) -> dict[str, Any]:
    """The strict-mode form of a (compacted) schema. Raises SchemaError if impossible."""
    report = report if report is not None else []
    out = copy.deepcopy(schema)
    _lift_ref_siblings(out, report)
    return _strict_transform(out, report)


def _is_adapter_target(tp: Any) -> bool:
    """Dataclasses and TypedDicts: object schemas that pydantic validates via TypeAdapter."""
    return inspect.isclass(tp) and (dataclasses.is_dataclass(tp) or typing_extensions.is_typeddict(tp))


def _adapter_doc(tp: Any) -> str | None:
    doc = _own_doc(tp)
    # a dataclass without a docstring gets its signature as __doc__
    return None if doc is None or doc.startswith(f"{tp.__name__}(") else doc


def build_tool(target: Any, strict: StrictSetting = "auto") -> ToolSpec:
    """The forced tool definition for ``target``, cached per (target, strict).

    ``target`` is a Pydantic model, any type pydantic can validate (``list[Model]``,
    ``Literal``, a dataclass, a TypedDict...), or a JSON Schema dict.
    """
    if isinstance(target, dict):
        try:
            key = json.dumps(target, ensure_ascii=False)  # key order kept: it orders the output
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"the schema is not JSON data: {exc}", path="$") from None
        return _build_json_tool(key, strict)
    if isinstance(target, list | tuple | set | bool | int | float | str | bytes | None):
        raise SchemaError(f"a target must be a type or a JSON Schema dict (an object schema), "
                          f"got the {type(target).__name__} {target!r:.60}", path="$")
    return _build_type_tool(target, strict)


@functools.lru_cache(maxsize=512)
def _build_type_tool(target: Any, strict: StrictSetting) -> ToolSpec:
    check = None
    try:
        if _is_adapter_target(target):
            adapter: TypeAdapter[Any] = TypeAdapter(target)
            model, unwrap, wrapped = None, (lambda v: v), False
            name = target.__name__
            description = _adapter_doc(target) or f"Record the {name} found in the input."
            raw, check = adapter.json_schema(), adapter.validate_python
        else:
            model, unwrap, name, description, wrapped = _wrap(target)
            raw = model.model_json_schema()
    except SchemaError:
        raise
    except Exception as exc:  # pydantic raises several types for unschemable targets
        raise SchemaError(f"{target!r} can't be turned into a JSON schema: {exc}") from exc
    report: list[SchemaChange] = []
    params = compact_schema(raw, report)
    grounded = pop_markers(params)
    params.pop("title", None)
    params.pop("description", None)  # it is the tool's description already
    return _finish(name, description, params, strict, report, model, unwrap, wrapped, check, grounded)


_VALUE_KEY = "value"


def _rebase_refs(node: Any, prefix: str) -> None:
    """Point local JSON-pointer refs of a schema moved under ``prefix`` at their new place."""
    from schemagen.schema_json import subschemas

    for sub, _ in subschemas(node):
        ref = sub.get("$ref")
        if isinstance(ref, str) and (ref == "#" or ref.startswith("#/")) and not ref.startswith("#/$defs/"):
            sub["$ref"] = prefix + ref[1:]


def _object_parameters(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Tool parameters for a JSON Schema: itself when its root is an object, else wrapped
    as ``{"value": schema}`` with $defs kept at the root. Returns (parameters, wrapped)."""
    params = {k: v for k, v in copy.deepcopy(schema).items()
              if k not in ("$schema", "$comment", "title", "description")}
    if params.get("type") == "object":
        return params, False
    defs = params.pop("$defs", None) if "$id" not in params else None
    if "$id" not in params:  # with an $id, "#/..." refs resolve against the moved schema itself
        _rebase_refs(params, f"#/properties/{_VALUE_KEY}")
        if defs:
            _rebase_refs(defs, f"#/properties/{_VALUE_KEY}")
    out: dict[str, Any] = {"type": "object", "properties": {_VALUE_KEY: params}, "required": [_VALUE_KEY],
                           "additionalProperties": False}
    if defs:
        out["$defs"] = defs
    return out, True


def list_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a list of ``schema`` (``--many`` for a schema file)."""
    items = copy.deepcopy(schema)
    out: dict[str, Any] = {"type": "array", "items": items}
    if "$id" not in items:
        _rebase_refs(items, "#/items")
        if "$defs" in items:
            out["$defs"] = items.pop("$defs")
    for key in ("$schema", "title"):
        if key in items:
            out[key] = items.pop(key) if key == "$schema" else f"{items[key]}_list"
    return out


@functools.lru_cache(maxsize=256)
def _build_json_tool(key: str, strict: StrictSetting) -> ToolSpec:
    schema = json.loads(key)
    target = json_schema_target(schema)  # metaschema, refs, formats: SchemaError if unusable
    params, wrapped = _object_parameters(schema)
    kind = schema.get("type", "non-object")
    report = [SchemaChange("$", f'wrapped the {kind} root as {{"{_VALUE_KEY}": ...}}')] if wrapped else []
    title = schema.get("title")
    name = _TOOL_NAME_BAD.sub("_", title) if isinstance(title, str) and title.strip() else "extract"
    desc = schema.get("description")
    description = desc if isinstance(desc, str) and desc.strip() else "Record the data found in the input."
    unwrap = _unwrap_value if wrapped else (lambda v: v)

    def check(data: Any) -> Any:
        if wrapped:
            if not isinstance(data, dict) or _VALUE_KEY not in data:
                raise ValidationError.from_exception_data("json_schema", [{
                    "type": "missing", "loc": (_VALUE_KEY,), "input": data}])
            return target.validate(data[_VALUE_KEY], prefix=(_VALUE_KEY,))
        return target.validate(data)

    return _finish(name, description, params, strict, report, None, unwrap, wrapped, check)


def _unwrap_value(data: Any) -> Any:
    return data[_VALUE_KEY]


def _finish(name: str, description: str, params: dict[str, Any], strict: StrictSetting,
            report: list[SchemaChange], model: type[BaseModel] | None, unwrap: Callable[[Any], Any],
            wrapped: bool, check: Callable[[Any], Any] | None,
            grounded: tuple[GroundedField, ...] = ()) -> ToolSpec:
    """Apply strict mode where asked and possible, and build the spec with its reports."""
    source, use_strict = params, False
    if strict is not False:
        strict_report: list[SchemaChange] = []
        try:
            strict_params = strict_schema(params, strict_report)
        except SchemaError:
            if strict is True:
                raise
        else:
            params, use_strict = strict_params, True
            report = report + strict_report
    safe_name = _TOOL_NAME_BAD.sub("_", name)[:64] or "extract"
    enforcement = enforcement_report(source, params if use_strict else None)
    return ToolSpec(safe_name, description, params, use_strict, tuple(report), model, unwrap, wrapped,
                    check, source, enforcement, grounded)


def output_schema(target: Any) -> dict[str, Any]:
    """The compact (non-strict) JSON schema of the arguments, for constrained decoding."""
    return build_tool(target, strict=False).parameters


# ---------------------------------------------------------------- strict nulls


def _resolve(node: Any, root: dict[str, Any]) -> Any:
    for _ in range(64):  # a chain of refs, never a loop
        ref = node.get("$ref") if isinstance(node, dict) else None
        name = _ref_name(ref) if isinstance(ref, str) else ""
        if not name or name not in root.get("$defs", {}):
            return node
        node = root["$defs"][name]
    return node


def _nullable(node: Any) -> bool:
    if not isinstance(node, dict):
        return True
    if "type" not in node and not ({"anyOf", "oneOf", "allOf", "enum", "const", "$ref"} & set(node)):
        return True  # Any
    if None in node.get("enum", [1]) or ("const" in node and node["const"] is None):
        return True
    return _allows_null(node)


def drop_transform_nulls(schema: dict[str, Any], data: Any) -> Any:
    """Strict mode made optional properties nullable; a null for a property whose own schema
    rejects null means "left out", so the key is dropped before validation.

    Driven by ``schema`` (the parameters before the strict transform), so aliases
    (``validation_alias`` too), lists of optional models and dict targets all work.
    """

    def visit(node: Any, value: Any) -> Any:
        node = _resolve(node, schema)
        if not isinstance(node, dict):
            return value
        branches = [b for k in ("anyOf", "oneOf", "allOf") for b in node.get(k, []) if isinstance(b, dict)]
        if isinstance(value, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                value = dict(value)
                required = set(node.get("required", []))
                for key, sub in props.items():
                    if key not in value:
                        continue
                    if value[key] is None and key not in required and not _nullable(_resolve(sub, schema)):
                        del value[key]
                    else:
                        value[key] = visit(sub, value[key])
        elif isinstance(value, list) and isinstance(node.get("items"), dict):
            value = [visit(node["items"], v) for v in value]
        for branch in branches:
            value = visit(branch, value)
        return value

    return visit(schema, data)


def json_schema_of(tp: Any) -> dict[str, Any]:
    """The plain JSON schema of any type (used for prompts that describe a value)."""
    return TypeAdapter(tp).json_schema()
