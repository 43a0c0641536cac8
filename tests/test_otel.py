"""OpenTelemetry: the span tree and its attributes, read back from the SDK's in-memory exporter."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

import schemagen
from tests.fault_server import FaultServer, malformed_arguments, rate_limit, tool_call
from tests.llama_server import LlamaServer

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import StatusCode  # noqa: E402

KEY = "sk-otel-secret-key-0123456789"
FAST = schemagen.RetryPolicy(max_retries=2, initial_wait=0.01, max_wait=0.02)
GOOD = {"name": "Ada", "age": 36}
TEXT = "Ada is 36. Her password is hunter2."


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def telemetry(exporter: InMemorySpanExporter, **kw: object) -> schemagen.Telemetry:
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return schemagen.Telemetry(tracer_provider=provider, **kw)  # type: ignore[arg-type]


def make(server: FaultServer, exporter: InMemorySpanExporter, **kw: object) -> schemagen.Client:
    tel = kw.pop("telemetry", None) or telemetry(exporter)
    return schemagen.Client(base_url=server.base_url, api_key=KEY, model="m", retry_policy=FAST,
                            telemetry=tel, **kw)  # type: ignore[arg-type]


def all_text(spans: object) -> str:
    out = []
    for span in spans:  # type: ignore[attr-defined]
        out.append(span.name)
        out.append(json.dumps(dict(span.attributes), default=str))
        out.append(str(span.status.description))
        out += [json.dumps(dict(e.attributes), default=str) for e in span.events]
    return "\n".join(out)


def test_extraction_span_with_one_child_per_attempt(
    server: FaultServer, exporter: InMemorySpanExporter
) -> None:
    server.enqueue(rate_limit(retry_after=0), malformed_arguments('{"name": "Ada", "age": "old"}'),
                   tool_call(GOOD))
    result = make(server, exporter, temperature=0.5).extract_result(Person, TEXT)
    assert result.value == Person(**GOOD)
    spans = exporter.get_finished_spans()
    [root] = [s for s in spans if s.parent is None]
    children = sorted((s for s in spans if s.parent is not None), key=lambda s: s.start_time or 0)
    assert root.name == "extract Person"
    assert [c.name for c in children] == ["chat m", "chat m"]
    assert all(c.parent is not None and c.parent.span_id == root.context.span_id for c in children)
    assert all(c.context.trace_id == root.context.trace_id for c in children)

    a = root.attributes
    assert a["gen_ai.system"] == "openai" and a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "m"
    assert a["gen_ai.usage.input_tokens"] == result.usage.prompt_tokens > 0
    assert a["gen_ai.usage.output_tokens"] == result.usage.completion_tokens > 0
    assert a["schemagen.attempts"] == 2 and a["schemagen.outcome"] == "ok" and a["schemagen.mode"] == "tools"
    assert list(a["gen_ai.response.finish_reasons"]) == ["tool_calls", "tool_calls"]
    assert root.status.status_code == StatusCode.UNSET

    first, second = children
    assert first.attributes["schemagen.attempt"] == 1 and second.attributes["schemagen.attempt"] == 2
    assert first.attributes["schemagen.outcome"] == "invalid"
    assert first.status.status_code == StatusCode.ERROR
    assert first.attributes["schemagen.transport_retries"] == 1
    [retry] = first.events
    assert retry.name == "schemagen.transport_retry" and retry.attributes["error.type"] == "RateLimitError"
    assert second.attributes["schemagen.reask_reason"] == "invalid"  # content off: no error text
    assert second.attributes["schemagen.outcome"] == "ok"
    assert first.attributes["gen_ai.request.temperature"] == 0.5
    assert "schemagen.bound" in first.attributes and "max_tokens" in str(first.attributes["schemagen.bound"])
    assert first.attributes["gen_ai.request.max_tokens"] == result.trace.attempts[0].request.max_tokens
    assert first.attributes["gen_ai.usage.input_tokens"] > 0

    text = all_text(spans)
    assert "hunter2" not in text and "Ada" not in text  # content is off by default
    assert KEY not in text


def test_content_is_opt_in_and_redacted(server: FaultServer, exporter: InMemorySpanExporter) -> None:
    schemagen.redact.register_secret(KEY)
    leaky = f"Ada is 36. key: {KEY}"
    make(server, exporter, telemetry=telemetry(exporter, content=True)).extract(Person, leaky)
    [root] = [s for s in exporter.get_finished_spans() if s.parent is None]
    assert "Ada is 36" in root.attributes["gen_ai.input.messages"]
    assert "schemagen.output" in root.attributes
    assert KEY not in all_text(exporter.get_finished_spans())
    assert "[REDACTED]" in root.attributes["gen_ai.input.messages"]


def test_content_switch_from_the_environment(server: FaultServer, exporter: InMemorySpanExporter,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    make(server, exporter).extract(Person, TEXT)
    [root] = [s for s in exporter.get_finished_spans() if s.parent is None]
    assert "hunter2" in root.attributes["gen_ai.input.messages"]


def test_failed_extraction_marks_the_span_without_leaking_content(
    server: FaultServer, exporter: InMemorySpanExporter
) -> None:
    server.enqueue(*[malformed_arguments('{"name": "hunter2"}')] * 2)
    with pytest.raises(schemagen.ExtractionError):
        make(server, exporter, retries=1).extract(Person, TEXT)
    spans = exporter.get_finished_spans()
    [root] = [s for s in spans if s.parent is None]
    assert root.status.status_code == StatusCode.ERROR
    assert root.status.description == "ExtractionError"
    assert root.attributes["error.type"] == "ExtractionError"
    assert root.attributes["schemagen.outcome"] == "invalid"
    assert len(spans) == 3
    assert "hunter2" not in all_text(spans)


async def test_async_twin_and_batch_parent_span(server: FaultServer, exporter: InMemorySpanExporter) -> None:
    sg = make(server, exporter)
    await sg.aextract(Person, TEXT)
    [single] = exporter.get_finished_spans()[-1:]
    assert single.name == "extract Person" and single.parent is None
    exporter.clear()
    results = [r async for r in schemagen.aextract_many(Person, ["Ada is 36.", "Bob is 40.", "Cy is 1."],
                                                         client=sg, concurrency=2)]
    assert len(results) == 3
    spans = exporter.get_finished_spans()
    [batch] = [s for s in spans if s.parent is None]
    assert batch.name == "extract_many Person"
    items = [s for s in spans if s.name == "extract Person"]
    assert len(items) == 3
    assert all(s.parent is not None and s.parent.span_id == batch.context.span_id for s in items)
    assert batch.attributes["schemagen.batch.succeeded"] == 3
    assert batch.attributes["gen_ai.usage.input_tokens"] > 0
    attempts = [s for s in spans if s.name == "chat m"]
    item_ids = {s.context.span_id for s in items}
    assert len(attempts) == 3 and all(s.parent is not None and s.parent.span_id in item_ids for s in attempts)


def test_no_sdk_configured_means_no_watch(server: FaultServer) -> None:
    # The API alone (global no-op provider): spans don't record, so the drivers get no watch.
    sg = schemagen.Client(base_url=server.base_url, api_key=KEY, model="m")
    assert len(sg.observers) == 2  # hooks + otel
    run = sg.start(Person, TEXT)
    assert schemagen.observe.watch_run(sg.observers, run) is None
    assert sg.extract(Person, TEXT).name


def test_telemetry_off(server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(schemagen.Client(base_url=server.base_url, model="m", telemetry=False).observers) == 1
    monkeypatch.setenv("SCHEMAGEN_OTEL", "0")
    assert len(schemagen.Client(base_url=server.base_url, model="m").observers) == 1


@pytest.mark.llama
def test_real_server_span_values(llama_server: LlamaServer, exporter: InMemorySpanExporter) -> None:
    sg = schemagen.Client(base_url=llama_server.base_url, api_key="x", model="smollm2",
                          telemetry=telemetry(exporter), temperature=0.0, seed=7, max_tokens=200)
    result = sg.extract_result(Person, "Ada Lovelace is 36 years old.")
    spans = exporter.get_finished_spans()
    [root] = [s for s in spans if s.parent is None]
    attempt = [s for s in spans if s.parent is not None][-1]
    assert root.attributes["gen_ai.usage.input_tokens"] == result.usage.prompt_tokens > 10
    assert attempt.attributes["gen_ai.response.model"]  # llama.cpp names the model it served
    assert attempt.attributes["gen_ai.response.finish_reasons"][0] in ("tool_calls", "stop")
    assert root.attributes["schemagen.attempts"] == result.attempts


def test_without_the_package_nothing_is_imported_and_explicit_telemetry_says_what_to_install(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    for name in [n for n in sys.modules if n == "opentelemetry" or n.startswith("opentelemetry.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # import opentelemetry now raises ImportError
    sg = schemagen.Client(base_url=server.base_url, api_key=KEY, model="m")
    assert len(sg.observers) == 1  # hooks only: the drivers get no watch, so no cost
    assert sg.extract(Person, TEXT).name
    with pytest.raises(schemagen.MissingDependencyError, match=r"schemagen\[otel\]"):
        schemagen.Client(base_url=server.base_url, model="m", telemetry=schemagen.Telemetry(content=True))


def test_new_names_are_exported() -> None:
    assert {"Hooks", "HookEvent", "Telemetry"} <= set(schemagen.__all__)
    assert schemagen.__version__ == "0.4.0"
