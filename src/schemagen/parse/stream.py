"""Streamed arguments: where a tool call's JSON starts in streamed text, and what of it
is the arguments. Pure.

Tools mode gets the arguments as ``tool_calls`` deltas and feeds them straight to a
:class:`~schemagen.parse.partial.PartialJSON`. Raw mode gets text in a model's native
format; :class:`TextCallReader` waits for the format's marker (recognised across chunk
boundaries), then feeds the JSON after it. The final value is still read by the native
parsers in ``parse/formats`` from the whole text: this reader only drives the partials.
Formats whose arguments are not JSON (qwen3 XML, pythonic) have an ``ArgumentStream`` in
their module that turns them into JSON text as they arrive (:data:`TEXT_FORMATS`).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from schemagen.parse.formats import pythonic, qwen3_xml
from schemagen.parse.partial import PartialJSON

Shape = Literal["envelope", "arguments", "either"]

#: Text that opens a call in a native format, and what JSON follows it: an ``envelope``
#: (``{"name": ..., "arguments": {...}}`` or a list of them) or the bare ``arguments``.
MARKERS: dict[str, Shape] = {
    "<tool_call>": "envelope",  # hermes, qwen2.5
    "[TOOL_CALLS]": "envelope",  # mistral v3: [TOOL_CALLS][{...}]
    "[ARGS]": "arguments",  # mistral v11: [TOOL_CALLS]name[ARGS]{...}
    "<|python_tag|>": "envelope",  # llama 3.1
    "<|tool_call_argument_begin|>": "arguments",  # kimi k2
    "```json": "arguments",  # deepseek v3: ...<｜tool▁sep｜>name\n```json\n{...}
}
_ARG_KEYS = ("arguments", "parameters")


class ArgumentStream(Protocol):
    """Native call text in, the call's arguments out as JSON text, as it arrives."""

    def __init__(self, schema: Any = None, name: str | None = None) -> None: ...

    @staticmethod
    def find(text: str) -> int | None: ...  # where a call starts in the text so far

    def feed(self, text: str) -> str: ...


#: Formats whose arguments are not JSON: checked before the JSON markers.
TEXT_FORMATS: tuple[type[ArgumentStream], ...] = (qwen3_xml.ArgumentStream, pythonic.ArgumentStream)


class TextCallReader:
    """Finds the first tool call's JSON in streamed text and reads it incrementally."""

    def __init__(self, tool_name: str, *, constrained: bool = False, schema: Any = None) -> None:
        self.tool_name = tool_name
        self.schema = schema  # the tool's parameters: types a non-JSON format's values
        self.json: PartialJSON | None = None
        self.native: ArgumentStream | None = None
        self.shape: Shape = "arguments" if constrained else "either"
        self._seen = ""  # text before the JSON starts (short: markers and prose)
        if constrained:  # the whole output is the arguments: no markers to wait for
            self.json = PartialJSON(close_depth=2)

    def feed(self, text: str) -> bool:
        """Take streamed text; True when the JSON read so far changed."""
        if self.native is not None:
            return self.json.feed(self.native.feed(text)) if self.json is not None else False
        if self.json is not None:
            return self.json.feed(text)
        self._seen += text
        for kind in TEXT_FORMATS:
            at = kind.find(self._seen)
            if at is not None:
                self.native, self.shape = kind(self.schema), "arguments"
                self.json = PartialJSON(close_depth=2)
                return self.json.feed(self.native.feed(self._seen[at:]))
        start = self._find_start()
        if start is None:
            return False
        self.json = PartialJSON(close_depth=2 if self.shape == "arguments" else 4)
        return self.json.feed(self._seen[start:])

    def finish(self) -> bool:
        return self.json.finish() if self.json is not None else False

    def _find_start(self) -> int | None:
        seen = self._seen
        after = 0
        shape: Shape = "either"
        for marker, kind in MARKERS.items():
            at = seen.rfind(marker)
            if at >= 0 and at + len(marker) > after:
                after, shape = at + len(marker), kind
        if after:  # after a marker, only whitespace may come before the JSON
            rest = seen[after:]
            body = rest.lstrip()
            if not body:
                return None
            if body[0] not in "{[":
                return None
            self.shape = shape
            return after + len(rest) - len(body)
        # No marker (yet): the first object in the text, or a list of objects. A marker
        # still arriving ("[TOOL_" ...) is not mistaken for a list: the list must hold an object.
        for i, ch in enumerate(seen):
            if ch == "{":
                return i
            if ch == "[":
                nxt = seen[i + 1:].lstrip()
                if not nxt:
                    return None
                if nxt[0] == "{":
                    return i
        return None

    def prefix(self, value: Any) -> tuple[Any, ...] | None:
        """Where the arguments sit in the JSON read so far: () for bare arguments,
        ("arguments",) or (0, "arguments") in an envelope; None while that is unknown."""
        if self.shape == "arguments":
            return ()
        if isinstance(value, list):
            if not value:
                return None
            inner = self.prefix(value[0])
            return None if inner is None else (0, *inner)
        if not isinstance(value, dict):
            return () if self.shape == "either" else None
        for key in _ARG_KEYS:
            if key in value:
                return (key,)
        name = value.get("name")
        if isinstance(name, str) and (self.shape == "envelope" or self.tool_name.startswith(name)):
            return None  # the envelope's name came first: its arguments are still to come
        return () if self.shape == "either" else None


def arguments_at(value: Any, prefix: tuple[Any, ...]) -> Any:
    """The value under ``prefix`` (see :meth:`TextCallReader.prefix`), or None."""
    for key in prefix:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return None
    return value


__all__ = ["MARKERS", "TextCallReader", "arguments_at"]
