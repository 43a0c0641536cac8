"""Deprecated alias of :mod:`schemagen.parse.formats`, kept for one release."""

from __future__ import annotations

import importlib
import sys
import warnings

from schemagen.parse import formats as _formats
from schemagen.parse.formats import *  # noqa: F403
from schemagen.parse.formats import __all__ as __all__

warnings.warn(
    "schemagen.parsers moved to schemagen.parse.formats; the old path goes away in the next release",
    DeprecationWarning,
    stacklevel=2,
)

# Old submodule paths (schemagen.parsers.hermes, ...) resolve to the same module objects.
for _name in [*_formats.PARSERS, "base", "_support", "json_text"]:
    _module = _formats.PARSERS.get(_name, f"schemagen.parse.formats.{_name}")
    sys.modules[f"{__name__}.{_module.rsplit('.', 1)[1]}"] = importlib.import_module(_module)
