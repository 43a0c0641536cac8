"""Bounded output against the real llama.cpp server (SmolLM2-135M-Instruct, n_ctx 4096).

SmolLM2 under a forced tool call sometimes fills list and free-text fields until the
context is full. With the derived bound every call must end within it, none may reach
the context limit, and each result is a valid value or a TruncatedError: the schemas
here have no validators and llama.cpp constrains the output to the schema, so a
validation failure (ExtractionError) would mean a bug, not a model slip.
"""

from __future__ import annotations

import pytest
from benchmarks.runaway_cases import load_cases

import schemagen
from schemagen import TruncatedError
from schemagen.trace import AttemptRecord
from tests.llama_server import LlamaServer

pytestmark = pytest.mark.llama

SAMPLING = {"temperature": 0.0, "seed": 7}


def _check_attempts(attempts: list[AttemptRecord], n_ctx: int) -> None:
    for attempt in attempts:
        limit = attempt.request.max_tokens
        assert limit is not None and attempt.bound is not None  # never unbounded
        usage = attempt.usage
        assert usage.completion_tokens <= limit
        assert usage.prompt_tokens + usage.completion_tokens < n_ctx  # never reached the context limit


@pytest.mark.timeout(1200)  # ~1 min on an idle 2-core machine; much longer when it is shared
def test_runaway_set_ends_within_its_bounds(llama_server: LlamaServer) -> None:
    cases = load_cases()
    assert len(cases) >= 30
    outcomes: dict[str, str] = {}
    with schemagen.Client(base_url=llama_server.base_url, api_key="x", model="smollm2",
                          max_context=llama_server.n_ctx, timeout=300, **SAMPLING) as sg:
        for case in cases:
            try:
                result = sg.extract_result(case.target, case.text)
            except TruncatedError as exc:
                assert exc.trace is not None and exc.max_tokens is not None
                assert f"max_tokens={exc.max_tokens}" in str(exc)
                _check_attempts(exc.trace.attempts, llama_server.n_ctx)
                outcomes[case.id] = f"truncated ({exc.reason})"
            else:
                assert isinstance(result.value, case.target)
                _check_attempts(result.trace.attempts, llama_server.n_ctx)
                outcomes[case.id] = "valid"
    valid = sum(v == "valid" for v in outcomes.values())
    # Most answers are short and honest; the bound only stops the runaways.
    assert valid >= 0.75 * len(cases), outcomes


@pytest.mark.timeout(600)
def test_streamed_calls_with_the_guard_on_a_real_server(llama_server: LlamaServer) -> None:
    # Honest long-ish answers pass the guard; a runaway stops at the bound or the guard.
    ids = {"review-4", "recipe-2", "meeting-5"}
    cases = [c for c in load_cases() if c.id in ids]
    outcomes = {}
    with schemagen.Client(base_url=llama_server.base_url, api_key="x", model="smollm2", stream=True,
                          max_context=llama_server.n_ctx, timeout=300, **SAMPLING) as sg:
        for case in cases:
            try:
                result = sg.extract_result(case.target, case.text)
            except TruncatedError as exc:
                assert exc.trace is not None
                completion = exc.trace.attempts[-1].completion
                assert completion is not None and completion.raw.get("streamed") is True
                assert completion.usage.completion_tokens <= (exc.max_tokens or 0)
                outcomes[case.id] = exc.reason
            else:
                outcomes[case.id] = "valid"
                assert result.trace.attempts[-1].completion is not None
                assert "repetition" not in result.trace.attempts[-1].completion.raw
    assert sum(v == "valid" for v in outcomes.values()) >= 2, outcomes
