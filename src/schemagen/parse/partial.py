"""Incremental JSON for streamed arguments: text in, the value so far out. Pure.

:class:`PartialJSON` keeps a parse state between deltas, so each character is looked
at once (the whole buffer is never re-parsed). What it shows:

- strings while they grow (``"Acme Co`` shows as ``"Acme Co"``);
- numbers, booleans and null only once complete (``12`` may still become ``125``);
- objects and lists as soon as they open, filling in as their members arrive;
- object keys only once their value starts.

Snapshots are copy-on-write: :meth:`PartialJSON.snapshot` hands out the value and
later deltas copy only the containers on the path they change, so a snapshot never
changes under its holder and costs no deep copy. Every value that closes at depth 1
or 2 (a top-level field, an item of a top-level list or of a list field; deeper with
``close_depth``) is reported on :attr:`PartialJSON.closed` with its path, for per-field validation and
items-as-they-close.

jiter's ``partial_mode`` parses a prefix too, but from the start each time: per chunk
that is O(buffer), so a long answer costs O(n^2) (``benchmarks/streaming.py``).
"""

from __future__ import annotations

import json
import re
from typing import Any

_SPECIAL = re.compile(r'["\\]')
_SPACE = " \t\r\n"
_DELIMS = ",}]" + _SPACE
_MISSING = object()
#: Closed values at this depth or less are reported on ``closed``.
CLOSE_DEPTH = 2

Path = tuple[Any, ...]


class _Frame:
    """An open object or list: its container, the slot being written, and parse state."""

    __slots__ = ("container", "expect", "is_obj", "key")

    def __init__(self, container: Any, is_obj: bool) -> None:
        self.container = container
        self.is_obj = is_obj
        self.key: Any = None  # object: the current key; list: the index being written
        # object: "key" | "colon" | "value" | "next";  list: "value" | "next"
        self.expect = "key" if is_obj else "value"


class PartialJSON:
    """Feed text deltas; read :attr:`value` (or take a :meth:`snapshot`) at any time."""

    def __init__(self, *, close_depth: int = CLOSE_DEPTH) -> None:
        self.close_depth = close_depth
        self.value: Any = _MISSING
        self.done = False  # the top-level value closed
        self.failed: str | None = None  # why the text stopped being JSON, if it did
        self.closed: list[tuple[Path, Any]] = []
        self._stack: list[_Frame] = []
        self._fresh = 0  # frames [0:_fresh] were copied since the last snapshot
        self._token: str | None = None  # None, "str", "key", "atom"
        self._raw = ""  # the string or atom so far (raw text)
        self._escape = False  # a string chunk ended on a backslash
        self._has_escape = False
        self._consumed = 0

    @property
    def started(self) -> bool:
        return self.value is not _MISSING

    def snapshot(self) -> Any:
        """The value so far (None before it starts); safe to keep: later deltas don't change it."""
        self._fresh = 0
        return None if self.value is _MISSING else self.value

    # ------------------------------------------------------------ writes

    def _own_path(self) -> None:
        """Copy-on-write: copy the open containers shared with the last snapshot."""
        stack = self._stack
        for i in range(self._fresh, len(stack)):
            frame = stack[i]
            copy = dict(frame.container) if frame.is_obj else list(frame.container)
            frame.container = copy
            if i == 0:
                self.value = copy
            else:
                parent = stack[i - 1]
                parent.container[parent.key] = copy
        self._fresh = len(stack)

    def _put(self, value: Any) -> None:
        """Write ``value`` into the slot being filled (or as the top-level value)."""
        if not self._stack:
            self.value = value
            return
        if self._fresh < len(self._stack):
            self._own_path()
        frame = self._stack[-1]
        if frame.is_obj:
            frame.container[frame.key] = value
        elif frame.key == len(frame.container):
            frame.container.append(value)
        else:
            frame.container[frame.key] = value

    def _path(self) -> Path:
        return tuple(f.key for f in self._stack)

    def _closed_value(self, value: Any) -> None:
        """A value just completed in the current slot: advance and report it if shallow."""
        if self._stack and len(self._stack) <= self.close_depth:
            self.closed.append((self._path(), value))
        if self._stack:
            self._stack[-1].expect = "next"
        else:
            self.done = True

    def _open(self, container: Any, is_obj: bool) -> None:
        self._put(container)
        self._stack.append(_Frame(container, is_obj))
        if not is_obj:
            self._stack[-1].key = 0
        self._fresh = len(self._stack)

    def _close(self) -> None:
        frame = self._stack.pop()
        self._fresh = min(self._fresh, len(self._stack))
        self._closed_value(frame.container)

    # ------------------------------------------------------------ reading

    def feed(self, text: str) -> bool:
        """Take the next piece of text; True when the visible value changed."""
        if self.failed is not None or not text:
            return False
        self._consumed += len(text)
        changed = False
        i, n = 0, len(text)
        while i < n:
            token = self._token
            if token is not None:
                if token == "atom":
                    j = i
                    while j < n and text[j] not in _DELIMS:
                        j += 1
                    self._raw += text[i:j]
                    if j == n:
                        return changed
                    changed |= self._end_atom()
                    if self.failed:
                        return changed
                    i = j
                    continue
                i, closed = self._string(text, i)
                if token == "str":
                    self._put(self._decoded())
                    changed = True
                if not closed:
                    return changed
                self._end_string(token)
                continue
            ch = text[i]
            if ch in _SPACE:
                i += 1
                continue
            if self.done:
                return changed  # trailing text after the value: ignored
            frame = self._stack[-1] if self._stack else None
            expect = frame.expect if frame is not None else "value"
            if expect == "value":
                i += 1
                if ch == "{":
                    self._open({}, True)
                    changed = True
                elif ch == "[":
                    self._open([], False)
                    changed = True
                elif ch == '"':
                    self._token = "str"
                    self._raw = ""
                    self._has_escape = False
                    self._put("")
                    changed = True
                elif ch == "]" and frame is not None and not frame.is_obj and not frame.container:
                    self._close()  # shown already, when it opened
                else:
                    self._token = "atom"
                    self._raw = ch
            elif expect == "key":
                i += 1
                if ch == '"':
                    self._token = "key"
                    self._raw = ""
                    self._has_escape = False
                elif ch == "}" and frame is not None and not frame.container:
                    self._close()
                else:
                    return self._fail(f"expected a key, got {ch!r}")
            elif expect == "colon":
                i += 1
                if ch != ":":
                    return self._fail(f"expected ':', got {ch!r}")
                assert frame is not None
                frame.expect = "value"
            else:  # "next"
                i += 1
                assert frame is not None
                if ch == ",":
                    if frame.is_obj:
                        frame.expect = "key"
                    else:
                        frame.key += 1
                        frame.expect = "value"
                elif ch == ("}" if frame.is_obj else "]"):
                    self._close()
                else:
                    return self._fail(f"unexpected {ch!r}")
        return changed

    def finish(self) -> bool:
        """The text ended: a number still open at the very end is complete now."""
        if self._token == "atom" and not self._stack:
            return self._end_atom()
        return False

    def _fail(self, why: str) -> bool:
        self.failed = f"{why} at character {self._consumed}"
        return False

    def _string(self, text: str, i: int) -> tuple[int, bool]:
        """Consume string text from ``i``; (next index, whether the closing quote came)."""
        if self._escape:  # the escaped character arrives at the start of this chunk
            self._escape = False
            self._raw += text[i]
            i += 1
        n = len(text)
        while i < n:
            m = _SPECIAL.search(text, i)
            if m is None:
                self._raw += text[i:]
                return n, False
            j = m.start()
            if text[j] == '"':
                self._raw += text[i:j]
                return j + 1, True
            self._has_escape = True
            if j + 1 < n:
                self._raw += text[i:j + 2]
                i = j + 2
            else:
                self._raw += text[i:j + 1]
                self._escape = True
                return n, False
        return n, False

    def _decoded(self) -> str:
        raw = self._raw
        if not self._has_escape:
            return raw
        # An escape cut in half (``\`` or ``\u00``) is left out until the rest arrives.
        cut = raw.rfind("\\")
        if cut >= 0:
            tail = raw[cut:]
            backslashes = len(raw[:cut]) - len(raw[:cut].rstrip("\\"))
            if backslashes % 2 == 0 and (len(tail) < 2 or (tail[1] == "u" and len(tail) < 6)):
                raw = raw[:cut]
        try:
            decoded: str = json.loads(f'"{raw}"')
        except ValueError:
            return raw
        return decoded

    def _end_string(self, token: str) -> None:
        self._token = None
        value = self._decoded()
        if token == "key":
            frame = self._stack[-1]
            frame.key = value
            frame.expect = "colon"
            return
        self._closed_value(value)

    def _end_atom(self) -> bool:
        self._token = None
        raw = self._raw.strip()
        try:
            value = json.loads(raw)
        except ValueError:
            return self._fail(f"not a JSON value: {raw[:20]!r}")
        self._put(value)
        self._closed_value(value)
        return True


__all__ = ["CLOSE_DEPTH", "PartialJSON"]
