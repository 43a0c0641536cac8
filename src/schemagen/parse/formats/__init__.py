"""Native tool-call text parsers, looked up by name, with auto-detection.

A new format is one module with a ``PARSER`` object plus one line in ``PARSERS``.
"""

from __future__ import annotations

import importlib
from typing import Any

from schemagen.parse.formats.base import ParsedCall, ParseReport, ToolCallParser

#: name -> module holding ``PARSER``. Order matters for auto-detection: the most
#: specific markers first, plain JSON last.
PARSERS: dict[str, str] = {
    "kimi_k2": "schemagen.parse.formats.kimi_k2",
    "deepseek_v3": "schemagen.parse.formats.deepseek_v3",
    "mistral": "schemagen.parse.formats.mistral",
    "qwen3_xml": "schemagen.parse.formats.qwen3_xml",
    "hermes": "schemagen.parse.formats.hermes",
    "llama3_json": "schemagen.parse.formats.llama3_json",
    "pythonic": "schemagen.parse.formats.pythonic",
    "json": "schemagen.parse.formats.json_text",
}


def get_parser(name: str) -> ToolCallParser:
    try:
        module = importlib.import_module(PARSERS[name])
    except KeyError:
        raise KeyError(f"Unknown tool-call format {name!r}. Known: {', '.join(PARSERS)}") from None
    parser: ToolCallParser = module.PARSER
    return parser


def parse_tool_calls(
    text: str, *, fmt: str = "auto", schema: dict[str, Any] | None = None
) -> list[ParseReport]:
    """Run the named parser, or in "auto" every parser whose markers are present, then
    plain JSON. Returns one report per parser tried, the successful one last."""
    names = [fmt] if fmt != "auto" else [n for n in PARSERS if n != "json" and get_parser(n).detect(text)]
    if fmt == "auto":
        names.append("json")
    reports: list[ParseReport] = []
    for name in names:
        report = get_parser(name).parse(text, schema=schema)
        reports.append(report)
        if report.ok:
            break
    return reports


__all__ = ["PARSERS", "ParseReport", "ParsedCall", "ToolCallParser", "get_parser", "parse_tool_calls"]
