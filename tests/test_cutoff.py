"""Nothing cut off is ever reported as valid, and reasks always send valid JSON arguments.

Sans-IO: completions are handed to the engine by hand.
"""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from schemagen import TruncatedError
from schemagen.engine.run import ExtractionRun, Settings
from schemagen.exchange import Completion, ToolCall, Usage


class Order(BaseModel):
    items: list[str]


def call(text: str, finish: str = "stop") -> Completion:
    return Completion(tool_calls=(ToolCall("Order", text, "c1"),), finish_reason=finish,
                      usage=Usage(prompt_tokens=10, completion_tokens=5, requests=1))


def run(**settings: object) -> ExtractionRun[Order]:
    return ExtractionRun(Order, "a, b, c, d", Settings(model="m", **settings))  # type: ignore[arg-type]


def _assistant_arguments(r: ExtractionRun[Order]) -> str:
    body = r.next_request().body
    [assistant] = [m for m in body["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
    return str(assistant["tool_calls"][0]["function"]["arguments"])


@pytest.mark.parametrize("cut", ['{"items": ["a", "b"', '{"items": ["a", "b", "c', '{"items": ["a"], "ex'])
def test_a_cut_off_labelled_stop_is_reasked_not_returned(cut: str) -> None:
    r = run()
    r.next_request()
    r.receive(call(cut, finish="stop"))  # a proxy that says "stop" for a cut-off
    assert not r.done  # the shortened list was not accepted
    attempt = r.trace.attempts[0]
    assert attempt.outcome == "truncated"
    assert any("cut off although finish_reason=stop" in n for n in attempt.notes)
    json.loads(_assistant_arguments(r))  # the reask's arguments are valid JSON
    r.receive(call('{"items": ["a", "b", "c", "d"]}'))
    assert r.result().value.items == ["a", "b", "c", "d"]


def test_a_cut_off_with_no_reasks_left_raises() -> None:
    r = run(reasks=0)
    r.next_request()
    with pytest.raises(TruncatedError):
        r.receive(call('{"items": ["a", "b"', finish="stop"))


def test_a_repair_inside_a_closed_structure_is_still_accepted() -> None:
    r = run()
    r.next_request()
    r.receive(call('{"items": ["a", "b",]}'))  # a trailing comma: malformed, not cut off
    assert r.result().value.items == ["a", "b"]


def test_reask_after_a_missing_call_sends_valid_json_arguments() -> None:
    r = run()
    r.next_request()
    r.receive(Completion(content="I think the items are a and b.", finish_reason="stop",
                         usage=Usage(prompt_tokens=10, completion_tokens=5, requests=1)))
    body = r.next_request().body
    [assistant] = [m for m in body["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {}
    tool = body["messages"][-1]
    assert "I think the items are a and b." in tool["content"]  # the prose is quoted, not lost


def test_on_truncation_reask_with_retries_0_makes_its_one_reask() -> None:
    r = run(reasks=0, on_truncation="reask", max_tokens=50)
    first = r.next_request()
    r.receive(call('{"items": ["a", "b"', finish="length"))
    second = r.next_request()  # the reask on_truncation asked for; not one of retries
    assert second.body["messages"] != first.body["messages"]
    with pytest.raises(TruncatedError):  # and only one
        r.receive(call('{"items": ["a"', finish="length"))


@pytest.mark.parametrize("finish", ["repetition", "length"])
def test_a_reask_after_a_loop_asks_the_backend_to_avoid_loops(finish: str) -> None:
    r = run(on_truncation="reask", max_tokens=50)
    assert r.next_request().avoid_loops is False
    r.receive(call('{"items": ["a", "a", "a", "a"', finish=finish))
    reask = r.next_request()
    # a loop is a fact about this input: the local backend then generates with its no-repeat
    # rule from the start instead of looping once more first; running out of room is not a loop
    assert reask.avoid_loops is (finish == "repetition")
