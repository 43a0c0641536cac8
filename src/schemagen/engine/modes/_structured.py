"""What the modes without a forced tool share: the schema in the prompt, and a tolerant read
of JSON content. Pure.

Earlier tool-call turns (examples, a reask) are written as plain text, since these requests
carry no ``tools`` for them to refer to; the default "call the tool" instruction becomes
"reply with JSON".
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from schemagen.engine.modes.raw import has_tool_turns, lower_tool_turns
from schemagen.exchange import Completion
from schemagen.parse.jsonfix import NotJSON, loads_lenient
from schemagen.parse.recover import NoToolCall, Recovered, recover_arguments, recover_from_text
from schemagen.render.messages import DEFAULT_SYSTEM
from schemagen.schema import ToolSpec

JSON_SYSTEM = (
    "You extract structured data from the user's text. Reply with only a JSON object for `{tool}`, "
    "with values taken from the text. Do not invent values that are not in the text."
)


def _fields(spec: ToolSpec) -> str:
    """One line per top-level field: small models copy a bare schema back instead of filling it."""
    props = spec.parameters.get("properties") or {}
    required = set(spec.parameters.get("required") or ())
    lines = []
    for name, sub in props.items():
        kind = sub.get("type") if isinstance(sub, dict) else None
        kind = "/".join(kind) if isinstance(kind, list) else kind or "value"
        extra = f": {sub['description']}" if isinstance(sub, dict) and sub.get("description") else ""
        lines.append(f"- {name} ({kind}{', required' if name in required else ''}){extra}")
    return "\n".join(lines)


_PLACEHOLDER = {"string": "...", "integer": 0, "number": 0.0, "boolean": False, "array": [], "object": {}}


def _flat(spec: ToolSpec) -> bool:
    """Every field a scalar: the field list says it all, and the schema itself is left out."""
    params = spec.parameters
    props = params.get("properties") or {}
    return bool(props) and "$defs" not in params and all(
        isinstance(sub, dict) and sub.get("type") in ("string", "integer", "number", "boolean")
        for sub in props.values())


def _shape(spec: ToolSpec) -> str:
    return json.dumps({k: _PLACEHOLDER[v["type"]] for k, v in spec.parameters["properties"].items()})


def schema_block(spec: ToolSpec) -> str:
    fields = _fields(spec)
    text = f"`{spec.name}`: {spec.description.strip()}\n" + (f"Fields:\n{fields}\n" if fields else "")
    if _flat(spec):
        text += f"Shape of the answer: {_shape(spec)}\n"
    else:
        text += f"JSON schema of the object:\n{json.dumps(spec.parameters, ensure_ascii=False)}\n"
    return text + "Reply with one JSON object holding the values from the text, and nothing else."


def json_messages(spec: ToolSpec, messages: Sequence[Mapping[str, Any]], *, schema: bool = True
                  ) -> list[dict[str, Any]]:
    """The conversation for a JSON answer: tool turns as text, the schema in the system message."""
    if has_tool_turns(messages):
        out = lower_tool_turns(messages, envelope=False)
    else:
        out = [dict(m) for m in messages]
    default = DEFAULT_SYSTEM.replace("{tool}", spec.name)
    block = schema_block(spec) if schema else ""
    if out and out[0].get("role") in ("system", "developer"):
        system = out[0].get("content") or ""
        if system == default:
            system = JSON_SYSTEM.replace("{tool}", spec.name)
        out[0] = {**out[0], "content": f"{system}\n\n{block}".strip()}
    elif block:
        out.insert(0, {"role": "system", "content": block})
    return out


def recover_json(spec: ToolSpec, completion: Completion, *, source: str) -> Recovered:
    """Arguments from content that should be JSON: decoded leniently, else found in prose.
    A tool call, if the server made one anyway, is read too."""
    if completion.tool_calls:
        return recover_arguments(spec, completion)
    text = completion.text
    if not text.strip():
        raise NoToolCall("the response is empty")
    try:
        decoded = loads_lenient(text)
    except NotJSON:
        found = recover_from_text(spec, text)
        found.notes.insert(0, "the content is not bare JSON; arguments found in the text")
        return found
    value = decoded.value
    # A model that wraps the object as a call ({"name": ..., "arguments": {...}}) is unwrapped.
    if (isinstance(value, dict) and value.get("name") == spec.name
            and isinstance(value.get("arguments"), dict)
            and "name" not in spec.parameters.get("properties", {})):
        value = value["arguments"]
    return Recovered(value, source, json.dumps(value, ensure_ascii=False), list(decoded.notes))
