"""Backends, looked up by name. Adding one is a new module plus one line here."""

from __future__ import annotations

import importlib
from typing import Any

from schemagen.backends.base import Backend

#: name -> "module:factory". Factories take keyword settings and return a Backend.
BACKENDS: dict[str, str] = {
    "openai": "schemagen.backends.openai_compat:OpenAIBackend",
    "local": "schemagen.backends.local:LocalBackend",
}


def create_backend(name: str, **settings: Any) -> Backend:
    try:
        target = BACKENDS[name]
    except KeyError:
        from schemagen.errors import ConfigurationError

        raise ConfigurationError(
            f"Unknown backend {name!r}. Known backends: {', '.join(sorted(BACKENDS))}"
        ) from None
    module_name, _, attr = target.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    backend: Backend = factory(**settings)
    return backend


__all__ = ["BACKENDS", "Backend", "create_backend"]
