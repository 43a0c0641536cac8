"""A reask reaches the real llama.cpp server (llama-cpp-python 0.3.x) and is answered.

That server rejects an assistant turn whose ``content`` is null with HTTP 500, so a reask built
with ``content: None`` never got an answer there; this pins the fix end to end.
"""

from __future__ import annotations

import pytest
from pydantic import BaseModel, field_validator

from schemagen import Client
from tests.llama_server import LlamaServer

pytestmark = pytest.mark.llama


class Person(BaseModel):
    name: str
    age: int

    @field_validator("age")
    @classmethod
    def _first_answer_refused(cls, age: int) -> int:
        # Refuse the first answer whatever it is, so the engine must reask once.
        if not SEEN:
            SEEN.append(age)
            raise ValueError("state the age again")
        return age


SEEN: list[int] = []


def test_reask_is_answered_by_the_real_server(llama_server: LlamaServer) -> None:
    sg = Client(base_url=llama_server.base_url, api_key="sk-local", model="smollm2", mode="tools",
                retries=1, max_retries=0, temperature=0.0, seed=7, max_tokens=100)
    SEEN.clear()
    result = sg.extract_result(Person, "Bob is 42 years old.")
    assert result.attempts == 2 and SEEN  # the first answer was refused, the reask answered
    reask = result.trace.attempts[1].request.body["messages"]
    assert reask[-2]["role"] == "assistant" and reask[-2]["content"] == ""
    # SmolLM2-135M keeps the number through the reask (it has dropped the name there: model, not wire).
    assert result.value.age == 42
