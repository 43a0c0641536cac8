"""The public test kit: the runnable example in docs/testing.md runs, and the old test-module
paths still resolve to it."""

from __future__ import annotations

import re
from pathlib import Path

import schemagen.testing

DOC = Path(__file__).resolve().parents[1] / "docs" / "testing.md"


def test_docs_example_runs() -> None:
    code = re.search(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert code is not None
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), str(DOC), "exec"), namespace)
    tests = [fn for name, fn in namespace.items() if name.startswith("test_") and callable(fn)]
    assert tests
    for fn in tests:
        fn()


def test_kit_is_public_and_old_paths_resolve() -> None:
    from tests import fault_server, stream_server

    for name in schemagen.testing.__all__:
        assert getattr(schemagen.testing, name) is not None
    assert fault_server.FaultServer is schemagen.testing.FaultServer
    assert stream_server.StreamServer is schemagen.testing.StreamServer
