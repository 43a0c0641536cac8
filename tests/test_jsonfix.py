"""Lenient JSON: benign repairs are made and noted; invented values are refused."""

from __future__ import annotations

import pytest

from schemagen.parse.jsonfix import NotJSON, find_json_values, loads_lenient


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a": 1}', {"a": 1}),
        ('{"a": 1,}', {"a": 1}),
        ("{'a': 'x'}", {"a": "x"}),
        ('{"a": [1, 2', {"a": [1, 2]}),
        ('{"name": "Ann" "age": 3}', {"name": "Ann", "age": 3}),
    ],
)
def test_benign_repairs(text: str, value: object) -> None:
    decoded = loads_lenient(text)
    assert decoded.value == value
    assert decoded.repaired == (text != '{"a": 1}')
    if decoded.repaired:
        assert decoded.notes and decoded.notes[0].startswith("repaired invalid JSON")


@pytest.mark.parametrize("text", ['{"city": }', "{sunny}", '{"a" 1}', "", "hello"])
def test_repairs_that_would_invent_values_are_refused(text: str) -> None:
    with pytest.raises(NotJSON):
        loads_lenient(text)


def test_json_found_in_prose_and_fences() -> None:
    values = [d.value for d in find_json_values('Sure: {"a": {"b": "}"}} and also [1, 2].')]
    assert values == [{"a": {"b": "}"}}, [1, 2]]
    fenced = find_json_values('text\n```json\n{"x": 1}\n```\nmore {"y": 2}')
    assert [d.value for d in fenced] == [{"x": 1}]
