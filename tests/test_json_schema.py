"""JSON Schema dict, dataclass and TypedDict targets; the enforcement report; strict-transform fixes."""

from __future__ import annotations

import dataclasses
import json
from typing import Optional

import pytest
from pydantic import BaseModel, Field, ValidationError
from typing_extensions import NotRequired, TypedDict

import schemagen
from schemagen import EmptyTextError, SchemaError
from schemagen.engine.run import ExtractionRun, Settings
from schemagen.exchange import Completion, ToolCall, Usage
from schemagen.schema import build_tool, list_schema

CITY = {
    "title": "City",
    "description": "A city named in the text.",
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "population": {"type": "integer", "minimum": 0},
        "country": {"$ref": "#/$defs/code"},
        "founded": {"type": "string", "format": "date"},
    },
    "required": ["name", "population"],
    "$defs": {"code": {"type": "string", "pattern": "^[A-Z]{2}$"}},
}


@dataclasses.dataclass
class Point:
    """A point on the plane."""

    x: int
    y: int = 0


class Person(TypedDict):
    name: str
    age: NotRequired[int]


def call(name: str, args: object) -> Completion:
    return Completion(
        tool_calls=(ToolCall(name, json.dumps(args), "c1"),),
        finish_reason="tool_calls",
        usage=Usage(prompt_tokens=10, completion_tokens=5, requests=1),
    )


# ---------------------------------------------------------------- dict targets


def test_dict_target_name_description_and_parameters() -> None:
    spec = build_tool(CITY, strict=False)
    assert spec.name == "City" and spec.description == "A city named in the text."
    assert "title" not in spec.parameters and "description" not in spec.parameters
    assert spec.parameters["properties"]["country"] == {"$ref": "#/$defs/code"}
    assert not spec.wrapped and spec.model is None
    assert build_tool({"type": "object", "properties": {"a": {"type": "string"}}}).name == "extract"
    assert build_tool(CITY) is build_tool(json.loads(json.dumps(CITY)))  # cached by content


def test_dict_target_validates_with_jsonschema_and_returns_plain_data() -> None:
    spec = build_tool(CITY, strict=False)
    value = spec.validate({"name": "Paris", "population": 2, "country": "FR", "founded": "0300-01-01"})
    assert value == {"name": "Paris", "population": 2, "country": "FR", "founded": "0300-01-01"}
    with pytest.raises(ValidationError) as info:
        spec.validate({"name": "", "population": -1, "country": "France", "founded": "soon"})
    errors = {e["loc"]: e["msg"] for e in info.value.errors()}
    assert set(errors) == {("name",), ("population",), ("country",), ("founded",)}
    assert "less than the minimum of 0" in errors[("population",)]
    assert "does not match '^[A-Z]{2}$' (keyword 'pattern'" in errors[("country",)]
    assert "is not a 'date'" in errors[("founded",)]  # format checking is on


def test_non_object_root_is_wrapped_and_unwrapped() -> None:
    schema = {
        "type": "array",
        "items": {"$ref": "#/$defs/n"},
        "minItems": 2,
        "$defs": {"n": {"type": "integer"}},
    }
    spec = build_tool(schema, strict=False)
    assert spec.wrapped and spec.parameters["properties"]["value"]["minItems"] == 2
    assert spec.parameters["$defs"] == {"n": {"type": "integer"}}
    assert spec.validate({"value": [1, 2]}) == [1, 2]
    with pytest.raises(ValidationError) as info:
        spec.validate({"value": [1, "x"]})
    assert info.value.errors()[0]["loc"] == ("value", 1)
    with pytest.raises(ValidationError):
        spec.validate({"value": [1]})  # minItems
    recursive = build_tool({"type": "array", "items": {"anyOf": [{"type": "integer"}, {"$ref": "#"}]}})
    assert recursive.parameters["properties"]["value"]["items"]["anyOf"][1] == {"$ref": "#/properties/value"}
    assert recursive.validate({"value": [1, [2, [3]]]}) == [1, [2, [3]]]


def test_strict_dict_target_drops_nulls_of_optional_properties() -> None:
    spec = build_tool(CITY, strict=True)
    assert spec.strict and spec.parameters["required"] == ["name", "population", "country", "founded"]
    value = spec.validate({"name": "Oslo", "population": 5, "country": None, "founded": None})
    assert value == {"name": "Oslo", "population": 5}
    assert {"type": "null"} in spec.parameters["properties"]["country"]["anyOf"]


@pytest.mark.parametrize(
    ("schema", "keyword", "needle"),
    [
        ({"$ref": "https://example.com/schema.json"}, "$ref", "never fetched"),
        ({"type": "object", "properties": {"a": {"$ref": "other.json#/x"}}}, "$ref", "never fetched"),
        ({"$ref": "#/$defs/missing"}, "$ref", "does not resolve"),
        (
            {"type": "object", "properties": {"a": {"type": "string", "format": "zip-code"}}},
            "format",
            "zip-code",
        ),
        ({"type": "strng"}, "type", "metaschema"),
        ({"type": "object", "required": "a"}, "required", "metaschema"),
        ({"$schema": "https://example.com/my-draft"}, "$schema", "unknown $schema"),
    ],
)
def test_unusable_schemas_raise_schema_error_naming_keyword_and_path(
    schema: dict, keyword: str, needle: str
) -> None:
    with pytest.raises(SchemaError) as info:
        build_tool(schema)
    assert info.value.keyword == keyword and needle in str(info.value)
    if keyword == "$ref" and "properties" in schema:
        assert info.value.path == "$.properties.a"
    if keyword == "format":
        assert info.value.path == "$.properties.a"


@pytest.mark.parametrize("target", [True, ["a"], "string", None])
def test_a_value_that_is_not_a_type_or_schema_dict_is_a_schema_error(target: object) -> None:
    with pytest.raises(SchemaError, match="a target must be a type or a JSON Schema dict"):
        build_tool(target)


def test_local_defs_anchor_and_embedded_id_work() -> None:
    anchored = build_tool(
        {
            "type": "object",
            "properties": {"a": {"$ref": "#num"}},
            "$defs": {"n": {"$anchor": "num", "type": "integer"}},
        }
    )
    assert anchored.validate({"a": 3}) == {"a": 3}
    with pytest.raises(ValidationError):
        anchored.validate({"a": "3"})
    embedded = build_tool(
        {
            "$id": "https://example.com/root.json",
            "type": "object",
            "properties": {"a": {"$ref": "item.json"}},
            "$defs": {"i": {"$id": "item.json", "type": "boolean"}},
        },
        strict=False,
    )
    assert embedded.validate({"a": True}) == {"a": True}


def test_declared_draft_is_used() -> None:
    draft7 = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"t": {"type": "array", "items": [{"type": "integer"}], "additionalItems": False}},
    }
    spec = build_tool(draft7, strict=False)
    assert spec.validate({"t": [1]}) == {"t": [1]}
    with pytest.raises(ValidationError):
        spec.validate({"t": [1, 2]})  # draft-07 tuple items: a second item is not allowed


def test_list_schema_for_many() -> None:
    many = list_schema(CITY)
    spec = build_tool(many, strict=False)
    assert many["$defs"] == CITY["$defs"] and many["items"]["properties"]["country"] == {
        "$ref": "#/$defs/code"
    }
    assert spec.validate({"value": [{"name": "A", "population": 1}]}) == [{"name": "A", "population": 1}]


# ---------------------------------------------------------------- dataclass / TypedDict targets


def test_dataclass_and_typeddict_targets_via_type_adapter() -> None:
    point = build_tool(Point, strict=True)
    assert point.name == "Point" and point.description == "A point on the plane." and not point.wrapped
    assert point.validate({"x": 1, "y": None}) == Point(1, 0)  # strict null = use the default
    person = build_tool(Person, strict=True)
    assert person.description == "Record the Person found in the input."
    assert person.validate({"name": "Ann", "age": None}) == {"name": "Ann"}
    with pytest.raises(ValidationError):
        person.validate({"name": 3})


# ---------------------------------------------------------------- through the engine


@pytest.mark.parametrize("target", [CITY, Point, Person])
def test_engine_reasks_with_jsonschema_messages_then_returns_the_value(target: object) -> None:
    run: ExtractionRun[object] = ExtractionRun(
        target, "Paris has 2 people. Point 1,2. Ann is 3.", Settings(model="m", reasks=1)
    )
    name = run.spec.name
    run.next_request()
    run.receive(
        call(name, {"name": "Paris", "population": "many"} if target is CITY else {"x": "a", "name": 1})
    )
    assert not run.done and run.current.outcome == "invalid"
    reask = run.next_request().body["messages"][-1]["content"]
    if target is CITY:
        assert "population: 'many' is not of type 'integer'" in reask
    good = {"name": "Paris", "population": 2} if target is CITY else {"x": 1, "y": 2, "name": "Ann", "age": 3}
    if target is not CITY:
        good = {k: v for k, v in good.items() if k in (("x", "y") if target is Point else ("name", "age"))}
    run.receive(call(name, good))
    assert run.result().value == (Point(1, 2) if target is Point else good)


def test_new_public_names_are_exported() -> None:
    for name in ("EmptyTextError", "KeywordEnforcement", "build_tool"):
        assert name in schemagen.__all__ and getattr(schemagen, name)


def test_empty_text_is_a_typed_error_before_any_request() -> None:
    with pytest.raises(EmptyTextError):
        schemagen.Client(base_url="http://127.0.0.1:9/v1", api_key="x", model="m").extract(CITY, " \n\t")


def test_debug_prints_the_enforcement_report(capsys: pytest.CaptureFixture[str]) -> None:
    ExtractionRun(CITY, "text", Settings(model="m", debug=True))
    err = capsys.readouterr().err
    assert "schemagen enforcement for `City`" in err
    assert "$.properties.name: minLength -> grammar, validation" in err


# ---------------------------------------------------------------- enforcement report


def test_enforcement_report_says_where_each_keyword_is_enforced() -> None:
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "name": {"type": "string", "maxLength": 5},
            "kind": {"enum": ["a", "b"]},
        },
        "required": ["tags", "name", "kind"],
        "additionalProperties": False,
    }
    strict = {(e.path, e.keyword): e for e in build_tool(schema, strict=True).enforcement}
    assert strict[("$.properties.kind", "enum")].where == ("grammar", "server", "validation")
    assert strict[("$.properties.name", "maxLength")].where == ("grammar", "validation")
    assert strict[("$.properties.tags", "uniqueItems")].where == ("validation",)
    loose = {(e.path, e.keyword): e for e in build_tool(schema, strict=False).enforcement}
    assert loose[("$.properties.kind", "enum")].where == ("grammar", "validation")
    assert all(e.validated for e in loose.values())


# ---------------------------------------------------------------- strict transform (issue #10 section 5)


class Line(BaseModel):
    sku: str
    qty: int = 1


class Order(BaseModel):
    lines: list[Optional[Line]]


class Aliased(BaseModel):
    count: int = Field(default=0, validation_alias="n")
    label: str


def test_list_of_optional_models_keeps_nulls_stripped_in_items() -> None:
    spec = build_tool(Order, strict=True)
    value = spec.validate({"lines": [{"sku": "A", "qty": None}, None]})
    assert value == Order(lines=[Line(sku="A", qty=1), None])


def test_validation_alias_is_honoured_by_the_strict_null_drop() -> None:
    spec = build_tool(Aliased, strict=True)
    assert "n" in spec.parameters["properties"]
    assert spec.validate({"n": None, "label": "x"}) == Aliased(label="x")


def _dag(depth: int) -> type[BaseModel]:
    level: type[BaseModel] = type("L0", (BaseModel,), {"__annotations__": {"v": int}})
    for i in range(1, depth + 1):
        level = type(f"L{i}", (BaseModel,), {"__annotations__": {"left": level, "right": level}})
    return level


def test_strict_keeps_shared_defs_so_a_dag_does_not_grow_exponentially() -> None:
    spec = build_tool(_dag(12), strict=True)
    size = len(json.dumps(spec.parameters))
    assert size < 3000, size  # inlining every $ref would give 2**12 copies of L0
    assert len(spec.parameters["$defs"]) == 12
    shared = [p for n, d in spec.parameters["$defs"].items() if n != "L0" for p in d["properties"].values()]
    assert shared and all(set(p) == {"$ref"} for p in shared)


@pytest.mark.local
def test_local_backend_constrains_what_it_can_and_returns_only_valid_values() -> None:
    from tests.test_local import require_local

    require_local()
    import jsonschema

    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 20},
            "colors": {"type": "array", "items": {"type": "string"}, "uniqueItems": True, "maxItems": 3},
        },
        "required": ["name", "colors"],
    }
    client = schemagen.Client(model="local:", retries=2, max_tokens=120, temperature=0.0)
    result = client.extract_result(schema, "Ann likes red and blue.")
    jsonschema.validate(result.value, schema)
    assert result.value == {"name": "Ann", "colors": ["red", "blue"]}
    constraint = result.trace.attempts[0].request.constraint
    assert constraint is not None and "uniqueItems" not in json.dumps(constraint)  # left to validation
    assert constraint["properties"]["colors"]["maxItems"] == 3  # in the grammar
