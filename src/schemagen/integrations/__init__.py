"""Integrations with distributed data engines: a registry, one module per engine.

Each entry drives the same engine (:meth:`schemagen.Client.adrive`) through the
engine-neutral pieces in :mod:`schemagen.integrations._rows` (the worker, the shared
limits ledger, the results store, the keys) and :mod:`schemagen.integrations._arrow`
(typed Arrow columns). An engine module only adapts them: Ray Data's ``map_batches``
and a named actor today; Spark (``pandas_udf``) or Daft later is one more module here
and one more line below.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from schemagen.errors import ConfigurationError

#: name -> module path, imported only when asked for.
INTEGRATIONS: dict[str, str] = {
    "ray": "schemagen.integrations.ray",
}


def get_integration(name: str) -> ModuleType:
    """The integration module for ``name`` (``"ray"``); unknown names list the known ones."""
    try:
        path = INTEGRATIONS[name]
    except KeyError:
        known = ", ".join(sorted(INTEGRATIONS))
        raise ConfigurationError(f"Unknown integration {name!r}; known: {known}") from None
    return importlib.import_module(path)


__all__ = ["INTEGRATIONS", "get_integration"]
