"""Bounded output end to end over HTTP: derived max_tokens, truncation, reasks that fit,
budgets, cost, and the streamed repetition guard. Scripted servers make it deterministic."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from pydantic import BaseModel, field_validator

import schemagen
from schemagen import (
    Budget,
    BudgetExceeded,
    ConfigurationError,
    ContextOverflowError,
    RetryPolicy,
    TruncatedError,
)
from schemagen.engine.bounds import BoundRule, output_bound
from schemagen.engine.pricing import PRICES, register_price
from schemagen.engine.run import ExtractionRun, Settings
from schemagen.testing import Call, FaultServer, StreamScript, StreamServer, respond, tool_call, truncated
from schemagen.tokens import counter_for

FAST = RetryPolicy(max_retries=0)
TEXT = "Standup notes: Ann fixed the login bug, Bob is blocked on the staging database."


class Notes(BaseModel):
    """Notes from a meeting."""

    title: str
    items: list[str]


class Report(BaseModel):
    """A report with a code that must be positive."""

    code: int
    notes: list[str]

    @field_validator("code")
    @classmethod
    def positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("code must be positive")
        return v


GOOD = {"title": "Standup", "items": ["Ann fixed the login bug", "Bob is blocked"]}


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


def client(server: FaultServer | StreamServer, **kw: object) -> schemagen.Client:
    options: dict[str, object] = {"retry_policy": FAST, "timeout": 10.0, "model": "m", **kw}
    return schemagen.Client(base_url=server.base_url, api_key="x", **options)  # type: ignore[arg-type]


def derived(target: object, text: str = TEXT) -> int:
    run = ExtractionRun(target, text, Settings(model="m"))
    return output_bound(run.spec.parameters, counter_for("m")(text), count=run.counter).max_tokens


# ---------------------------------------------------------------- 1. never unbounded


def test_every_request_carries_a_derived_max_tokens(server: FaultServer) -> None:
    server.enqueue(tool_call(GOOD))
    result = client(server).extract_result(Notes, TEXT)
    [sent] = server.model_requests
    assert sent.body["max_tokens"] == derived(Notes)
    assert result.trace.attempts[0].bound is not None
    assert f"max_tokens={derived(Notes)}" in result.trace.attempts[0].bound


def test_the_callers_max_tokens_wins_and_bounds_can_be_switched_off(server: FaultServer) -> None:
    server.enqueue(tool_call(GOOD), tool_call(GOOD), tool_call(GOOD))
    sg = client(server)
    sg.extract(Notes, TEXT, max_tokens=77)
    sg.extract(Notes, TEXT, bounds=False)
    sg.extract(Notes, TEXT, bounds=BoundRule(floor=40, ceiling=50))
    first, second, third = (r.body for r in server.model_requests)
    assert first["max_tokens"] == 77
    assert "max_tokens" not in second and "max_completion_tokens" not in second
    assert third["max_tokens"] == 50


def test_reasoning_models_get_max_completion_tokens_with_room_to_think(server: FaultServer) -> None:
    server.enqueue(tool_call(GOOD))
    client(server, model="o4-mini").extract(Notes, TEXT)
    body = server.model_requests[0].body
    assert "max_tokens" not in body and body["max_completion_tokens"] > 8192


def _cut_off_like_llamacpp(call: Call) -> object:
    # llama.cpp says finish_reason="tool_calls" even when max_tokens cut the call short
    return tool_call('{"title": "Standup", "items": ["Ann fixed", "Bob', finish_reason="tool_calls",
                     usage={"prompt_tokens": 90, "completion_tokens": call.body["max_tokens"]})


def test_hitting_the_bound_is_a_truncation_never_a_repaired_value(server: FaultServer) -> None:
    server.enqueue(respond(_cut_off_like_llamacpp))
    with pytest.raises(TruncatedError) as info:
        client(server).extract(Notes, TEXT)
    err = info.value
    bound = derived(Notes)
    assert err.max_tokens == bound and err.reason == "length"
    assert f"max_tokens={bound}" in str(err) and "derived from" in str(err)
    assert "on_truncation='reask'" in str(err) and "Raise max_tokens=" in str(err)
    assert err.partial.endswith('"Bob')
    assert err.usage is not None and err.usage.completion_tokens == bound
    assert len(server.model_requests) == 1


def test_on_truncation_reask_raises_the_bound_once(server: FaultServer) -> None:
    server.enqueue(truncated('{"title": "Standup", "items": ["Ann", "Ann", "Ann"'), tool_call(GOOD))
    result = client(server, on_truncation="reask").extract_result(Notes, TEXT)
    assert result.value == Notes(**GOOD)
    first, second = (r.body for r in server.model_requests)
    assert second["max_tokens"] >= 2 * first["max_tokens"]
    assert "cut off" in second["messages"][-1]["content"]
    assert [a.outcome for a in result.trace.attempts] == ["truncated", "ok"]

    server.enqueue(truncated('{"title": "x", "items": ["a"'), truncated('{"title": "x", "items": ["a"'))
    with pytest.raises(TruncatedError):
        client(server, on_truncation="reask").extract(Notes, TEXT)
    assert len(server.model_requests) == 4  # one reask only


# ---------------------------------------------------------------- 3. reasks that fit


def _window_for(target: object, text: str, max_tokens: int, extra: int) -> int:
    """A window that holds the first request plus ``extra`` tokens, no more."""
    run = ExtractionRun(target, text, Settings(model="m", max_tokens=max_tokens))
    prompt = run.prompt_tokens(run.next_request())
    window = prompt + max_tokens
    while run._room(window, prompt) < max_tokens + extra:
        window += 1
    return window


def test_a_reask_that_would_overflow_is_shortened_to_the_fields_with_errors(server: FaultServer) -> None:
    notes = [f"note number {i} about item {i * 7}" for i in range(150)]  # ~1500 tokens of valid data
    server.enqueue(tool_call({"code": -1, "notes": notes}, usage={"completion_tokens": 1500}),
                   tool_call({"code": 5, "notes": notes[:3]}))
    window = _window_for(Report, TEXT, 1800, extra=400)
    result = client(server, max_context=window, max_tokens=1800).extract_result(Report, TEXT)
    assert result.value.code == 5
    reask = server.model_requests[1].body
    failed_call = reask["messages"][-2]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(failed_call) == {"code": -1}  # the notes were dropped, the bad field kept
    assert "code must be positive" in reask["messages"][-1]["content"]
    assert "Only the fields with errors" in reask["messages"][-1]["content"]
    run = ExtractionRun(Report, TEXT, Settings(model="m"))
    sent = schemagen.Request("chat", reask)
    assert run.prompt_tokens(sent) + reask["max_tokens"] <= window
    assert "reask shortened" in result.trace.attempts[1].notes[0]
    # the naive reask would not have fitted
    naive = len(json.dumps({"code": -1, "notes": notes})) // 4
    assert run.prompt_tokens(schemagen.Request("chat", server.model_requests[0].body)) + naive + 1800 > window


def test_a_reask_that_cannot_fit_is_refused_before_sending(server: FaultServer) -> None:
    server.enqueue(tool_call({"code": -1, "notes": []}))
    window = _window_for(Report, TEXT, 300, extra=5)  # the errors alone need more than 5 tokens
    with pytest.raises(ContextOverflowError) as info:
        client(server, max_context=window, max_tokens=300).extract(Report, TEXT)
    err = info.value
    assert err.max_context == window and err.max_tokens == 300 and err.prompt_tokens + 300 > window - 10
    assert len(server.model_requests) == 1  # the reask was never sent


def test_the_derived_bound_shrinks_to_the_context_left_or_refuses(server: FaultServer) -> None:
    server.enqueue(tool_call(GOOD))
    run = ExtractionRun(Notes, TEXT, Settings(model="m"))
    prompt = run.prompt_tokens(run.next_request())
    window = prompt + 200 + 40  # room for less than the derived bound, more than the floor... almost
    client(server, max_context=window, bounds=BoundRule(floor=100)).extract(Notes, TEXT)
    sent = server.model_requests[0].body["max_tokens"]
    assert 100 <= sent < derived(Notes)
    with pytest.raises(ContextOverflowError):
        client(server, max_context=prompt + 50).extract(Notes, TEXT)
    assert len(server.model_requests) == 1


# ---------------------------------------------------------------- 4. budgets


def test_a_per_call_budget_too_small_for_one_attempt_sends_nothing(server: FaultServer) -> None:
    with pytest.raises(BudgetExceeded) as info:
        client(server).extract(Notes, TEXT, budget=100)
    assert server.model_requests == []
    assert info.value.usage is not None and info.value.usage.requests == 0
    assert info.value.trace is not None and "nothing was sent" in str(info.value)


def test_a_budget_stops_the_reask_and_carries_the_usage_so_far(server: FaultServer) -> None:
    usage = {"prompt_tokens": 120, "completion_tokens": 30}
    server.enqueue(tool_call({"code": -1, "notes": []}, usage=usage))
    estimate = ExtractionRun(Report, TEXT, Settings(model="m"))
    first = estimate.estimate(estimate.next_request()).total_tokens
    with pytest.raises(BudgetExceeded) as info:
        client(server, retries=2).extract(Report, TEXT, budget=first + 100)
    err = info.value
    assert len(server.model_requests) == 1
    assert err.usage is not None and err.usage.total_tokens == 150 and err.usage.requests == 1
    assert err.trace is not None and [a.outcome for a in err.trace.attempts] == ["invalid"]


def test_a_shared_budget_spans_calls_and_the_per_call_setting_overrides(server: FaultServer) -> None:
    usage = {"prompt_tokens": 100, "completion_tokens": 50}
    server.enqueue(tool_call(GOOD, usage=usage), tool_call(GOOD, usage=usage))
    estimate = ExtractionRun(Notes, TEXT, Settings(model="m"))
    first = estimate.estimate(estimate.next_request()).total_tokens
    shared = Budget(max_tokens=first + 100)
    sg = client(server, budget=shared)
    sg.extract(Notes, TEXT)
    assert shared.spent.total_tokens == 150
    with pytest.raises(BudgetExceeded):
        sg.extract(Notes, TEXT)  # 250 spent + the estimate is over
    assert len(server.model_requests) == 1
    assert sg.extract(Notes, TEXT, budget=None) == Notes(**GOOD)  # per-call override
    assert shared.spent.total_tokens == 150


def test_a_valid_value_that_overran_the_budget_is_kept(server: FaultServer) -> None:
    # The server's count is larger than the estimate: the value is paid for, so it is
    # returned; the shared budget then refuses the next call.
    server.enqueue(tool_call(GOOD, usage={"prompt_tokens": 5000, "completion_tokens": 20}))
    shared = Budget(max_tokens=1000)
    result = client(server, budget=shared).extract_result(Notes, TEXT)
    assert result.value == Notes(**GOOD)
    assert any(n.startswith("budget:") for n in result.trace.attempts[0].notes)
    assert shared.exhausted
    with pytest.raises(BudgetExceeded):
        client(server, budget=shared).extract(Notes, TEXT)


# ---------------------------------------------------------------- 5. cost


def test_cost_is_filled_in_for_priced_models_and_a_cost_budget_stops_calls(server: FaultServer) -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "cached_tokens": 400}
    server.enqueue(tool_call(GOOD, usage=usage), tool_call(GOOD, usage=usage))
    price = PRICES["gpt-4o-mini"]
    expected = (600 * price.input + 400 * (price.cached_input or 0) + 100 * price.output) / 1e6
    result = client(server, model="gpt-4o-mini-2024-07-18").extract_result(Notes, TEXT)
    assert result.usage.cost == pytest.approx(expected)
    assert result.trace.attempts[0].usage.cost == pytest.approx(expected)
    budget = Budget(max_cost=expected * 1.5)
    sg = client(server, model="gpt-4o-mini", budget=budget)
    sg.extract(Notes, TEXT)
    with pytest.raises(BudgetExceeded) as info:
        sg.extract(Notes, TEXT)
    assert info.value.spent.cost == pytest.approx(expected)


def test_unknown_models_show_tokens_only_and_refuse_cost_budgets(server: FaultServer) -> None:
    server.enqueue(tool_call(GOOD))
    result = client(server, model="my-local-llama").extract_result(Notes, TEXT)
    assert result.usage.cost is None and result.usage.total_tokens > 0
    with pytest.raises(ConfigurationError, match="register_price"):
        client(server, model="my-local-llama").extract(Notes, TEXT, budget=Budget(max_cost=1.0))
    register_price("my-local-llama", input=0.1, output=0.2)
    try:
        server.enqueue(tool_call(GOOD, usage={"prompt_tokens": 1_000_000, "completion_tokens": 0}))
        priced = client(server, model="my-local-llama").extract_result(Notes, TEXT)
        assert priced.usage.cost == pytest.approx(0.1)
    finally:
        PRICES.pop("my-local-llama")


# ---------------------------------------------------------------- 2. streamed repetition guard

LOOP = '{"title": "Standup", "items": ["Ann fixed the login bug", ' + '"Bob is blocked", ' * 400
NAMES = ["Ada", "Berg", "Chen", "Dara", "Emil", "Fatima", "Goran", "Hana", "Ivo", "Jun", "Kofi", "Lena",
         "Mateo", "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yara"]
HONEST = json.dumps({"title": "Roll call", "items": [f"person {i}: {w}" for i, w in enumerate(NAMES * 4)]})


@pytest.fixture
def streamer() -> Iterator[StreamServer]:
    with StreamServer() as srv:
        yield srv


def test_a_streamed_loop_is_stopped_early_and_raised_as_repetition(streamer: StreamServer) -> None:
    streamer.scripts.append(StreamScript(LOOP))
    sg = client(streamer, stream=True, max_tokens=2000)
    with pytest.raises(TruncatedError) as info:
        sg.extract(Notes, TEXT)
    err = info.value
    assert err.reason == "repetition" and "repetition loop" in str(err) and "Bob is blocked" in str(err)
    [record] = streamer.requests
    assert record.body["stream"] is True and record.body["stream_options"] == {"include_usage": True}
    record.done.wait(5)
    assert record.disconnected and record.sent < record.planned / 2  # the stream was closed early
    assert err.partial.startswith('{"title": "Standup"') and len(err.partial) < 1000
    assert err.usage is not None and 0 < err.usage.completion_tokens < 300  # counted from chunks


async def test_a_streamed_loop_is_stopped_early_async(streamer: StreamServer) -> None:
    streamer.scripts.append(StreamScript(LOOP))
    with pytest.raises(TruncatedError) as info:
        await client(streamer, stream=True, max_tokens=2000).aextract(Notes, TEXT)
    assert info.value.reason == "repetition"
    streamer.requests[0].done.wait(5)
    assert streamer.requests[0].disconnected


def test_honest_long_streamed_output_is_untouched(streamer: StreamServer) -> None:
    streamer.scripts += [StreamScript(HONEST), StreamScript(HONEST, usage=True)]
    sg = client(streamer, stream=True, max_tokens=2000)
    first = sg.extract_result(Notes, TEXT)
    assert first.value == Notes.model_validate_json(HONEST)
    chunks = streamer.requests[0].sent
    assert first.usage.completion_tokens == chunks  # estimated: one token a chunk
    assert first.trace.attempts[0].completion is not None
    assert first.trace.attempts[0].completion.raw["usage_estimated"] is True
    second = sg.extract_result(Notes, TEXT)
    assert second.usage.prompt_tokens == 50  # the server's usage chunk wins


async def test_honest_long_streamed_output_is_untouched_async(streamer: StreamServer) -> None:
    streamer.scripts.append(StreamScript(HONEST))
    value = await client(streamer, stream=True, max_tokens=2000).aextract(Notes, TEXT)
    assert value == Notes.model_validate_json(HONEST)


def test_without_the_guard_a_streamed_loop_runs_to_the_bound(streamer: StreamServer) -> None:
    streamer.scripts.append(StreamScript(LOOP))
    backend = schemagen.backends.create_backend("openai", model="m", base_url=streamer.base_url,
                                                api_key="x", repetition_guard=False)
    sg = schemagen.Client(backend=backend, stream=True, retry_policy=FAST)
    with pytest.raises(TruncatedError) as info:
        sg.extract(Notes, TEXT)
    assert info.value.reason == "length"
    assert streamer.requests[0].sent == streamer.requests[0].planned == derived(Notes)


def test_a_repetition_can_be_reasked(streamer: StreamServer) -> None:
    streamer.scripts += [StreamScript(LOOP), StreamScript(json.dumps(GOOD))]
    result = client(streamer, stream=True, on_truncation="reask").extract_result(Notes, TEXT)
    assert result.value == Notes(**GOOD)
    second = streamer.requests[1].body
    assert "repeated itself" in second["messages"][-1]["content"]
    resent = second["messages"][-2]["tool_calls"][0]["function"]["arguments"]
    assert len(resent) <= 603  # the loop is not resent in full
    assert second["max_tokens"] == streamer.requests[0].body["max_tokens"]  # a loop gets no more room


# ---------------------------------------------------------------- a backend with its own tokenizer


class CountingBackend:
    """A local-style backend: its own tokenizer and window; answers from a script."""

    endpoints = frozenset({"chat"})
    model = "local-model"
    supports_strict = False
    max_context = 600

    def __init__(self, *answers: schemagen.Completion) -> None:
        self.answers = list(answers)
        self.requests: list[schemagen.Request] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())  # a whitespace tokenizer: easy to check by hand

    def complete(self, request: schemagen.Request) -> schemagen.Completion:
        self.requests.append(request)
        return self.answers.pop(0)

    async def acomplete(self, request: schemagen.Request) -> schemagen.Completion:
        return self.complete(request)

    def close(self) -> None:
        pass


def _answer(args: object, completion_tokens: int = 20, prompt_tokens: int = 100) -> schemagen.Completion:
    return schemagen.Completion(
        tool_calls=(schemagen.ToolCall("Notes", json.dumps(args), "c"),), finish_reason="tool_calls",
        usage=schemagen.Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, requests=1))


def test_the_backends_own_tokenizer_and_window_are_used() -> None:
    backend = CountingBackend(_answer(GOOD))
    sg = schemagen.Client(backend=backend)
    result = sg.extract_result(Notes, TEXT)
    [request] = backend.requests
    run = ExtractionRun(Notes, TEXT, sg.settings, counter=sg.counter)
    assert run.counter.native and run.input_tokens == len(TEXT.split())
    prompt = run.prompt_tokens(request)
    assert request.max_tokens == derived_with(run)
    assert prompt + (request.max_tokens or 0) <= backend.max_context  # no margin: the count is exact
    assert result.attempts == 1


def derived_with(run: ExtractionRun) -> int:
    return output_bound(run.spec.parameters, run.input_tokens, count=run.counter,
                        context_left=None).max_tokens


def test_filling_the_known_window_without_a_bound_is_a_truncation() -> None:
    # bounds=False: the server stops when the context is full, and may say "tool_calls"
    backend = CountingBackend(_answer(GOOD, completion_tokens=500, prompt_tokens=100))
    with pytest.raises(TruncatedError) as info:
        schemagen.Client(backend=backend, bounds=False).extract(Notes, TEXT)
    assert info.value.max_tokens is None and "server's token limit" in str(info.value)
    assert "max_tokens" not in backend.requests[0].body
