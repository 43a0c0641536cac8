"""Streamed extractions are observed like extract: the same hook events and the same span tree
(they run through the same driving loop, Client.steps)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

import schemagen
from schemagen import HookEvent
from tests.stream_server import Script, StreamServer

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import StatusCode  # noqa: E402

FAST = schemagen.RetryPolicy(max_retries=2, initial_wait=0.01, max_wait=0.02)
GOOD: dict[str, Any] = {"name": "Ada", "age": 36}
#: A hang-up mid-stream (a transport retry), an invalid answer (a reask), then a good one.
EXPECTED_HOOKS = [
    ("request", 1), ("retry", 1), ("response", 1), ("parse_error", 1), ("attempt", 1), ("reask", 1),
    ("request", 2), ("response", 2), ("attempt", 2), ("done", 2),
]


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture
def streamer() -> Iterator[StreamServer]:
    with StreamServer() as srv:
        yield srv


def script(server: StreamServer) -> None:
    server.scripts += [
        Script(json.dumps(GOOD), piece=3, drop_after=2, delay=0),
        Script('{"name": "Ada", "age": "old"}', piece=3, usage=True, delay=0),
        Script(json.dumps(GOOD), piece=3, usage=True, delay=0),
    ]


def make(server: StreamServer, exporter: InMemorySpanExporter, events: list[HookEvent],
         **hooks: Any) -> schemagen.Client:
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    recorded: dict[str, Any] = {name: events.append for name in schemagen.observe.hooks.HOOK_NAMES}
    return schemagen.Client(base_url=server.base_url, api_key="x", model="m", mode="tools",
                            retry_policy=FAST, timeout=10.0, hooks={**recorded, **hooks},
                            telemetry=schemagen.Telemetry(tracer_provider=provider))


def tree(exporter: InMemorySpanExporter) -> list[tuple[str, list[str], list[str]]]:
    """Each span: name, attribute keys, event names (root first, then attempts in order)."""
    spans = sorted(exporter.get_finished_spans(), key=lambda s: (s.parent is not None, s.start_time or 0))
    return [(s.name, sorted(s.attributes or {}), [e.name for e in s.events]) for s in spans]


def check_spans(exporter: InMemorySpanExporter) -> None:
    spans = exporter.get_finished_spans()
    [root] = [s for s in spans if s.parent is None]
    attempts = sorted((s for s in spans if s.parent is not None), key=lambda s: s.start_time or 0)
    assert root.name == "extract Person" and [a.name for a in attempts] == ["chat m", "chat m"]
    assert all(a.parent is not None and a.parent.span_id == root.context.span_id for a in attempts)
    top: dict[str, Any] = dict(root.attributes or {})
    assert top["schemagen.attempts"] == 2 and top["schemagen.outcome"] == "ok"
    assert top["gen_ai.usage.output_tokens"] > 0
    first, second = attempts
    one: dict[str, Any] = dict(first.attributes or {})
    two: dict[str, Any] = dict(second.attributes or {})
    assert [e.name for e in first.events] == ["schemagen.transport_retry"]
    assert one["schemagen.outcome"] == "invalid" and first.status.status_code == StatusCode.ERROR
    assert two["schemagen.outcome"] == "ok" and two["schemagen.reask_reason"] == "invalid"
    assert two["gen_ai.request.model"] == "m" and two["gen_ai.usage.output_tokens"] > 0


def test_extract_stream_emits_the_hooks_and_spans_of_extract(streamer: StreamServer) -> None:
    exporter, events = InMemorySpanExporter(), list[HookEvent]()
    sg = make(streamer, exporter, events)
    script(streamer)
    stream: schemagen.PartialStream[Person] = sg.stream(Person, "Ada is 36.")
    partials = list(stream)
    assert partials[-1].final == Person(**GOOD) and partials[-1].attempt == 2
    assert [(e.name, e.attempt) for e in events] == EXPECTED_HOOKS
    assert events[-1].value == Person(**GOOD) and events[-1].usage == stream.extraction.usage
    check_spans(exporter)

    # extract over the same answers: the same events and the same span tree
    streamed = tree(exporter)
    exporter.clear()
    events.clear()
    script(streamer)
    assert sg.extract(Person, "Ada is 36.", stream=True) == Person(**GOOD)
    assert [(e.name, e.attempt) for e in events] == EXPECTED_HOOKS
    assert tree(exporter) == streamed


async def test_aextract_stream_emits_the_hooks_and_spans_of_extract(streamer: StreamServer) -> None:
    exporter, events = InMemorySpanExporter(), list[HookEvent]()
    awaited: list[str] = []

    async def on_done(event: HookEvent) -> None:
        awaited.append(event.name)

    sg = make(streamer, exporter, events)
    sg.on("done", on_done)
    script(streamer)
    stream: schemagen.AsyncPartialStream[Person] = sg.astream(Person, "Ada is 36.")
    partials = [p async for p in stream]
    assert partials[-1].final == Person(**GOOD) and await stream.aresult() == Person(**GOOD)
    assert [(e.name, e.attempt) for e in events] == EXPECTED_HOOKS
    assert awaited == ["done"]
    check_spans(exporter)


def test_a_stream_closed_early_still_ends_its_spans_and_says_done(streamer: StreamServer) -> None:
    exporter, events = InMemorySpanExporter(), list[HookEvent]()
    streamer.scripts.append(Script(json.dumps(GOOD), piece=2, delay=0))
    stream = iter(make(streamer, exporter, events).stream(Person, "Ada is 36."))
    next(stream)
    stream.close()  # type: ignore[attr-defined]
    assert [e.name for e in events][-1] == "done" and isinstance(events[-1].error, GeneratorExit)
    assert {s.name for s in exporter.get_finished_spans()} == {"extract Person", "chat m"}
