"""Modes, looked up by name. A new mode is one module with ``MODE`` plus one line here."""

from __future__ import annotations

import importlib

from schemagen.engine.modes.base import Mode, Rendered, RenderInput
from schemagen.errors import ConfigurationError

MODES: dict[str, str] = {
    "tools": "schemagen.engine.modes.tools",
    "tools_required": "schemagen.engine.modes.tools_required",
    "tools_auto": "schemagen.engine.modes.tools_auto",
    "json_schema": "schemagen.engine.modes.json_schema",
    "json_object": "schemagen.engine.modes.json_object",
    "prompt": "schemagen.engine.modes.prompt",
    "raw": "schemagen.engine.modes.raw",
}
#: Not a module: "auto" walks the ladder in ``schemagen.engine.negotiate``.
AUTO = "auto"


def get_mode(name: str) -> Mode:
    if name == AUTO:
        name = "tools"  # where the ladder starts; rendering "auto" shows its first request
    try:
        module = importlib.import_module(MODES[name])
    except KeyError:
        raise ConfigurationError(f"Unknown mode {name!r}. Known modes: auto, {', '.join(MODES)}") from None
    mode: Mode = module.MODE
    return mode


__all__ = ["AUTO", "MODES", "Mode", "RenderInput", "Rendered", "get_mode"]
