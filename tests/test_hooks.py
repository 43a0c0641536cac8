"""Hooks: events, order, payloads, async hooks, and hooks that raise.

Reasks and transport retries are scripted with the loopback fault server (they must happen
on cue); the happy path runs against the real llama.cpp server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import openai
import pytest
from pydantic import BaseModel

import schemagen
from schemagen import HookEvent
from tests.fault_server import FaultServer, malformed_arguments, rate_limit, tool_call
from tests.llama_server import LlamaServer

KEY = "sk-hooks-secret-key-0123456789"
FAST = schemagen.RetryPolicy(max_retries=2, initial_wait=0.01, max_wait=0.02)
GOOD = {"name": "Ada", "age": 36}


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


def recorder(events: list[HookEvent]) -> dict[str, object]:
    return {name: events.append for name in schemagen.observe.hooks.HOOK_NAMES}


def make(server: FaultServer, **kw: object) -> schemagen.Client:
    return schemagen.Client(base_url=server.base_url, api_key=KEY, model="m", retry_policy=FAST,
                            telemetry=False, **kw)  # type: ignore[arg-type]


def test_reask_and_retry_events_in_order_with_payloads(server: FaultServer) -> None:
    server.enqueue(rate_limit(retry_after=0), malformed_arguments('{"name": "Ada", "age": "old"}'),
                   tool_call(GOOD))
    events: list[HookEvent] = []
    result = make(server, hooks=recorder(events)).extract_result(Person, "Ada is 36.")
    assert result.value == Person(**GOOD)
    assert [(e.name, e.attempt) for e in events] == [
        ("request", 1), ("retry", 1), ("response", 1), ("parse_error", 1), ("attempt", 1), ("reask", 1),
        ("request", 2), ("response", 2), ("attempt", 2), ("done", 2),
    ]
    first = events[0]
    assert first.body == server.model_requests[0].body  # the exact body on the wire
    assert first.target == "Person"
    retry = events[1]
    assert "429" in str(retry.error) and retry.wait_s == 0
    parse_error = events[3]
    assert parse_error.errors is not None and "age" in parse_error.errors
    assert events[2].raw is not None and events[2].raw["choices"][0]["message"]["tool_calls"]
    assert events[4].record is not None and events[4].record.outcome == "invalid"
    done = events[-1]
    assert done.value == Person(**GOOD) and done.error is None
    assert done.usage == result.usage and done.usage.requests == 2


def test_done_reports_the_error_when_extraction_fails(server: FaultServer) -> None:
    server.enqueue(*[malformed_arguments('{"name": 1}')] * 2)
    events: list[HookEvent] = []
    sg = make(server, retries=1)
    sg.on("parse_error", events.append)
    sg.on("done", events.append)
    with pytest.raises(schemagen.ExtractionError):
        sg.extract(Person, "Ada is 36.")
    assert [e.name for e in events] == ["parse_error", "parse_error", "done"]
    assert isinstance(events[-1].error, schemagen.ExtractionError)
    assert events[-1].usage is not None and events[-1].usage.requests == 2


def test_a_raising_hook_is_noted_and_does_not_break_extraction(server: FaultServer) -> None:
    def broken(event: HookEvent) -> None:
        raise ValueError(f"hook bug, key {KEY}")

    sg = make(server, hooks={"request": broken, "done": [broken]})
    result = sg.extract_result(Person, "Ada is 36.")
    assert result.value.name
    notes = [n for n in result.trace.notes if n.startswith("hook ")]
    assert len(notes) == 2 and "ValueError: hook bug" in notes[0]
    assert KEY not in " ".join(notes)  # secrets scrubbed from the note


def test_a_hook_can_opt_in_to_ending_the_extraction(server: FaultServer) -> None:
    class Stop(Exception):
        pass

    def veto(event: HookEvent) -> None:
        raise Stop("no")

    sg = make(server)
    sg.on("request", veto, raise_errors=True)
    with pytest.raises(Stop):
        sg.extract(Person, "Ada is 36.")
    assert server.model_requests == []  # stopped before anything was sent


async def test_async_hooks_are_awaited_in_order(server: FaultServer) -> None:
    server.enqueue(malformed_arguments(), tool_call(GOOD))
    seen: list[str] = []

    async def slow(event: HookEvent) -> None:
        await asyncio.sleep(0.01)
        seen.append(event.name)

    sg = make(server, hooks={"request": slow, "reask": slow, "done": slow})
    assert await sg.aextract(Person, "Ada is 36.") == Person(**GOOD)
    assert seen == ["request", "reask", "request", "done"]


def test_async_hook_under_the_sync_driver_runs(server: FaultServer) -> None:
    seen: list[int] = []

    async def hook(event: HookEvent) -> None:
        seen.append(event.attempt)

    make(server, hooks={"attempt": hook}).extract(Person, "Ada is 36.")
    assert seen == [1]


def test_unknown_event_is_a_configuration_error(server: FaultServer) -> None:
    with pytest.raises(schemagen.ConfigurationError, match="Known events: request, response"):
        make(server, hooks={"before_send": print})


def test_module_level_extract_takes_hooks(server: FaultServer) -> None:
    seen: list[str] = []
    oa = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)
    for tag in ("first", "second"):  # a new callable each call: no client is cached for it
        schemagen.extract(Person, "Ada is 36.", client=oa, model="m",
                          hooks={"done": lambda e, tag=tag: seen.append(f"{tag} {e.name}")})
    assert seen == ["first done", "second done"]
    assert oa not in schemagen.client._by_openai_client
    assert "hooks" not in server.model_requests[0].body  # not passed through to the request


@pytest.mark.llama
def test_hooks_see_the_real_request_and_usage(llama_server: LlamaServer) -> None:
    events: dict[str, HookEvent] = {}
    sg = schemagen.Client(base_url=llama_server.base_url, api_key="x", model="smollm2", telemetry=False,
                          temperature=0.0, seed=7, max_tokens=200)
    sg.on("request", lambda e: events.setdefault("request", e))
    sg.on("response", lambda e: events.setdefault("response", e))
    sg.on("done", lambda e: events.setdefault("done", e))
    result = sg.extract_result(Person, "Ada Lovelace is 36 years old.")
    assert events["request"].body is not None
    assert events["request"].body["tool_choice"]["function"]["name"] == "Person"
    assert events["response"].raw is not None and events["response"].raw["usage"]["prompt_tokens"] > 0
    assert events["done"].usage == result.usage and result.usage.completion_tokens > 0
    assert events["done"].value == result.value
