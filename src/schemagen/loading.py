"""Resolve ``path/to/file.py:Invoice`` or ``pkg.module:Invoice`` to a Python object,
or read a JSON Schema from ``schema.json``."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from schemagen.errors import ConfigurationError


def load_object(spec: str) -> Any:
    """The object named by ``file.py:Name`` or ``package.module:Name``."""
    source, sep, name = spec.rpartition(":")
    if not sep or not source or not name:
        raise ConfigurationError(
            f"--schema {spec!r} must look like path/to/file.py:Model or package.module:Model"
        )
    if source.endswith(".py") or "/" in source or "\\" in source:
        path = Path(source).expanduser().resolve()
        if not path.is_file():
            raise ConfigurationError(f"Schema file not found: {path}")
        module_name = "_schemagen_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
        module = sys.modules.get(module_name)
        if module is None:
            file_spec = importlib.util.spec_from_file_location(module_name, path)
            if file_spec is None or file_spec.loader is None:
                raise ConfigurationError(f"Can't import {path}")
            module = importlib.util.module_from_spec(file_spec)
            sys.modules[module_name] = module  # dataclasses/pydantic look modules up by name
            try:
                file_spec.loader.exec_module(module)
            except Exception as exc:
                del sys.modules[module_name]
                raise ConfigurationError(f"Importing {path} failed: {type(exc).__name__}: {exc}") from exc
    else:
        try:
            module = importlib.import_module(source)
        except ImportError as exc:
            raise ConfigurationError(f"Can't import module {source!r}: {exc}") from exc
    try:
        return getattr(module, name)
    except AttributeError:
        raise ConfigurationError(f"{source} has no attribute {name!r}") from None


def load_json_schema(path: str) -> Any:
    """The JSON Schema in a ``.json`` file (checked later, when it becomes a tool)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigurationError(f"Schema file not found: {file}")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigurationError(f"--schema {path}: not a readable JSON file ({exc})") from exc
