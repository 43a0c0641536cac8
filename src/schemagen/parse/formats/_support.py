"""Pieces the native-format parsers share: JSON spans, argument decoding, the ``schema``
argument's shapes, and typing text values from a JSON schema. Pure functions."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from schemagen.parse.formats.base import ParsedCall, ParseReport
from schemagen.parse.jsonfix import NotJSON, json_end, loads_lenient

_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*[ \t]*\n?(.*?)(?:\n?[ \t]*```\s*|\s*)$", re.DOTALL)
_FUNCTION_NAME = re.compile(r"^[A-Za-z_][\w.\-]*$")
# Ids that are opaque handles rather than "functions.<name>:<n>" or a bare name.
_OPAQUE_ID = re.compile(r"^(?:call|toolu|chatcmpl|fc|tool|id)[_\-]|^[0-9a-fA-F\-]{8,}$|^\d+$")


def preview(text: str, limit: int = 60) -> str:
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


def strip_fence(text: str) -> str:
    """The inside of a ```json fenced block (closing fence optional), or the text unchanged."""
    match = _FENCE.match(text)
    return match.group(1) if match and text.lstrip().startswith("```") else text


def leading_json(text: str) -> tuple[str, str] | None:
    """Split ``text`` into the JSON value it starts with and what follows; None if it does not
    start with ``{``/``[``. An unclosed value takes the rest of the text."""
    stripped = text.lstrip()
    if not stripped or stripped[0] not in "{[":
        return None
    end = json_end(stripped, 0)
    if end is None:
        return stripped, ""
    return stripped[:end], stripped[end:]


def decode_json(text: str, report: ParseReport, what: str) -> tuple[bool, Any]:
    """Decode JSON leniently; a repair goes into ``notes``, a failure into ``skipped``."""
    try:
        decoded = loads_lenient(strip_fence(text))
    except NotJSON as exc:
        report.skipped.append(f"{what}: not JSON ({exc}): {preview(text)}")
        return False, None
    report.notes.extend(f"{what}: {note}" for note in decoded.notes)
    return True, decoded.value


def decode_arguments(
    value: Any, report: ParseReport, what: str, *, require_object: bool = True
) -> tuple[bool, Any]:
    """Arguments given as an object, or as JSON text (some models double-encode them).

    With ``require_object`` anything but an object is refused: repair can turn prose such as
    ``{sunny}`` into a list, which must not pass for arguments.
    """
    if isinstance(value, str):
        if not value.strip():
            report.notes.append(f"{what}: empty arguments text read as {{}}")
            return True, {}
        ok, value = decode_json(value, report, what)
        if not ok:
            return False, None
        report.notes.append(f"{what}: arguments were a JSON string, decoded")
    if require_object and not isinstance(value, Mapping):
        kind = type(value).__name__
        report.skipped.append(f"{what}: arguments are a {kind}, not an object: {preview(str(value))}")
        return False, None
    return True, value


def leading_arguments(
    text: str, report: ParseReport, what: str, missing: str, *, fence: bool = False
) -> tuple[str, Any] | None:
    """The arguments object ``text`` starts with, as ``(fragment, arguments)``: text after the
    JSON is noted, the JSON and then the arguments decoded. None when there is none (``missing``
    says so in ``skipped``) or it does not decode. ``fence``: a closing ```` ``` ```` after the JSON
    is expected, not worth a note."""
    split = leading_json(text)
    if split is None:
        report.skipped.append(f"{what}: {missing}: {preview(text)}")
        return None
    fragment, rest = split
    if (rest.strip().strip("`") if fence else rest).strip():
        report.notes.append(f"{what}: ignored text after the arguments: {preview(rest)}")
    ok, value = decode_json(fragment, report, what)
    if ok:
        ok, value = decode_arguments(value, report, what)
    return (fragment, value) if ok else None


def envelope_calls(
    value: Any, report: ParseReport, what: str, raw: str, *, shape: str, keep_id: bool = True,
    show_item: bool = True,
) -> None:
    """Append a call for each ``{"name", "arguments"}`` envelope in ``value`` (one or a list);
    an item without a name or arguments is skipped as "not a ``shape`` call" (showing the item,
    or ``raw`` without ``show_item``)."""
    for item in value if isinstance(value, list) else [value]:
        name, arguments, call_id, has_arguments = envelope(item)
        if not name or not has_arguments:
            report.skipped.append(f"{what}: not a {shape} call: {preview(str(item) if show_item else raw)}")
            continue
        ok, arguments = decode_arguments(arguments, report, what)
        if ok:
            call_id = call_id if keep_id else None
            report.calls.append(ParsedCall(name=name, arguments=arguments, raw=raw, id=call_id))


def envelope(value: Any) -> tuple[str | None, Any, str | None, bool]:
    """(name, arguments, id, has_arguments) of a ``{"name", "arguments"|"parameters"}`` object,
    also inside an OpenAI-style ``{"function": {...}}`` wrapper."""
    if not isinstance(value, Mapping):
        return None, None, None, False
    call_id = str(value["id"]) if value.get("id") is not None else None
    if isinstance(value.get("function"), Mapping):
        name, arguments, _, has_arguments = envelope(value["function"])
        return name, arguments, call_id, has_arguments
    name = value["name"] if isinstance(value.get("name"), str) else None
    for key in ("arguments", "parameters", "args", "input"):
        if key in value:
            return name, value[key], call_id, True
    return name, None, call_id, False


def valid_name(name: str) -> bool:
    return bool(_FUNCTION_NAME.match(name))


# --------------------------------------------------------------------------- the schema argument


def _tools(schema: Any) -> list[Mapping[str, Any]]:
    if isinstance(schema, list | tuple):
        return [tool for tool in schema if isinstance(tool, Mapping)]
    if isinstance(schema, Mapping) and ("function" in schema or {"name", "parameters"} <= schema.keys()):
        return [schema]
    return []


def _function(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    function = tool.get("function")
    return function if isinstance(function, Mapping) else tool


def tool_names(schema: Any) -> list[str]:
    """Tool names the ``schema`` argument declares (empty for a bare parameters schema)."""
    return [str(_function(t)["name"]) for t in _tools(schema) if isinstance(_function(t).get("name"), str)]


def parameters_schema(schema: Any, name: str | None) -> Mapping[str, Any] | None:
    """The parameters schema for tool ``name``. ``schema`` may be that schema itself, one
    OpenAI-style tool, or a list of tools."""
    tools = _tools(schema)
    if not tools:
        return schema if isinstance(schema, Mapping) else None
    for tool in tools:
        function = _function(tool)
        if name is None or function.get("name") == name:
            params = function.get("parameters")
            return params if isinstance(params, Mapping) else None
    return None


def name_from_id(raw_id: str, known: list[str], report: ParseReport) -> str | None:
    """The function name inside a call id: ``functions.name:0``, ``name:0``, ``name``.
    Opaque ids (``call_x``, hex) carry no name: None, with a note."""
    candidate = raw_id.strip().strip("\"'")
    if candidate.startswith("functions."):
        candidate = candidate[len("functions."):]
    candidate = re.sub(r":\d+$", "", candidate).strip()
    if candidate in known:
        return candidate
    if not candidate or not valid_name(candidate) or _OPAQUE_ID.match(candidate):
        report.notes.append(f"call id {raw_id!r} names no function; the call's name is left open")
        return None
    if known:
        report.notes.append(f"call id {raw_id!r} names {candidate!r}, which is not among the tools given")
    return candidate


# --------------------------------------------------------------------------- typing text values


def _resolve(node: Any, root: Mapping[str, Any], depth: int = 0) -> Mapping[str, Any]:
    if not isinstance(node, Mapping):
        return {}
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/") and depth < 32:
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, Mapping) else None
        return _resolve(target, root, depth + 1)
    return node


def allowed_types(node: Any, root: Mapping[str, Any]) -> set[str]:
    """JSON types a property schema allows (through $ref, anyOf/oneOf/allOf, enum, const)."""
    node = _resolve(node, root)
    types: set[str] = set()
    declared = node.get("type")
    if isinstance(declared, str):
        types.add(declared)
    elif isinstance(declared, list):
        types.update(t for t in declared if isinstance(t, str))
    for key in ("anyOf", "oneOf", "allOf"):
        for option in node.get(key) or []:
            types |= allowed_types(option, root)
    for value in [*(node.get("enum") or []), *([node["const"]] if "const" in node else [])]:
        types.add(_json_type(value))
    if not types and "properties" in node:
        types.add("object")
    return types


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def type_text_value(text: str, prop: Any, root: Mapping[str, Any]) -> tuple[bool, Any]:
    """Turn a parameter's text into the JSON type its schema asks for.

    Strings stay verbatim. Returns (ok, value); not ok means the text does not fit the
    schema's types, and the caller keeps the text.
    """
    types = allowed_types(prop, root)
    bare = text.strip()
    if "null" in types and bare in ("null", "None"):
        return True, None
    if "string" in types or not types:
        return (True, text) if "string" in types else _any_json(text)
    if "boolean" in types and bare.lower() in ("true", "false"):
        return True, bare.lower() == "true"
    if "integer" in types:
        try:
            return True, int(bare)
        except ValueError:
            pass
    if "number" in types:
        try:
            number = float(bare)
        except ValueError:
            pass
        else:
            return True, int(number) if number.is_integer() and re.fullmatch(r"-?\d+", bare) else number
    if types & {"object", "array"}:
        try:
            value = loads_lenient(strip_fence(bare)).value
        except NotJSON:
            return False, text
        if _json_type(value) in types or ("number" in types and isinstance(value, int)):
            return True, value
    return False, text


def _any_json(text: str) -> tuple[bool, Any]:
    """No type declared: a JSON literal becomes its value, anything else stays text."""
    try:
        return True, json.loads(text.strip())
    except ValueError:
        return True, text


class ArgumentText:
    """What each format's ``ArgumentStream`` shares: text is buffered, and ``_step`` consumes
    what it can (False: it needs more text); the arguments come out as JSON object members."""

    def __init__(self, state: str) -> None:
        self.buffer = ""
        self.state = state
        self.key = ""  # the argument being written
        self.count = 0  # members written

    def feed(self, text: str) -> str:
        self.buffer += text
        out: list[str] = []
        while self._step(out):
            pass
        return "".join(out)

    def _step(self, out: list[str]) -> bool:
        raise NotImplementedError

    def member(self, value: str = '"') -> str:
        """``"key":`` for the current argument, then ``value`` (a string's opening quote)."""
        self.count += 1
        return ("," if self.count > 1 else "") + json.dumps(self.key) + ":" + value

