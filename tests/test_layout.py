"""The package layout holds: no import circles, the written-down layering, the public API.

The graph is built from each module's source (module-level imports only: imports under
``if TYPE_CHECKING:`` and inside functions are lazy and cannot form a load-time circle).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
import warnings
from pathlib import Path

import pytest

import schemagen

ROOT = Path(schemagen.__file__).parent

DRIVERS = (
    "schemagen.client",
    "schemagen.batch",
    "schemagen.doctor",
    "schemagen.cli",
    "schemagen.integrations",
)

#: stage -> module prefixes it must never import at load time (docs/architecture.md, "Layering").
FORBIDDEN = {
    "schemagen.render": ("schemagen.backends", *DRIVERS, "schemagen.engine"),
    "schemagen.parse": ("schemagen.backends", *DRIVERS, "schemagen.engine", "schemagen.render"),
    "schemagen.engine": ("schemagen.backends", *DRIVERS),
}


def _module_names() -> list[str]:
    names = ["schemagen"]
    for info in pkgutil.walk_packages([str(ROOT)], prefix="schemagen."):
        names.append(info.name)
    return sorted(names)


def _path_of(name: str) -> Path:
    parts = name.split(".")[1:]
    package = ROOT.joinpath(*parts, "__init__.py")
    return package if package.exists() else ROOT.joinpath(*parts[:-1], parts[-1] + ".py")


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module loads: module body, try/if bodies, not TYPE_CHECKING."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            pending.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                pending.extend(handler.body)
    return found


def _resolve(name: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = name if _path_of(name).name == "__init__.py" else name.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _known(target: str, modules: set[str]) -> str | None:
    """The schemagen module a dotted import name lands in (longest known prefix)."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def import_graph() -> dict[str, set[str]]:
    modules = set(_module_names())
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name in modules:
        tree = ast.parse(_path_of(name).read_text(encoding="utf-8"))
        for node in _top_level_imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _resolve(name, node)
                # `from pkg import mod` imports the submodule; `from mod import name` the module.
                subs = [f"{base}.{alias.name}" for alias in node.names]
                targets = subs if all(sub in modules for sub in subs) else [*subs, base]
            for target in targets:
                if not target.startswith("schemagen"):
                    continue
                hit = _known(target, modules)
                if hit and hit != name:
                    graph[name].add(hit)
                    # Importing a.b.c first runs a and a.b (package __init__ files).
                    parent = hit.rpartition(".")[0]
                    while parent and parent != name and not name.startswith(parent + "."):
                        graph[name].add(parent)
                        parent = parent.rpartition(".")[0]
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_every_module_imports() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for name in _module_names():
            if name.endswith(".__main__"):  # runs a program on import
                continue
            importlib.import_module(name)


def test_no_import_circle() -> None:
    cycle = _find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_graph_sees_imports() -> None:
    """Guards the checker itself: known edges are found, so an empty result means something."""
    graph = import_graph()
    assert "schemagen.engine.run" in graph["schemagen.client"]
    assert "schemagen.parse.formats" in graph["schemagen.parsers"]
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize("stage", sorted(FORBIDDEN))
def test_layering(stage: str) -> None:
    graph = import_graph()
    bad = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if module == stage or module.startswith(stage + ".")
        for target in targets
        if any(target == p or target.startswith(p + ".") for p in FORBIDDEN[stage])
    )
    assert not bad, "layering broken:\n" + "\n".join(bad)


def test_every_public_name_imports_from_schemagen() -> None:
    assert len(set(schemagen.__all__)) == len(schemagen.__all__)
    for name in schemagen.__all__:
        assert getattr(schemagen, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from schemagen import *", namespace)
    assert set(schemagen.__all__) <= set(namespace)


def test_engine_package_reexports_the_run() -> None:
    from schemagen.engine import Extraction, ExtractionRun, Settings
    from schemagen.engine.run import ExtractionRun as Run

    assert ExtractionRun is Run
    assert Settings is schemagen.Settings and Extraction is schemagen.Extraction


def test_old_parsers_path_warns_and_works() -> None:
    for name in [m for m in sys.modules if m == "schemagen.parsers" or m.startswith("schemagen.parsers.")]:
        del sys.modules[name]
    with pytest.warns(DeprecationWarning, match="schemagen.parse.formats"):
        old = importlib.import_module("schemagen.parsers")
    from schemagen.parse import formats

    assert old.get_parser is formats.get_parser
    hermes_old = importlib.import_module("schemagen.parsers.hermes")
    hermes_new = importlib.import_module("schemagen.parse.formats.hermes")
    assert hermes_old is hermes_new


def test_only_backends_and_the_client_touch_the_sdk() -> None:
    """Network I/O lives in backends/ (client.py only accepts an SDK client from the caller)."""
    allowed = ("schemagen.backends", "schemagen.client")
    offenders = []
    for name in _module_names():
        if name.startswith(allowed):
            continue
        for node in ast.walk(ast.parse(_path_of(name).read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                targets = [node.module or ""]
            else:
                continue
            offenders += [f"{name} imports {t}" for t in targets if t.split(".")[0] in ("openai", "httpx")]
    assert not offenders, "\n".join(offenders)


def test_testing_kit_is_standalone() -> None:
    """schemagen.testing uses the standard library only: a scripted server that shares no code
    with the client it tests."""
    graph = import_graph()
    outside = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if module.startswith("schemagen.testing")
        for target in targets
        if not target.startswith("schemagen.testing")
    )
    assert not outside, "\n".join(outside)


def test_old_openai_chat_path_warns_and_is_the_same_module() -> None:
    sys.modules.pop("schemagen.backends.openai_chat", None)
    with pytest.warns(DeprecationWarning, match="openai_compat"):
        old = importlib.import_module("schemagen.backends.openai_chat")
    from schemagen.backends import openai_compat

    assert old is openai_compat
    from schemagen.backends.openai_chat import OpenAIBackend

    assert OpenAIBackend is openai_compat.OpenAIBackend
