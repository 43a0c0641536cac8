"""Where ``mode="auto"`` remembers what it learned, per (base_url, model).

One :data:`MEMORY` per process, so an endpoint is negotiated once however many clients and
calls use it; with a path (``Client(mode_cache=...)`` or ``SCHEMAGEN_MODE_CACHE``) it is also
a small JSON file, so batch workers and later processes start where the first one ended.
The file is written whole (write to a temporary name, then rename) and read when first needed;
an unreadable file is ignored, it only costs one renegotiation.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from schemagen.engine.negotiate import Learned

ENV_VAR = "SCHEMAGEN_MODE_CACHE"


def endpoint_key(base_url: str | None, model: str) -> str:
    return f"{(base_url or '').rstrip('/')}|{model}"


class ModeMemory:
    def __init__(self) -> None:
        self._learned: dict[str, Learned] = {}
        self._loaded: set[Path] = set()
        self._lock = threading.Lock()

    def _load(self, path: Path) -> None:
        if path in self._loaded:
            return
        self._loaded.add(path)
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        for key, value in (data.items() if isinstance(data, dict) else ()):
            learned = Learned.from_dict(value)
            if learned is not None:
                self._learned.setdefault(key, learned)

    def get(self, key: str, path: str | os.PathLike[str] | None = None) -> Learned | None:
        with self._lock:
            if path is not None:
                self._load(Path(path))
            return self._learned.get(key)

    def put(self, key: str, learned: Learned, path: str | os.PathLike[str] | None = None) -> None:
        with self._lock:
            if self._learned.get(key) == learned:
                return
            self._learned[key] = learned
            if path is None:
                return
            target = Path(path)
            try:
                data = json.loads(target.read_text(encoding="utf-8"))
                data = data if isinstance(data, dict) else {}
            except (OSError, ValueError):
                data = {}
            data[key] = learned.to_dict()
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, target)

    def forget(self) -> None:
        """Forget everything learned in this process (the file stays)."""
        with self._lock:
            self._learned.clear()
            self._loaded.clear()


MEMORY = ModeMemory()

__all__ = ["ENV_VAR", "MEMORY", "ModeMemory", "endpoint_key"]
