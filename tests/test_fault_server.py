"""The scripted fault server itself, checked with the real openai client."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
from collections.abc import Iterator

import openai
import pytest

from schemagen.testing import (
    FaultServer,
    completion_text,
    content,
    context_length_error,
    disconnect,
    example_for_schema,
    hang,
    malformed_arguments,
    rate_limit,
    refusal,
    reset,
    respond,
    status,
    tool_call,
    tool_calls,
    truncated,
)

PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"]}
TOOLS = [{"type": "function", "function": {"name": "Person", "parameters": PERSON}}]
FORCE = {"type": "function", "function": {"name": "Person"}}
MESSAGES = [{"role": "user", "content": "Ada Lovelace is 36."}]


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


def client_for(srv: FaultServer, timeout: float = 5.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="test", max_retries=0, timeout=timeout)


def ask(client: openai.OpenAI, **kw: object):  # type: ignore[no-untyped-def]
    return client.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS, tool_choice=FORCE, **kw)


# -- answers -------------------------------------------------------------------------


def test_default_answer_is_a_valid_tool_call_for_the_forced_schema(server: FaultServer) -> None:
    reply = ask(client_for(server))
    call = reply.choices[0].message.tool_calls[0]
    assert call.function.name == "Person"
    assert json.loads(call.function.arguments) == {"name": "x", "age": 0}
    assert reply.choices[0].finish_reason == "tool_calls"
    assert reply.usage.prompt_tokens > 0 and reply.usage.total_tokens == (
        reply.usage.prompt_tokens + reply.usage.completion_tokens)


def test_tool_call_takes_its_name_from_tool_choice_and_usage_from_the_script(server: FaultServer) -> None:
    server.enqueue(
        tool_call({"name": "Ada", "age": 36},
                  usage={"prompt_tokens": 120, "completion_tokens": 9, "cached_tokens": 64}),
        tool_call(lambda call: {"name": call.body["messages"][0]["content"][:3], "age": call.index},
                  name="Other", finish_reason="stop"),
    )
    client = client_for(server)
    first, second = ask(client), ask(client)
    assert json.loads(first.choices[0].message.tool_calls[0].function.arguments) == {"name": "Ada", "age": 36}
    assert first.usage.prompt_tokens == 120 and first.usage.completion_tokens == 9
    assert first.usage.total_tokens == 129 and first.usage.prompt_tokens_details.cached_tokens == 64
    tool = second.choices[0].message.tool_calls[0]
    assert (tool.function.name, json.loads(tool.function.arguments)) == ("Other", {"name": "Ada", "age": 1})
    assert second.choices[0].finish_reason == "stop"


def test_malformed_truncated_refusal_content_and_parallel_calls(server: FaultServer) -> None:
    server.enqueue(
        malformed_arguments('{"name": "Ada", "age": 36'),
        truncated('{"name": "Ada", "a'),
        refusal("I can't help with that."),
        content("Ada is 36.", usage=False),
        content(None, finish_reason="content_filter"),
        tool_calls([("Person", {"name": "Ada", "age": 36}), ("Person", '{"name": "Bob"}')]),
    )
    client = client_for(server)
    bad, cut, no, text, filtered, many = (ask(client) for _ in range(6))
    assert bad.choices[0].message.tool_calls[0].function.arguments == '{"name": "Ada", "age": 36'
    assert cut.choices[0].finish_reason == "length"
    assert cut.choices[0].message.tool_calls[0].function.arguments == '{"name": "Ada", "a'
    assert no.choices[0].message.refusal == "I can't help with that."
    assert no.choices[0].message.content is None and not no.choices[0].message.tool_calls
    assert text.choices[0].message.content == "Ada is 36." and text.usage is None
    assert filtered.choices[0].finish_reason == "content_filter"
    assert filtered.choices[0].message.content is None
    assert [c.function.arguments for c in many.choices[0].message.tool_calls] == [
        '{"name": "Ada", "age": 36}', '{"name": "Bob"}']
    assert server.pending == 0


def test_completions_endpoint(server: FaultServer) -> None:
    server.enqueue(completion_text('{"name": "Ada"', finish_reason="length"), tool_call({"a": 1}))
    client = client_for(server)
    first = client.completions.create(model="m", prompt="Name: ", max_tokens=5)
    assert (first.choices[0].text, first.choices[0].finish_reason) == ('{"name": "Ada"', "length")
    assert first.usage.prompt_tokens > 0
    second = client.completions.create(model="m", prompt="x")
    assert (second.choices[0].text, second.choices[0].finish_reason) == ('{"a": 1}', "stop")
    assert [r.path for r in server.requests] == ["/v1/completions"] * 2


# -- HTTP faults ---------------------------------------------------------------------


def test_rate_limit_carries_retry_after(server: FaultServer) -> None:
    server.enqueue(rate_limit(retry_after=1), rate_limit(retry_after_ms=250))
    client = client_for(server)
    with pytest.raises(openai.RateLimitError) as first:
        ask(client)
    assert first.value.status_code == 429 and first.value.response.headers["retry-after"] == "1"
    assert first.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.RateLimitError) as second:
        ask(client)
    assert second.value.response.headers["retry-after-ms"] == "250"


def test_server_errors_and_context_length(server: FaultServer) -> None:
    server.enqueue(status(500), status(503, headers={"Retry-After": "2"}), context_length_error(),
                   context_length_error(style="llama"), status(502, body="<html>bad gateway</html>"))
    client = client_for(server)
    with pytest.raises(openai.InternalServerError) as e500:
        ask(client)
    assert e500.value.status_code == 500
    with pytest.raises(openai.InternalServerError) as e503:
        ask(client)
    assert e503.value.status_code == 503 and e503.value.response.headers["retry-after"] == "2"
    with pytest.raises(openai.BadRequestError) as too_long:
        ask(client)
    assert too_long.value.code == "context_length_exceeded"
    assert "maximum context length is 8192" in too_long.value.message
    with pytest.raises(openai.BadRequestError) as llama:
        ask(client)
    assert llama.value.body["type"] == "exceed_context_size_error"
    with pytest.raises(openai.InternalServerError) as html:
        ask(client)
    assert html.value.response.text == "<html>bad gateway</html>"


def test_reset_and_disconnect_are_connection_errors(server: FaultServer) -> None:
    server.enqueue(reset(), disconnect())
    client = client_for(server)
    with pytest.raises(openai.APIConnectionError) as was_reset:
        ask(client)
    assert not isinstance(was_reset.value, openai.APITimeoutError)
    assert "reset" in repr(was_reset.value.__cause__).lower()
    with pytest.raises(openai.APIConnectionError) as closed:
        ask(client)
    assert not isinstance(closed.value, openai.APITimeoutError)
    assert ask(client).choices[0].message.tool_calls  # the next request, on a new connection, works


def test_hang_times_out_without_blocking_the_server_or_its_shutdown() -> None:
    srv = FaultServer().start()
    srv.enqueue(hang(30))
    client = client_for(srv, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        ask(client)
    assert 0.25 < time.monotonic() - started < 2
    srv.enqueue(hang(30))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        hanging = pool.submit(ask, client_for(srv, timeout=10))
        srv.wait_for_requests(2)
        assert ask(client_for(srv)).choices[0].message.tool_calls  # answered while the other hangs
        assert not hanging.done()
        started = time.monotonic()
        srv.stop()  # drops the hanging connection
        with pytest.raises(openai.APIConnectionError):
            hanging.result(timeout=2)
    assert time.monotonic() - started < 1
    assert [r.status for r in srv.requests] == [None, None, 200]


# -- scripting and recording ---------------------------------------------------------


def test_recording_keeps_headers_body_and_behaviour(server: FaultServer) -> None:
    server.enqueue(rate_limit(retry_after=0))
    client = client_for(server)
    with pytest.raises(openai.RateLimitError):
        ask(client, max_tokens=64)
    ask(client)
    first, second = server.requests
    assert first.headers["authorization"] == "Bearer test"
    assert "Bearer test" not in repr(first)
    assert first.body["max_tokens"] == 64 and first.body["tool_choice"] == FORCE
    assert (first.index, first.status, second.index, second.status) == (0, 429, 1, 200)
    assert first.behaviour.code == 429 and first.path == "/v1/chat/completions"
    assert first.time <= first.finished <= second.time


def test_faults_callable_default_and_queue_precedence() -> None:
    def faults(index: int):  # type: ignore[no-untyped-def]
        return rate_limit(retry_after=0) if index in (1, 2) else None

    with FaultServer(default=respond(lambda call: content(f"default {call.index}")), faults=faults) as srv:
        srv.enqueue(content("queued"))
        client = client_for(srv)
        outcomes = []
        for _ in range(5):
            try:
                outcomes.append(ask(client).choices[0].message.content)
            except openai.RateLimitError:
                outcomes.append(429)
        assert outcomes == ["queued", 429, 429, "default 3", "default 4"]


def test_a_failing_callable_is_reported_at_stop() -> None:
    srv = FaultServer(default=lambda call: 1 / 0).start()
    with pytest.raises(openai.InternalServerError):
        ask(client_for(srv))
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        srv.stop()


async def test_latency_is_concurrent() -> None:
    with FaultServer(latency=0.05) as srv:
        client = openai.AsyncOpenAI(base_url=srv.base_url, api_key="test", max_retries=0, timeout=10)
        started = time.monotonic()
        replies = await asyncio.gather(*(
            client.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS, tool_choice=FORCE)
            for _ in range(64)))
        elapsed = time.monotonic() - started
        await client.close()
    assert len(replies) == 64 and all(r.choices[0].message.tool_calls for r in replies)
    assert 0.05 <= elapsed < 1.0, elapsed  # serialised it would take 64 x 50 ms = 3.2 s
    assert len({r.index for r in srv.requests}) == 64


# -- Files and Batches API -----------------------------------------------------------


def _batch_file(n: int, url: str = "/v1/chat/completions") -> bytes:
    lines = [{"custom_id": f"item-{i}", "method": "POST", "url": url,
              "body": {"model": "m", "messages": MESSAGES, "tools": TOOLS, "tool_choice": FORCE}}
             for i in range(n)]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def test_batch_flow_with_partial_failures() -> None:
    with FaultServer(batch_polls=3) as srv:
        client = client_for(srv)
        uploaded = client.files.create(file=("in.jsonl", _batch_file(4)), purpose="batch")
        assert (uploaded.purpose, uploaded.filename) == ("batch", "in.jsonl")
        assert uploaded.bytes == len(_batch_file(4))
        assert client.files.content(uploaded.id).content == _batch_file(4)
        srv.enqueue(tool_call({"name": "Ada", "age": 36}), malformed_arguments('{"name": '),
                    status(500), reset())
        batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                      completion_window="24h")
        assert batch.status == "validating" and batch.object == "batch"
        seen = [client.batches.retrieve(batch.id).status for _ in range(3)]
        assert seen == ["in_progress", "finalizing", "completed"]
        done = client.batches.retrieve(batch.id)
        assert done.status == "completed" and done.completed_at
        counts = done.request_counts
        assert (counts.total, counts.completed, counts.failed) == (4, 2, 2)
        assert done.usage.input_tokens > 0
        outputs = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
        errors = [json.loads(x) for x in client.files.content(done.error_file_id).text.splitlines()]
    assert [o["custom_id"] for o in outputs] == ["item-0", "item-1"]
    calls = [o["response"]["body"]["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
             for o in outputs]
    assert calls == ['{"name": "Ada", "age": 36}', '{"name": ']
    assert outputs[0]["response"]["status_code"] == 200 and outputs[0]["error"] is None
    assert [e["custom_id"] for e in errors] == ["item-2", "item-3"]
    assert errors[0]["response"]["status_code"] == 500
    assert errors[1]["response"] is None and errors[1]["error"]["code"] == "server_error"
    items = [r for r in srv.requests if r.batch_id == batch.id]
    assert [r.custom_id for r in items] == ["item-0", "item-1", "item-2", "item-3"]
    assert [r.index for r in items] == [0, 1, 2, 3]


def test_batch_cancel_validation_failure_and_expiry() -> None:
    with FaultServer(batch_polls=2) as srv:
        client = client_for(srv)
        good = client.files.create(file=("in.jsonl", _batch_file(2)), purpose="batch").id
        batch = client.batches.create(input_file_id=good, endpoint="/v1/chat/completions",
                                      completion_window="24h")
        assert client.batches.cancel(batch.id).status == "cancelling"
        assert client.batches.retrieve(batch.id).status == "cancelled"
        with pytest.raises(openai.ConflictError):
            client.batches.cancel(batch.id)

        wrong = client.files.create(file=("bad.jsonl", _batch_file(2, url="/v1/completions")),
                                    purpose="batch")
        failed = client.batches.create(input_file_id=wrong.id, endpoint="/v1/chat/completions",
                                       completion_window="24h")
        failed = client.batches.retrieve(failed.id)
        assert failed.status == "failed" and failed.errors.data[0].code == "mismatched_url"
        with pytest.raises(openai.NotFoundError):
            client.batches.create(input_file_id="file-missing", endpoint="/v1/chat/completions",
                                  completion_window="24h")

        srv.batch_final = "expired"
        expired = client.batches.create(input_file_id=good, endpoint="/v1/chat/completions",
                                        completion_window="24h")
        assert [client.batches.retrieve(expired.id).status for _ in range(2)] == ["in_progress", "expired"]
        expired = client.batches.retrieve(expired.id)
        assert expired.output_file_id is None and expired.request_counts.failed == 2
        lines = client.files.content(expired.error_file_id).text.splitlines()
        assert {json.loads(x)["error"]["code"] for x in lines} == {"batch_expired"}
        assert srv.model_requests == []  # nothing ran


# -- schema instances ----------------------------------------------------------------


def test_example_for_schema() -> None:
    schema = {
        "$defs": {"Tag": {"type": "string", "enum": ["a", "b"]}},
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}, "minItems": 2},
            "when": {"type": "string", "format": "date"},
            "score": {"type": "number", "exclusiveMinimum": 1},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 5}]},
            "flag": {"type": "boolean"},
            "opt": {"type": "string"},
        },
        "required": ["tags", "when", "score", "maybe", "flag"],
    }
    assert example_for_schema(schema) == {"tags": ["a", "a"], "when": "2024-01-01", "score": 1.5,
                                          "maybe": 5, "flag": False}
