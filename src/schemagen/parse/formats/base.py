"""The tool-call parser contract. One module per native format implements it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class ParsedCall:
    """One tool call recovered from text. ``arguments`` is decoded JSON (usually a dict)."""

    name: str | None
    arguments: Any
    raw: str
    id: str | None = None


@dataclass
class ParseReport:
    """What one parser recovered from a text, and what it saw but could not use."""

    parser: str
    calls: list[ParsedCall] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # fragments refused, each with its reason
    notes: list[str] = field(default_factory=list)  # repairs and tolerances applied

    @property
    def ok(self) -> bool:
        return bool(self.calls)


class ToolCallParser(Protocol):
    #: Registry name, e.g. "hermes".
    name: str

    def detect(self, text: str) -> bool:
        """Cheap check: does the text carry this format's markers?"""
        ...

    def parse(self, text: str, *, schema: dict[str, Any] | None = None) -> ParseReport:
        """Recover every call in ``text``. ``schema`` (the tool's JSON schema) types values
        for formats whose arguments are not JSON (qwen3 XML, pythonic)."""
        ...
