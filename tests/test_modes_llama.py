"""Modes and mode="auto" end to end against the real llama.cpp server (llama-cpp-python 0.3.x,
SmolLM2-135M-Instruct). That server is itself a ladder case: it answers
``response_format={"type": "json_schema"}`` with HTTP 500 (a validation error naming
``response_format``), takes ``{"type": "json_object", "schema": ...}`` and constrains to the
schema, and honours a named ``tool_choice``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from schemagen import Client
from schemagen.engine.negotiate import Learned
from schemagen.errors import ModeUnsupportedError
from schemagen.mode_cache import MEMORY
from tests.llama_server import LlamaServer

pytestmark = pytest.mark.llama
SAMPLING = {"temperature": 0.0, "seed": 7, "max_tokens": 100}


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture(autouse=True)
def _fresh_memory() -> Iterator[None]:
    MEMORY.forget()
    yield
    MEMORY.forget()


def client(server: LlamaServer, **kw: object) -> Client:
    return Client(base_url=server.base_url, api_key="sk-local", model="smollm2", retries=1,
                  max_retries=0, **SAMPLING, **kw)  # type: ignore[arg-type]


def test_auto_keeps_tools_where_they_work(llama_server: LlamaServer) -> None:
    result = client(llama_server).extract_result(Person, "Bob is 42 years old.")
    assert result.value == Person(name="Bob", age=42)
    assert result.trace.mode == "tools" and not result.trace.steps and result.attempts == 1


def test_json_object_with_schema_extension(llama_server: LlamaServer) -> None:
    result = client(llama_server, mode="json_object").extract_result(Person, "Name: Ada. Age: 36.")
    assert result.value == Person(name="Ada", age=36)
    sent = result.trace.attempts[0].request.body["response_format"]
    assert sent["type"] == "json_object" and sent["schema"]["required"] == ["name", "age"]


def test_prompt_mode(llama_server: LlamaServer) -> None:
    # No constraint at all: a 135M model gets the number but not the name from this text.
    result = client(llama_server, mode="prompt").extract_result(Person, "Bob is 42 years old.")
    assert result.value.age == 42
    assert "response_format" not in result.trace.attempts[0].request.body


def test_explicit_json_schema_is_a_typed_error(llama_server: LlamaServer) -> None:
    with pytest.raises(ModeUnsupportedError) as info:
        client(llama_server, mode="json_schema").extract(Person, "Name: Ada. Age: 36.")
    err = info.value
    assert err.mode == "json_schema" and err.feature == "response_format" and err.status_code == 500
    assert "json_object" in err.said  # the server's words: "Input should be 'text' or 'json_object'"
    assert err.trace is not None and len(err.trace.attempts) == 1  # a capability answer: not retried


def test_auto_steps_down_on_the_real_500(llama_server: LlamaServer) -> None:
    """Started at json_schema (as if learned so), auto reads the 500 as a capability answer."""
    sg = client(llama_server)
    MEMORY.put(sg.endpoint_key, Learned(mode="json_schema"))
    result = sg.extract_result(Person, "Name: Ada. Age: 36.")
    assert result.value == Person(name="Ada", age=36)
    assert [(s["from"], s["to"], s["refused"]) for s in result.trace.steps] == [
        ("json_schema", "json_object", "response_format")]
    assert sg.learned() is not None and sg.learned().mode == "json_object"
