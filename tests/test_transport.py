"""Transport retries, reasks, typed errors and usage sums, against the scripted fault server.

Only what a real server can't be asked to do on cue is scripted here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import openai
import pytest
from pydantic import BaseModel

import schemagen
from schemagen import (
    APIConnectionError,
    APITimeoutError,
    ExtractionError,
    RateLimitError,
    RefusalError,
    RequestRejectedError,
    RetryPolicy,
    ServerError,
    TruncatedError,
)
from schemagen.testing import (
    FaultServer,
    context_length_error,
    hang,
    malformed_arguments,
    rate_limit,
    refusal,
    reset,
    status,
    tool_call,
    truncated,
)

KEY = "sk-fault-test-key-0123456789"
FAST = RetryPolicy(max_retries=3, initial_wait=0.05, max_wait=1.0, jitter=0.0)
U = {"prompt_tokens": 100, "completion_tokens": 10, "cached_tokens": 40}


class Person(BaseModel):
    name: str
    age: int


GOOD = {"name": "Ada", "age": 36}


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


def client(server: FaultServer, **kw: object) -> schemagen.Client:
    options: dict[str, object] = {"retry_policy": FAST, "timeout": 5.0, **kw}
    return schemagen.Client(base_url=server.base_url, api_key=KEY, model="m", **options)  # type: ignore[arg-type]


def test_429_honours_retry_after(server: FaultServer) -> None:
    server.enqueue(rate_limit(retry_after=1), tool_call(GOOD))
    started = time.monotonic()
    result = client(server).extract_result(Person, "Ada is 36.")
    assert result.value == Person(**GOOD)
    assert time.monotonic() - started >= 1.0
    [attempt] = result.trace.attempts
    assert [r.wait_s for r in attempt.retries] == [1.0]
    assert "429" in attempt.retries[0].error
    assert len(server.model_requests) == 2
    gap = server.model_requests[1].time - server.model_requests[0].time
    assert gap >= 0.95


def test_retry_after_ms_is_honoured(server: FaultServer) -> None:
    server.enqueue(rate_limit(retry_after_ms=250), tool_call(GOOD))
    result = client(server).extract_result(Person, "x")
    assert [r.wait_s for r in result.trace.attempts[0].retries] == [0.25]


def test_5xx_backs_off_exponentially_then_succeeds(server: FaultServer) -> None:
    server.enqueue(status(500), status(503), status(502), tool_call(GOOD))
    result = client(server).extract_result(Person, "x")
    waits = [r.wait_s for r in result.trace.attempts[0].retries]
    assert waits == pytest.approx([0.05, 0.1, 0.2])
    assert result.attempts == 1 and len(server.model_requests) == 4


def test_5xx_exhausts_transport_retries_into_a_typed_error(server: FaultServer) -> None:
    server.enqueue(*[status(500)] * 4)
    with pytest.raises(ServerError) as info:
        client(server).extract(Person, "x")
    assert info.value.status_code == 500
    assert len(server.model_requests) == 4  # first try + 3 retries
    assert info.value.trace is not None and info.value.trace.attempts[0].outcome == "transport"


def test_rate_limit_after_retries_is_a_rate_limit_error(server: FaultServer) -> None:
    server.enqueue(*[rate_limit(retry_after=0)] * 2)
    with pytest.raises(RateLimitError):
        client(server, max_retries=1, retry_policy=None).extract(Person, "x")
    assert len(server.model_requests) == 2


def test_hang_times_out_and_is_retried(server: FaultServer) -> None:
    server.enqueue(hang(10), tool_call(GOOD))
    result = client(server, timeout=0.3).extract_result(Person, "x")
    assert result.value.name == "Ada"
    assert "timed out" in result.trace.attempts[0].retries[0].error


def test_hang_every_time_is_a_timeout_error(server: FaultServer) -> None:
    server.enqueue(hang(10), hang(10))
    policy = RetryPolicy(max_retries=1, initial_wait=0.01, jitter=0.0)
    with pytest.raises(APITimeoutError):
        client(server, timeout=0.3, retry_policy=policy).extract(Person, "x")


def test_connection_reset_is_retried(server: FaultServer) -> None:
    server.enqueue(reset(), tool_call(GOOD))
    assert client(server).extract(Person, "x") == Person(**GOOD)
    server.enqueue(*[reset()] * 4)
    with pytest.raises(APIConnectionError):
        client(server).extract(Person, "x")


def test_400_is_not_retried_and_says_why(server: FaultServer) -> None:
    server.enqueue(context_length_error())
    with pytest.raises(RequestRejectedError) as info:
        client(server).extract(Person, "x")
    assert info.value.status_code == 400
    assert "max_context=" in str(info.value)
    assert len(server.model_requests) == 1


def test_malformed_arguments_are_reasked_and_usage_is_summed(server: FaultServer) -> None:
    server.enqueue(malformed_arguments('{"name": "Ada", "age": "unknown"', usage=U), tool_call(GOOD, usage=U))
    result = client(server).extract_result(Person, "x")
    assert result.value == Person(**GOOD)
    assert result.attempts == 2
    assert result.usage.prompt_tokens == 200 and result.usage.completion_tokens == 20
    assert result.usage.cached_tokens == 80 and result.usage.requests == 2
    reask = server.model_requests[1].body["messages"]
    # Unclosed JSON is a cut-off: the reask's arguments stay valid JSON, the output is quoted.
    assert json.loads(reask[-2]["tool_calls"][0]["function"]["arguments"]) == {}
    assert '{"name": "Ada", "age": "unknown"' in reask[-1]["content"]


def test_usage_is_summed_on_failure_too(server: FaultServer) -> None:
    bad = {"name": "Ada", "age": "old"}
    server.enqueue(*[tool_call(bad, usage=U) for _ in range(3)])
    with pytest.raises(ExtractionError) as info:
        client(server, retries=2).extract(Person, "x")
    err = info.value
    assert len(err.attempts) == 3
    assert err.usage is not None and err.usage.total_tokens == 330 and err.usage.requests == 3
    assert "age" in str(err) and '"tool_choice"' in str(err)


def test_refusal_is_not_retried(server: FaultServer) -> None:
    server.enqueue(refusal("I can't help with that."))
    with pytest.raises(RefusalError):
        client(server).extract(Person, "x")
    assert len(server.model_requests) == 1


def test_finish_reason_length_is_truncation(server: FaultServer) -> None:
    server.enqueue(truncated('{"name": "Ad', usage=U))
    with pytest.raises(TruncatedError) as info:
        client(server, max_tokens=5).extract(Person, "x")
    assert info.value.max_tokens == 5
    assert "max_tokens=5" in str(info.value)
    assert info.value.usage is not None and info.value.usage.completion_tokens == 10


async def test_async_twin_retries_and_reasks(server: FaultServer) -> None:
    server.enqueue(rate_limit(retry_after=0.1), malformed_arguments("{oops"), tool_call(GOOD))
    result = await client(server).aextract_result(Person, "x")
    assert result.value == Person(**GOOD)
    assert result.attempts == 2
    assert [r.wait_s for r in result.trace.attempts[0].retries] == [0.1]


def test_bring_your_own_client_keeps_its_key_out_of_everything(server: FaultServer) -> None:
    oa = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=5)
    server.enqueue(status(500), *[tool_call({"name": "Ada", "age": "x"})] * 3)
    with pytest.raises(ExtractionError) as info:
        schemagen.extract(Person, "x", client=oa, model="m", retry_policy=FAST)
    assert server.model_requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert len(server.model_requests) == 4  # the SDK's own retries are off; ours counted one
    dumped = json.dumps(info.value.trace.to_dict() if info.value.trace else {}) + str(info.value)
    assert KEY not in dumped
