"""Modes, looked up by name. A new mode is one module with ``MODE`` plus one line here."""

from __future__ import annotations

import importlib

from schemagen.engine.modes.base import Mode, Rendered, RenderInput
from schemagen.errors import ConfigurationError

MODES: dict[str, str] = {
    "tools": "schemagen.engine.modes.tools",
    "raw": "schemagen.engine.modes.raw",
}


def get_mode(name: str) -> Mode:
    try:
        module = importlib.import_module(MODES[name])
    except KeyError:
        raise ConfigurationError(f"Unknown mode {name!r}. Known modes: {', '.join(MODES)}") from None
    mode: Mode = module.MODE
    return mode


__all__ = ["MODES", "Mode", "RenderInput", "Rendered", "get_mode"]
