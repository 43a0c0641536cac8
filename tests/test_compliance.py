"""The official JSON Schema Test Suite (draft 2020-12) against schemagen's local grammar and
validation: no invalid value ever gets through, and the enforcement report tells the truth.
No model: llguidance runs over a byte vocabulary (see benchmarks/jsonschema_suite.py). ~10 s."""

from __future__ import annotations

import importlib.util

import pytest
from benchmarks.jsonschema_suite import compact, fidelity, grammar_for, load_cases, totals

from schemagen import SchemaError
from schemagen.schema import build_tool
from tests.conftest import missing

# keyword files the grammar alone must decide exactly (no help from validation)
GRAMMAR_EXACT = [
    "type",
    "required",
    "properties",
    "items",
    "prefixItems",
    "minimum",
    "maximum",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "anyOf",
    "multipleOf",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "additionalProperties",
    "anchor",
]


@pytest.fixture(scope="module")
def table():  # type: ignore[no-untyped-def]
    if importlib.util.find_spec("llguidance") is None:
        missing("llguidance is not installed (pip install -e '.[local]')")
    return fidelity(load_cases(), outlines=False)


def test_no_invalid_instance_passes_grammar_and_validation(table) -> None:  # type: ignore[no-untyped-def]
    ours, _ = totals(table)
    assert ours.cases == 1257
    assert ours.returned_invalid == 0, ours.misses
    # where the report says every keyword is in the grammar, the grammar alone never slips
    assert ours.wrongly_accepted_enforced == 0, ours.misses
    assert ours.caught == ours.wrongly_accepted
    assert ours.refused < ours.cases // 10  # most schemas are constrained, not refused


@pytest.mark.parametrize("name", GRAMMAR_EXACT)
def test_grammar_never_accepts_an_invalid_instance(table, name: str) -> None:  # type: ignore[no-untyped-def]
    ours, _ = table[name]
    assert ours.wrongly_accepted == 0
    assert ours.correct + ours.wrongly_rejected + ours.refused == ours.cases


def test_refusals_happen_up_front_with_a_schema_error() -> None:
    if importlib.util.find_spec("llguidance") is None:
        missing("llguidance is not installed (pip install -e '.[local]')")
    refused = 0
    for case in {
        compact(c.schema): c for c in load_cases(["refRemote", "boolean_schema", "vocabulary"])
    }.values():
        with pytest.raises(SchemaError) as info:
            grammar_for(build_tool(case.schema, strict=False))
        assert info.value.path
        refused += 1
    assert refused >= 10


@pytest.mark.parametrize("strict", [False, True])
def test_every_suite_schema_builds_a_request_and_round_trips_valid_instances(strict: bool) -> None:
    """No crash on any schema of the suite (a typed SchemaError at most), in both modes, and a
    valid instance sent back as the tool's arguments comes out unchanged; an invalid one never does."""
    from pydantic import ValidationError

    from schemagen.engine.run import ExtractionRun, Settings

    runs: dict[str, ExtractionRun[object] | None] = {}
    checked = 0
    for case in load_cases():
        key = compact(case.schema)
        if key not in runs:
            try:
                run: ExtractionRun[object] = ExtractionRun(
                    case.schema, "text", Settings(model="gpt-4o-mini", strict=strict), supports_strict=strict
                )
                run.next_request()
                runs[key] = run
            except SchemaError:
                runs[key] = None
        built = runs[key]
        if built is None:
            continue
        arguments = {"value": case.data} if built.spec.wrapped else case.data
        try:
            value = built.spec.validate(arguments)
        except ValidationError:
            # schemagen asserts formats; the suite's default treats them as annotations
            assert not case.valid or case.file == "format", (case.file, case.group, case.description)
        else:
            assert case.valid and value == case.data, (case.file, case.group, case.description)
        checked += 1
    assert checked > (600 if strict else 1000)  # strict=True refuses what strict mode cannot express
