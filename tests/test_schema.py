"""The schema stage: wrapping, compaction and the strict transform with its report."""

from __future__ import annotations

import enum
import json
from typing import Annotated, Literal, Optional, Union

import jsonschema
import pytest
from pydantic import BaseModel, Field

from schemagen import SchemaError
from schemagen.schema import build_tool, compact_schema


class Item(BaseModel):
    description: str
    quantity: int = Field(ge=1)
    unit_price: float


class Address(BaseModel):
    street: str
    city: str


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Nested(BaseModel):
    """A nested model."""

    name: str = Field(description="Full name", min_length=1, max_length=40)
    home: Address
    work: Optional[Address] = None
    color: Color = Color.RED
    tags: list[str] = Field(default_factory=list, max_length=5)
    kind: Union[int, str]
    code: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class Node(BaseModel):
    value: int
    children: list[Node] = []


class WithDict(BaseModel):
    counts: dict[str, int]


class WithAny(BaseModel):
    payload: object


def _changes(spec) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(c) for c in spec.report]


def test_name_and_description_come_from_the_class() -> None:
    spec = build_tool(Nested, strict=False)
    assert spec.name == "Nested"
    assert spec.description == "A nested model."
    assert spec.parameters["properties"]["name"]["description"] == "Full name"
    assert spec.tool_choice == {"type": "function", "function": {"name": "Nested"}}


def test_compact_drops_auto_titles_and_inlines_single_use_defs() -> None:
    spec = build_tool(Nested, strict=False)
    text = json.dumps(spec.parameters)
    assert '"title"' not in text
    # Address is used twice, so it stays in $defs; Color once, so it is inlined.
    assert set(spec.parameters["$defs"]) == {"Address"}
    assert spec.parameters["properties"]["color"]["enum"] == ["red", "blue"]
    assert any("inlined $defs/Color" in c for c in _changes(spec))


def test_user_titles_are_kept() -> None:
    class Titled(BaseModel):
        amount: float = Field(title="Amount in EUR")

    spec = build_tool(Titled, strict=False)
    assert spec.parameters["properties"]["amount"]["title"] == "Amount in EUR"


@pytest.mark.parametrize("model", [Nested, Item, Node])
def test_compaction_keeps_every_constraint(model: type[BaseModel]) -> None:
    original = model.model_json_schema()
    compact = compact_schema(original)
    samples = [
        {"description": "x", "quantity": 0, "unit_price": 1.0},
        {"description": "x", "quantity": 2, "unit_price": 1.0},
        {"name": "", "home": {"street": "a", "city": "b"}, "kind": 1, "code": "ABC"},
        {"name": "Ann", "home": {"street": "a", "city": "b"}, "kind": "x", "code": "abc"},
        {"name": "Ann", "home": {"street": "a"}, "kind": 1, "code": "ABC"},
        {"name": "Ann", "home": {"street": "a", "city": "b"}, "kind": 1, "code": "ABC",
         "tags": list("abcdef")},
        {"value": 1, "children": [{"value": "x"}]},
        {"value": 1, "children": [{"value": 2, "children": []}]},
    ]
    for sample in samples:
        before = jsonschema.Draft202012Validator(original).is_valid(sample)
        after = jsonschema.Draft202012Validator(compact).is_valid(sample)
        assert before == after, sample


def test_strict_transform_and_its_report() -> None:
    spec = build_tool(Nested, strict=True)
    params = spec.parameters
    assert spec.strict and spec.tool["function"]["strict"] is True
    assert params["additionalProperties"] is False
    assert params["required"] == list(params["properties"])
    # shared $defs stay shared (strict accepts them); no $ref carries siblings
    assert set(params["$defs"]) == {"Address"} and params["properties"]["home"] == {"$ref": "#/$defs/Address"}
    # optional fields become nullable; defaults are gone
    assert {"type": "null"} in params["properties"]["work"]["anyOf"]
    assert "default" not in json.dumps(params)
    # unsupported keywords moved into the description, not lost
    assert params["properties"]["name"]["description"] == "Full name (minLength: 1; maxLength: 40)"
    assert "pattern" not in params["properties"]["code"]
    assert "'^[A-Z]{3}$'" in params["properties"]["code"]["description"]
    changes = _changes(spec)
    assert "$.properties.work: optional field made required and nullable" in changes
    assert "$.properties.color: removed default" in changes
    assert "$: set additionalProperties: false" in changes
    assert "$.$defs.Address: set additionalProperties: false" in changes


def test_strict_nulls_mean_defaults_on_the_way_back() -> None:
    spec = build_tool(Nested, strict=True)
    value = spec.validate({
        "name": "Ann", "home": {"street": "a", "city": "b"}, "work": None, "color": None,
        "tags": None, "kind": 3, "code": "ABC",
    })
    assert value.color is Color.RED and value.tags == [] and value.work is None


def test_strict_auto_falls_back_and_strict_true_names_path_and_keyword() -> None:
    assert build_tool(WithDict, strict="auto").strict is False
    with pytest.raises(SchemaError) as info:
        build_tool(WithDict, strict=True)
    assert info.value.path == "$.properties.counts"
    assert info.value.keyword == "additionalProperties"
    with pytest.raises(SchemaError) as info2:
        build_tool(WithAny, strict=True)
    assert info2.value.path == "$.properties.payload"


def test_recursive_model_keeps_defs_in_strict_mode() -> None:
    spec = build_tool(Node, strict=True)
    assert spec.parameters["type"] == "object"
    assert spec.parameters["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert spec.parameters["$defs"]["Node"]["additionalProperties"] is False
    tree = spec.validate({"value": 1, "children": [{"value": 2, "children": None}]})
    assert tree.children[0].children == []


def test_wrapped_targets_unwrap() -> None:
    many = build_tool(list[Item], strict=True)
    assert many.wrapped and many.name == "ItemList"
    assert many.validate({"items": [{"description": "a", "quantity": 1, "unit_price": 2}]})[0].quantity == 1
    label = build_tool(Literal["spam", "ham"])
    assert label.validate({"label": "ham"}) == "ham"
    with pytest.raises(ValueError):
        label.validate({"label": "eggs"})
    assert build_tool(Color).validate({"label": "blue"}) is Color.BLUE
    assert build_tool(int).validate({"value": "7"}) == 7
    assert build_tool(bool).validate({"value": True}) is True
    assert build_tool(str).parameters["properties"]["value"] == {"type": "string"}


def test_cached_per_class_and_setting() -> None:
    assert build_tool(Item, strict=False) is build_tool(Item, strict=False)
    assert build_tool(Item, strict=False) is not build_tool(Item, strict=True)


def test_union_schema_is_strict_compatible() -> None:
    spec = build_tool(Nested, strict=True)
    kinds = spec.parameters["properties"]["kind"]["anyOf"]
    assert {"type": "integer"} in kinds and {"type": "string"} in kinds


def test_unschemable_target_is_a_schema_error() -> None:
    class Opaque:
        pass

    with pytest.raises(SchemaError, match="can't be turned into a JSON schema"):
        build_tool(Opaque)
    with pytest.raises(SchemaError):
        build_tool(list[Opaque])
