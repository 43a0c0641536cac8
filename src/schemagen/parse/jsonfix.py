"""Lenient JSON decoding: strict first (jiter), then repair (json-repair).

Every repair is reported so the trace can say what was changed. Pure functions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import jiter
import json_repair

# json-repair log messages that mean a value was made up or the structure guessed;
# such a "repair" would hand Pydantic a value the model never wrote.
_INVENTIVE_REPAIRS = (
    "stray",
    "missed a : after a key",
    "Parsed object is empty",
    "literal instead of a quote",
)
#: The note a repair leaves when it closed brackets or a string at the end of the text: the
#: output stopped mid-structure, whatever finish_reason says (the engine reasks on it).
COMPLETED_NOTE = "repair completed a structure cut off at the end of the text"
_FENCE = re.compile(r"```(?:json|JSON)?[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)


@dataclass
class Decoded:
    value: Any
    repaired: bool = False
    notes: list[str] = field(default_factory=list)


class NotJSON(ValueError):
    """No JSON value could be recovered from the text."""


def loads_strict(text: str) -> Any:
    return jiter.from_json(text.encode())


def loads_lenient(text: str) -> Decoded:
    """Decode ``text`` as JSON, repairing it when it is broken.

    Raises :class:`NotJSON` when nothing usable is there (repair would invent a value).
    """
    stripped = text.strip()
    if not stripped:
        raise NotJSON("empty text")
    try:
        return Decoded(loads_strict(stripped))
    except ValueError as exc:
        strict_error = str(exc)
    if stripped[0] not in "{[":
        raise NotJSON(f"not a JSON object or array: {stripped[:40]!r}")
    repaired, log = json_repair.repair_json(stripped, return_objects=True, logging=True)
    invented = [entry["text"] for entry in log if any(m in entry["text"] for m in _INVENTIVE_REPAIRS)]
    if invented:
        raise NotJSON(f"repair would invent or reshape values ({invented[0]}); error: {strict_error}")
    if not isinstance(repaired, dict | list):
        raise NotJSON(f"unrepairable JSON ({strict_error})")
    notes = [f"repaired invalid JSON ({strict_error})"]
    if json_end(stripped, 0) is None:  # brackets or a string never closed: cut off, not malformed
        notes.append(COMPLETED_NOTE)
    return Decoded(repaired, repaired=True, notes=notes)


def json_end(text: str, start: int) -> int | None:
    """Index just past the JSON object/array opening at ``start``; None if it never closes."""
    depth = 0
    in_string = False
    escape = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def json_spans(text: str) -> list[tuple[int, int]]:
    """Top-level ``{...}``/``[...]`` spans in prose; an unclosed one runs to the end of the text."""
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(text):
        if text[i] in "{[":
            end = json_end(text, i)
            if end is None:
                spans.append((i, len(text)))
                break
            spans.append((i, end))
            i = end
        else:
            i += 1
    return spans


def find_json_values(text: str) -> list[Decoded]:
    """Every JSON object/array in ``text``: fenced blocks first, then bare spans in prose."""
    found: list[Decoded] = []
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    if not candidates:
        candidates = [text[a:b] for a, b in json_spans(text)]
    for candidate in candidates:
        try:
            found.append(loads_lenient(candidate))
        except NotJSON:
            continue
    return found


def dumps_compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
