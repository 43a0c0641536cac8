"""The derived output bound: pure, the same for every backend."""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field

from schemagen.engine.bounds import (
    DEFAULT_RULE,
    BoundRule,
    fits,
    is_reasoning_model,
    max_output_tokens,
    output_bound,
    schema_size,
)
from schemagen.schema import build_tool
from schemagen.tokens import counter_for


class Mood(Enum):
    HAPPY = "happy"
    SAD = "sad"


class Bounded(BaseModel):
    mood: Mood
    label: Literal["spam", "ham"]
    score: Annotated[int, Field(ge=0, le=100)]
    ok: bool
    ratio: float
    code: Annotated[str, Field(max_length=12)]
    tags: Annotated[list[Annotated[str, Field(max_length=10)]], Field(max_length=5)]


class Free(BaseModel):
    title: str
    items: list[str]


class Node(BaseModel):
    name: Annotated[str, Field(max_length=5)]
    children: Annotated[list[Node], Field(max_length=2)]


def params(target: object) -> dict:
    return build_tool(target, False).parameters


def test_fully_bounded_schema_does_not_grow_with_the_input() -> None:
    size = schema_size(params(Bounded))
    assert size.bounded
    small, large = output_bound(params(Bounded), 10), output_bound(params(Bounded), 100_000)
    assert small.max_tokens == large.max_tokens
    assert small.bounded and small.limited_by == "schema"
    assert small.max_tokens < DEFAULT_RULE.floor  # the floor is for unbounded schemas only


def test_fully_bounded_bound_holds_the_largest_instance() -> None:
    # Every bounded field at its largest, in the worst characters for a tokenizer.
    worst = {
        "mood": "happy", "label": "spam", "score": 100, "ok": False, "ratio": -1.2345678901234567e-300,
        "code": "ÿ" * 12, "tags": ["\u00e9" * 10] * 5,
    }
    text = json.dumps(worst, indent=2, ensure_ascii=False)
    assert counter_for(None)(text) <= output_bound(params(Bounded), 0).max_tokens


def test_unbounded_schema_grows_with_the_input_between_floor_and_ceiling() -> None:
    p = params(Free)
    tiny, mid, huge = (output_bound(p, n) for n in (3, 400, 1_000_000))
    assert not tiny.bounded
    assert tiny.max_tokens == DEFAULT_RULE.floor and tiny.limited_by == "floor"
    assert DEFAULT_RULE.floor < mid.max_tokens < DEFAULT_RULE.ceiling and mid.limited_by == "input"
    assert huge.max_tokens == DEFAULT_RULE.ceiling and huge.limited_by == "ceiling"
    assert output_bound(p, 401).max_tokens >= mid.max_tokens


def test_the_context_left_caps_the_bound() -> None:
    bound = output_bound(params(Free), 400, context_left=300)
    assert bound.max_tokens == 300 and bound.limited_by == "context"
    assert fits(bound)  # 300 still covers the floor
    assert not fits(output_bound(params(Free), 400, context_left=50))


def test_list_items_and_maps_grow_with_the_input() -> None:
    class Item(BaseModel):
        description: str
        quantity: int

    assert schema_size(params(list[Item])).item > schema_size(params(list[str])).item > 0
    assert not schema_size(params(dict[str, int])).bounded


def test_recursion_is_unbounded_unless_capped_by_max_items() -> None:
    # Bounded at each level, but recursion can nest without end.
    assert not schema_size(params(Node)).bounded


def test_reasoning_models_get_room_to_think() -> None:
    assert is_reasoning_model("o3-mini") and is_reasoning_model("openai/gpt-5-nano")
    assert is_reasoning_model("Qwen/Qwen3-8B") and is_reasoning_model("openai/gpt-oss-20b")
    assert not is_reasoning_model("gpt-4o-mini") and not is_reasoning_model("smollm2")
    plain = output_bound(params(Free), 50)
    thinking = output_bound(params(Free), 50, reasoning=True)
    assert thinking.max_tokens == plain.max_tokens + DEFAULT_RULE.reasoning_extra


def test_max_output_tokens_is_the_pure_entry_point_for_local_backends() -> None:
    schema = {"type": "object", "properties": {"summary": {"type": "string"}}}
    assert max_output_tokens(schema, 200) == output_bound(schema, 200).max_tokens
    assert max_output_tokens(schema, 200, context_left=100) == 100
    assert max_output_tokens(schema, 200, rule=BoundRule(floor=10, ceiling=20)) == 20


def test_plain_json_schemas_without_pydantic() -> None:
    schema = {
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date"},
            "kind": {"enum": ["a", "b"]},
            "n": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "pair": {"type": "array", "prefixItems": [{"type": "boolean"}, {"const": 1}], "items": False},
        },
    }
    assert schema_size(schema).bounded
    assert not schema_size({"type": "object", "properties": {"x": {}}}).bounded  # Any


@pytest.mark.parametrize("kwargs", [{"floor": 0}, {"floor": 10, "ceiling": 5}, {"tokens_per_item": 0},
                                    {"slack": 0.5}])
def test_rule_rejects_nonsense(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        BoundRule(**kwargs)
