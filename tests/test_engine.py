"""The sans-IO engine, driven by hand: completions in, requests and verdicts out."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, field_validator

from schemagen import ContextOverflowError, ExtractionError, RefusalError, TruncatedError
from schemagen.engine.run import ExtractionRun, Settings
from schemagen.exchange import Completion, ToolCall, Usage
from schemagen.redact import register_secret


class Person(BaseModel):
    """A person."""

    name: str
    age: int

    @field_validator("age")
    @classmethod
    def adult(cls, v: int) -> int:
        if v < 18:
            raise ValueError("age must be at least 18")
        return v


def call(args: object, *, usage: Usage | None = None, finish: str = "tool_calls") -> Completion:
    text = args if isinstance(args, str) else json.dumps(args)
    return Completion(tool_calls=(ToolCall("Person", text, "c1"),), finish_reason=finish,
                      usage=usage or Usage(prompt_tokens=10, completion_tokens=5, requests=1))


def run(**settings: object) -> ExtractionRun[Person]:
    return ExtractionRun(Person, "Ann is 30.", Settings(model="m", **settings))  # type: ignore[arg-type]


def test_first_request_is_a_forced_tool_call() -> None:
    r = run(params={"temperature": 0})
    body = r.next_request().body
    assert body["tool_choice"] == {"type": "function", "function": {"name": "Person"}}
    assert body["tools"][0]["function"]["name"] == "Person"
    assert body["parallel_tool_calls"] is False
    assert body["temperature"] == 0
    assert body["messages"][0]["role"] == "system" and "Person" in body["messages"][0]["content"]
    assert body["messages"][-1] == {"role": "user", "content": "Ann is 30."}


def test_valid_call_finishes() -> None:
    r = run()
    r.next_request()
    r.receive(call({"name": "Ann", "age": 30}))
    result = r.result()
    assert r.done and result.value == Person(name="Ann", age=30)
    assert result.attempts == 1 and result.usage.total_tokens == 15


def test_reask_carries_only_the_last_failure_and_usage_sums() -> None:
    r = run(reasks=3)
    first = r.next_request().body
    r.receive(call({"name": "Ann", "age": 3}))
    second = r.next_request().body
    assert len(second["messages"]) == len(first["messages"]) + 2
    assert second["messages"][-2]["tool_calls"][0]["function"]["arguments"] == '{"name": "Ann", "age": 3}'
    assert "age must be at least 18" in second["messages"][-1]["content"]
    r.receive(call({"name": "Ann", "age": 4}))
    third = r.next_request().body
    # the history does not grow: still original + one failed call + its errors
    assert len(third["messages"]) == len(second["messages"])
    assert '"age": 4' in third["messages"][-2]["tool_calls"][0]["function"]["arguments"]
    r.receive(call({"name": "Ann", "age": 40}))
    result = r.result()
    assert result.attempts == 3
    assert result.usage == Usage(prompt_tokens=30, completion_tokens=15, requests=3)
    assert [a.outcome for a in result.trace.attempts] == ["invalid", "invalid", "ok"]


def test_exhausted_reasks_raise_with_request_and_errors_in_the_message() -> None:
    r = run(reasks=1)
    r.next_request()
    r.receive(call({"name": "Ann", "age": 3}))
    r.next_request()
    with pytest.raises(ExtractionError) as info:
        r.receive(call({"name": "Ann", "age": 5}))
    err = info.value
    assert len(err.attempts) == 2
    assert err.usage is not None and err.usage.requests == 2
    text = str(err)
    assert "age must be at least 18" in text
    assert '"tool_choice"' in text and '"age": 5' in text


def test_broken_json_is_repaired_and_noted() -> None:
    r = run()
    r.next_request()
    r.receive(call('{"name": "Ann", "age": 30,}'))
    result = r.result()
    assert result.value.age == 30
    assert any("repaired" in n for n in result.trace.attempts[0].notes)


def test_content_instead_of_tool_call_is_recovered() -> None:
    r = run()
    r.next_request()
    r.receive(Completion(content='Sure! ```json\n{"name": "Ann", "age": 30}\n```', finish_reason="stop"))
    record = r.result().trace.attempts[0]
    assert r.result().value.name == "Ann"
    assert record.source == "content:json"
    assert "ignored tool_choice" in record.notes[0]


def test_no_call_at_all_is_reasked() -> None:
    r = run(reasks=1)
    r.next_request()
    r.receive(Completion(content="I am a friendly assistant.", finish_reason="stop"))
    second = r.next_request().body
    assert "You must call `Person`" in second["messages"][-1]["content"]


def test_truncation_is_an_error_never_a_repaired_value() -> None:
    r = run(max_tokens=8)
    assert r.next_request().body["max_tokens"] == 8
    with pytest.raises(TruncatedError) as info:
        r.receive(call('{"name": "Ann", "ag', finish="length"))
    assert info.value.max_tokens == 8 and "max_tokens=8" in str(info.value)
    assert info.value.partial == '{"name": "Ann", "ag'


def test_refusal_is_typed() -> None:
    r = run()
    r.next_request()
    with pytest.raises(RefusalError) as info:
        r.receive(Completion(refusal="I can't help with that.", finish_reason="stop"))
    assert info.value.refusal == "I can't help with that."
    assert info.value.usage is not None


def test_preflight_refuses_requests_that_cannot_fit() -> None:
    r = ExtractionRun(Person, "word " * 500, Settings(model="m", max_context=200, max_tokens=50))
    with pytest.raises(ContextOverflowError) as info:
        r.next_request()
    assert info.value.max_context == 200 and info.value.prompt_tokens > 200


def test_secrets_never_appear_in_traces_or_errors() -> None:
    secret = "sk-test-abcdefghijklmnop"
    register_secret(secret)
    r = run(reasks=0, system=f"Ignore. key={secret}")
    r.next_request()
    with pytest.raises(ExtractionError) as info:
        r.receive(call({"name": "Ann", "age": 3}))
    assert secret not in str(info.value)
    assert secret not in json.dumps(info.value.trace.to_dict() if info.value.trace else {})


def test_single_tool_call_and_its_deprecated_old_name() -> None:
    assert run().next_request().body["parallel_tool_calls"] is False
    assert "parallel_tool_calls" not in run(single_tool_call=False).next_request().body
    with pytest.warns(DeprecationWarning, match="single_tool_call"):
        old = Settings(model="m", parallel_tool_calls=False)
    assert old.single_tool_call is False and old.parallel_tool_calls is None
    extraction = ExtractionRun(Person, "Ann is 30.", old)
    assert "parallel_tool_calls" not in extraction.next_request().body


def test_on_truncation_defaults_to_reask_for_local_models_only() -> None:
    """A cut-off local answer costs only time, and a reask turned more of them into values
    (benchmarks/truncation_policy.py); a remote one is on the caller's bill."""
    from schemagen import Client
    from schemagen.backends.local import LocalBackend

    local = LocalBackend()  # the model loads on first use: nothing is loaded here
    assert Client(backend=local).settings.on_truncation == "reask"
    assert Client(backend=local, on_truncation="raise").settings.on_truncation == "raise"
    remote = Client(base_url="http://127.0.0.1:9/v1", api_key="x", model="m")
    assert remote.settings.on_truncation == "raise"
    assert Client(base_url="http://127.0.0.1:9/v1", api_key="x", model="m",
                  on_truncation="reask").settings.on_truncation == "reask"
