"""Token counts: tiktoken when an encoding loads, a warned estimate when none does."""

from __future__ import annotations

import warnings

import pytest
from pydantic import BaseModel

import schemagen
from schemagen import tokens


class Person(BaseModel):
    name: str
    age: int


def test_offline_encoding_is_used_when_the_download_fails() -> None:
    counter = tokens.counter_for("gpt-4o")  # o200k_base can't download here; cl100k ships offline
    assert counter.exact
    assert counter("hello world") == 2


def test_no_encoding_at_all_degrades_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "_load_tiktoken", lambda name: None)
    tokens.counter_for.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="No tiktoken encoding could be loaded"):
            counter = tokens.counter_for("some-model")
        assert not counter.exact
        assert counter("x" * 40) == 10
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert tokens.counter_for("some-model") is counter  # cached: no second warning
    finally:
        tokens.counter_for.cache_clear()


def test_count_tokens_includes_the_tool_definition() -> None:
    text = "Ada Lovelace is 36."
    with_tool = schemagen.count_tokens(Person, text, model="gpt-4o")
    spec = schemagen.build_tool(Person, strict=False)
    counter = tokens.counter_for("gpt-4o")
    assert with_tool > tokens.count_tools([spec.tool], counter) > 0
    assert schemagen.count_tokens(Person, text * 20, model="gpt-4o") > with_tool


def test_known_context_windows() -> None:
    assert tokens.context_window("gpt-4o-mini") == 128_000
    assert tokens.context_window("openai/gpt-4.1-nano") == 1_047_576
    assert tokens.context_window("my-local-model") is None
