"""Every Python code block in README.md and docs/*.md runs (pytest-examples).

Blocks run one by one against the real llama.cpp server (SmolLM2-135M-Instruct) through the
environment, with a few shared names predefined (see docs/writing-docs.md). A line
``<!-- example: skip -->`` right above a fence skips the block; ``<!-- example: openai -->``
runs it against the scripted loopback server instead, and the block must say so in a comment.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from examples.invoice_plain import Invoice, Item
from pydantic import BaseModel

import schemagen

examples = pytest.importorskip("pytest_examples")
from pytest_examples import CodeExample, EvalExample, find_examples  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DIRECTIVE = re.compile(r"<!--\s*example:\s*([\w-]+)\s*-->")
KINDS = ("run", "skip", "openai")
TEXT = "Invoice INV-7 from ACME Corp. 2 widgets at 15.25 each. Total 30.50 USD."




def prelude() -> dict[str, Any]:
    """The names every block may use without defining them (documented in writing-docs.md)."""
    return {"schemagen": schemagen, "BaseModel": BaseModel, "Item": Item, "Invoice": Invoice, "text": TEXT}


def directive(example: CodeExample) -> str:
    """What the line above the fence asks for: "run" (no directive), "skip" or "openai"."""
    lines = Path(example.path).read_text(encoding="utf-8").splitlines()
    above = lines[example.start_line - 2].strip() if example.start_line >= 2 else ""
    match = DIRECTIVE.fullmatch(above)
    return match.group(1) if match else "run"


ALL = [e for path in FILES for e in find_examples(path)]


def test_examples_are_found_in_every_file_that_has_them() -> None:
    found = {Path(e.path).name for e in ALL}
    assert {"README.md", "quickstart.md", "hooks.md", "telemetry.md"} <= found
    for example in ALL:
        assert directive(example) in KINDS, f"{example}: unknown directive {directive(example)!r}"
    skipped = [str(e) for e in ALL if directive(e) == "skip"]
    assert len(skipped) * 3 <= len(ALL), f"too many skipped examples: {skipped}"  # sparingly


@pytest.mark.llama
@pytest.mark.parametrize("example", ALL, ids=str)
def test_example_runs(example: CodeExample, eval_example: EvalExample, request: pytest.FixtureRequest,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    kind = directive(example)
    if kind == "skip":
        pytest.skip("marked <!-- example: skip -->")
    if kind == "openai":
        assert "scripted" in example.source, "an OpenAI example must say it runs against a scripted server"
        from tests.fault_server import FaultServer

        server = FaultServer().start()
        request.addfinalizer(server.stop)
        base_url, model = server.base_url, "gpt-4o-mini"
    else:
        llama = request.getfixturevalue("llama_server")
        base_url, model = llama.base_url, "smollm2"
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-docs-example")
    monkeypatch.setenv("SCHEMAGEN_MODEL", model)
    # pytest can't format a traceback (or an exception context) through exec'd Markdown: a failing
    # example would crash the whole run with INTERNALERROR, so it fails with a plain message.
    failure = None
    try:
        eval_example.run(example, module_globals=prelude())
    except Exception as exc:
        failure = f"{example}: {type(exc).__name__}: {exc}"
    if failure is not None:
        pytest.fail(failure, pytrace=False)
