"""Bring-your-own-client fidelity: what reaches the wire on the sync, async and batch paths.

The scripted loopback server records every request's path, query, headers and body, so
each test asserts what the server received, for OpenAI, AsyncOpenAI, AzureOpenAI and
AsyncAzureOpenAI alike.
"""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import openai
import pytest
from pydantic import BaseModel

import schemagen
from schemagen import APITimeoutError, ConfigurationError, RetryPolicy, ServerError
from schemagen.backends.openai_compat import use_max_completion_tokens, wants_max_completion_tokens
from tests.fault_server import FaultServer, RequestRecord, hang, status, tool_call

KEY = "sk-byoc-0123456789abcdef"
HEADER_SECRET = "hdr-Secret-0123456789"
FAST = RetryPolicy(max_retries=2, initial_wait=0.01, max_wait=0.05, jitter=0.0)


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


def _settings(kind: str, server: FaultServer) -> dict[str, Any]:
    common: dict[str, Any] = {"default_headers": {"x-team": "blue", "x-api-key": HEADER_SECRET},
                              "default_query": {"tenant": "acme"}, "timeout": 7.0}
    if "Azure" in kind:
        return {**common, "api_key": KEY, "azure_endpoint": server.url, "azure_deployment": "dep1",
                "api_version": "2024-10-21"}
    return {**common, "api_key": KEY, "base_url": server.base_url, "organization": "org-1",
            "project": "proj-1"}


KINDS: dict[str, Callable[..., Any]] = {
    "OpenAI": openai.OpenAI, "AsyncOpenAI": openai.AsyncOpenAI,
    "AzureOpenAI": openai.AzureOpenAI, "AsyncAzureOpenAI": openai.AsyncAzureOpenAI,
}


def _assert_wire(record: RequestRecord, kind: str) -> None:
    h = record.headers
    assert h["x-team"] == "blue" and h["x-api-key"] == HEADER_SECRET
    assert record.query["tenant"] == "acme"
    assert "x-team" not in (record.body or {}) and "default_headers" not in (record.body or {})
    if "Azure" in kind:
        assert record.path == "/openai/deployments/dep1/chat/completions"
        assert record.query["api-version"] == "2024-10-21"
        assert h["api-key"] == KEY
    else:
        assert record.path == "/v1/chat/completions"
        assert h["authorization"] == f"Bearer {KEY}"
        assert h["openai-organization"] == "org-1" and h["openai-project"] == "proj-1"


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_path_sends_the_callers_settings(server: FaultServer, kind: str) -> None:
    oa = KINDS[kind](max_retries=0, **_settings(kind, server))
    sg = schemagen.Client(client=oa, model="m", retry_policy=FAST)
    server.enqueue(tool_call({"name": "Ada", "age": 36}), tool_call({"name": "Bob", "age": 7}))
    assert sg.extract(Person, "Ada is 36.") == Person(name="Ada", age=36)

    async def async_paths() -> list[Any]:  # one loop: a caller's AsyncOpenAI is bound to it
        assert await sg.aextract(Person, "Bob is 7.") == Person(name="Bob", age=7)
        out = [r async for r in schemagen.aextract_many(Person, ["a", "b"], client=sg, concurrency=2)]
        if kind.startswith("Async"):
            assert sg.backend._client.timeout == 7.0  # type: ignore[attr-defined]  # the derived twin
            sg.close()  # closes only what schemagen made: the caller's client stays open
            assert not oa._client.is_closed
            await oa.close()
        return out

    assert all(r.ok for r in asyncio.run(async_paths()))
    if not kind.startswith("Async"):  # sync extract_many: a private loop, a derived AsyncOpenAI
        assert all(r.ok for r in schemagen.extract_many(Person, ["c"], client=sg))
    assert len(server.model_requests) == (4 if kind.startswith("Async") else 5)
    for record in server.model_requests:
        _assert_wire(record, kind)
    backend: Any = sg.backend
    if not kind.startswith("Async"):
        for made in (backend._client, backend._async_client):
            assert made.timeout == 7.0 and made.max_retries in (0, oa.max_retries)
        sg.close()
        assert not oa._client.is_closed
        assert oa.models.list().data[0].id == "fault-model"  # still works
        oa.close()


def test_module_level_api_with_an_async_azure_client(server: FaultServer) -> None:
    oa = openai.AsyncAzureOpenAI(max_retries=0, **_settings("AsyncAzureOpenAI", server))
    server.enqueue(tool_call({"name": "Ada", "age": 36}))
    assert schemagen.extract(Person, "Ada is 36.", client=oa, model="m") == Person(name="Ada", age=36)
    _assert_wire(server.model_requests[0], "AsyncAzureOpenAI")


def test_custom_http_client_cannot_be_carried_over(server: FaultServer) -> None:
    mine = httpx2.Client(headers={"x-proxy": "1"})
    oa = openai.OpenAI(api_key=KEY, base_url=server.base_url, http_client=mine)
    sg = schemagen.Client(client=oa, model="m")
    server.enqueue(tool_call({"name": "Ada", "age": 36}))
    assert sg.extract(Person, "x").name == "Ada"  # the sync path uses the caller's client as is
    with pytest.raises(ConfigurationError, match=r"async_client=.*") as info:
        asyncio.run(sg.aextract(Person, "x"))
    assert "http_client" in str(info.value) and "client=" in str(info.value)
    # Both clients given: nothing to derive, both used as they are.
    aoa = openai.AsyncOpenAI(api_key=KEY, base_url=server.base_url, http_client=httpx2.AsyncClient(
        headers={"x-proxy": "2"}))
    both = schemagen.Client(client=oa, async_client=aoa, model="m")
    server.enqueue(tool_call({"name": "Bob", "age": 7}))

    async def use_and_close() -> Person:
        try:
            return await both.aextract(Person, "x")
        finally:
            await aoa.close()

    assert asyncio.run(use_and_close()).name == "Bob"
    assert server.model_requests[-1].headers["x-proxy"] == "2"
    both.close()
    assert not mine.is_closed
    mine.close()


def test_connection_keywords_configure_the_client_not_the_body(server: FaultServer) -> None:
    sg = schemagen.Client(base_url=server.base_url, api_key=KEY, model="m", organization="org-9",
                          default_headers={"x-team": "red"}, default_query={"tenant": "t"}, retry_policy=FAST)
    server.enqueue(tool_call({"name": "Ada", "age": 36}), tool_call({"name": "Ada", "age": 36}))
    sg.extract(Person, "x", extra_headers={"x-call": "1"}, extra_query={"trace": "on"},
               extra_body={"top_k": 5}, timeout=3.0, temperature=0)
    asyncio.run(sg.aextract(Person, "x"))
    first, second = server.model_requests
    for record in (first, second):
        assert record.headers["x-team"] == "red" and record.headers["openai-organization"] == "org-9"
        assert record.query["tenant"] == "t"
    assert first.headers["x-call"] == "1" and first.query["trace"] == "on"
    assert first.body["top_k"] == 5 and first.body["temperature"] == 0
    for name in ("extra_headers", "extra_query", "extra_body", "timeout", "organization", "default_headers"):
        assert name not in first.body
    assert "x-call" not in second.headers and "top_k" not in second.body  # per call only
    server.enqueue(hang(5.0))
    started = time.monotonic()
    with pytest.raises(APITimeoutError):
        sg.extract(Person, "x", timeout=0.3, max_retries=0)
    assert time.monotonic() - started < 3.0  # the per-call timeout, not the client's 120 s


def test_connection_keywords_with_a_client_are_refused() -> None:
    oa = openai.OpenAI(api_key=KEY, base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ConfigurationError, match="settings of your openai client"):
        schemagen.Client(client=oa, model="m", default_headers={"x": "y"})
    with pytest.raises(ConfigurationError, match="http_client"):
        schemagen.Client(base_url="http://127.0.0.1:9/v1", model="m", http_client=object())
    sg = schemagen.Client(client=oa, model="m")
    with pytest.raises(ConfigurationError, match=r"not one call.*extra_headers="):
        sg.extract(Person, "x", default_headers={"x": "y"})  # would have gone into the body
    oa.close()


def test_the_callers_max_retries_is_the_retry_count_counted_once(server: FaultServer) -> None:
    server.default = status(500)
    oa = openai.OpenAI(api_key=KEY, base_url=server.base_url, max_retries=1)
    sg = schemagen.Client(client=oa, model="m", retry_policy=None)
    sg.policy = RetryPolicy(max_retries=sg.policy.max_retries, initial_wait=0.01, jitter=0.0)
    assert sg.policy.max_retries == 1
    with pytest.raises(ServerError):
        sg.extract(Person, "x")
    assert len(server.model_requests) == 2  # 1 + 1 retry; the SDK's own retries stay off
    assert schemagen.Client(client=oa, model="m", max_retries=4).policy.max_retries == 4
    oa.close()
    assert schemagen.Client(base_url=server.base_url, model="m").policy.max_retries == 3


def test_deprecated_retry_words_warn_and_still_work() -> None:
    with pytest.warns(DeprecationWarning, match="max_retries"):
        sg = schemagen.Client(base_url="http://127.0.0.1:9/v1", model="m", transport_retries=5)
    assert sg.policy.max_retries == 5
    with pytest.warns(DeprecationWarning, match="retries="):
        sg = schemagen.Client(base_url="http://127.0.0.1:9/v1", model="m", reasks=4)
    assert sg.settings.reasks == 4


def test_one_async_client_per_loop_is_not_kept_forever(server: FaultServer) -> None:
    sg = schemagen.Client(base_url=server.base_url, api_key=KEY, model="m", retry_policy=FAST)
    backend: Any = sg.backend
    made = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Event loop is closed" noise from a dropped pool
        for _ in range(5):
            asyncio.run(sg.aextract(Person, "x"))
            made.append(backend._async_client)
        asyncio.run(sg.aextract(Person, "x"))
        gc.collect()
    assert len({id(c) for c in made}) == 5
    assert all(c._client.is_closed for c in made)  # each earlier loop's pool is closed, not leaked
    assert not hasattr(backend, "_stale_async")
    sg.close()


def test_non_json_200_is_a_retried_server_error(server: FaultServer) -> None:
    server.enqueue(status(200, "<html>proxy login</html>"), tool_call({"name": "Ada", "age": 36}))
    result = schemagen.Client(base_url=server.base_url, api_key=KEY, model="m",
                              retry_policy=FAST).extract_result(Person, "x")
    assert result.value.name == "Ada"
    assert "not a JSON object" in result.trace.attempts[0].retries[0].error
    server.enqueue(*[status(200, "<html/>")] * 3)
    with pytest.raises(ServerError, match="not a JSON object"):
        sg = schemagen.Client(base_url=server.base_url, api_key=KEY, model="m", retry_policy=FAST)
        sg.extract(Person, "x")


OPENAI_400 = {"error": {"message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
                        "Use 'max_completion_tokens' instead.", "type": "invalid_request_error",
                        "param": "max_tokens", "code": "unsupported_parameter"}}


def test_max_completion_tokens_is_learnt_from_the_servers_400(server: FaultServer) -> None:
    server.enqueue(status(400, OPENAI_400), tool_call({"name": "Ada", "age": 36}),
                   tool_call({"name": "Bob", "age": 7}))
    sg = schemagen.Client(base_url=server.base_url, api_key=KEY, model="ft:o4-mini:acme::x1", max_tokens=300)
    result = sg.extract_result(Person, "x")
    assert result.value.name == "Ada"
    refused, resent = server.model_requests
    assert refused.body["max_tokens"] == 300
    assert "max_tokens" not in resent.body and resent.body["max_completion_tokens"] == 300
    assert any("max_completion_tokens" in n for n in result.trace.attempts[0].notes)
    sg.extract(Person, "y")  # the next call sends it up front
    assert server.model_requests[2].body["max_completion_tokens"] == 300
    assert "max_tokens" not in server.model_requests[2].body


def test_max_completion_tokens_helpers_are_pure() -> None:
    body = {"model": "m", "max_tokens": 5}
    assert wants_max_completion_tokens(OPENAI_400["error"]["message"], body)
    assert not wants_max_completion_tokens("context length exceeded", body)
    assert not wants_max_completion_tokens(OPENAI_400["error"]["message"], {"model": "m"})
    assert use_max_completion_tokens(body) == {"model": "m", "max_completion_tokens": 5}


def test_batch_api_calls_carry_the_callers_settings(server: FaultServer, tmp_path: Any) -> None:
    server.batch_polls = 1
    oa = openai.OpenAI(max_retries=0, **_settings("OpenAI", server))
    sg = schemagen.Client(client=oa, model="m", retry_policy=FAST)
    results = schemagen.extract_many(Person, ["Ada is 36.", "Bob is 7."], client=sg, mode="batch_api",
                                     poll_interval=0.01, checkpoint=tmp_path / "out.jsonl")
    assert all(r.ok for r in results)
    api_calls = [r for r in server.requests if "/files" in r.path or "/batches" in r.path]
    assert {r.path.split("/")[2] for r in api_calls} == {"files", "batches"}
    for record in api_calls:  # upload, create, poll, download: all with the caller's settings
        assert record.headers["x-team"] == "blue" and record.headers["authorization"] == f"Bearer {KEY}"
        assert record.headers["openai-organization"] == "org-1" and record.query["tenant"] == "acme"


def test_key_and_token_providers_are_carried_to_the_async_twin(server: FaultServer) -> None:
    calls: list[str] = []

    def token() -> str:
        calls.append("token")
        return "aad-token-0123456789"

    azure = openai.AzureOpenAI(azure_endpoint=server.url, azure_deployment="dep1", api_version="2024-10-21",
                               azure_ad_token_provider=token, max_retries=0)
    plain = openai.OpenAI(api_key=lambda: "sk-provided-0123456789", base_url=server.base_url, max_retries=0)
    server.enqueue(tool_call({"name": "Ada", "age": 36}), tool_call({"name": "Bob", "age": 7}))
    assert asyncio.run(schemagen.Client(client=azure, model="m").aextract(Person, "x")).name == "Ada"
    assert asyncio.run(schemagen.Client(client=plain, model="m").aextract(Person, "x")).name == "Bob"
    first, second = server.model_requests
    assert first.headers["authorization"] == "Bearer aad-token-0123456789" and calls
    assert first.path == "/openai/deployments/dep1/chat/completions"
    assert second.headers["authorization"] == "Bearer sk-provided-0123456789"
    azure.close()
    plain.close()


def test_batch_api_through_azure_uses_its_paths_and_key(server: FaultServer, tmp_path: Any) -> None:
    server.batch_polls = 1
    oa = openai.AzureOpenAI(max_retries=0, **_settings("AzureOpenAI", server))
    results = schemagen.extract_many(Person, ["Ada is 36.", "Bob is 7."], client=oa, model="dep1",
                                     mode="batch_api", poll_interval=0.01, checkpoint=tmp_path / "o.jsonl")
    assert all(r.ok for r in results)
    [batch] = server.batches.values()
    assert batch["endpoint"] == "/v1/chat/completions"  # the server's normal form of "/chat/completions"
    created = next(r for r in server.requests if r.method == "POST" and r.path.endswith("/batches"))
    assert created.body["endpoint"] == "/chat/completions"
    upload = next(r for r in server.requests if r.path.endswith("/files") and r.method == "POST")
    assert b'"url": "/chat/completions"' in upload.raw_body
    for record in server.requests:
        if record.batch_id is None:  # HTTP requests, not the job's lines
            assert record.headers["api-key"] == KEY and record.query["api-version"] == "2024-10-21"
    oa.close()
