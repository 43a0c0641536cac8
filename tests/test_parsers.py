"""Native tool-call parsers: the published formats, the off-spec variants models really emit,
and garbage that must be refused rather than turned into calls."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from schemagen.parse.formats import PARSERS, get_parser, parse_tool_calls
from schemagen.parse.formats.base import ParseReport

FIXTURES = Path(__file__).parent / "fixtures" / "tool_calls"

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer"},
    },
    "required": ["city"],
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {"timezone": {"type": "string"}}}}},
]
# Kimi K2 markers, to keep the fixtures below readable.
BEGIN, ARGS, END = "<|tool_call_begin|>", "<|tool_call_argument_begin|>", "<|tool_call_end|>"
EXPECTED = [
    ("get_weather", {"city": "Paris", "days": 3}),
    ("get_time", {"timezone": "Europe/Paris"}),
]


def calls(report: ParseReport) -> list[tuple[str | None, Any]]:
    return [(call.name, call.arguments) for call in report.calls]


def parse(fmt: str, text: str, schema: Any = None) -> ParseReport:
    return get_parser(fmt).parse(text, schema=schema)


# --------------------------------------------------------------------------- registry


def test_registry_entries_load_and_name_themselves() -> None:
    for name in PARSERS:
        assert get_parser(name).name == name
    assert list(PARSERS)[-1] == "json"


def test_unknown_format_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="hermes"):
        get_parser("nope")


# --------------------------------------------------------------------------- published formats


@pytest.mark.parametrize(
    ("fixture", "fmt"),
    [
        ("hermes.txt", "hermes"),
        ("llama3_json.txt", "llama3_json"),
        ("mistral_v3.txt", "mistral"),
        ("mistral_v11.txt", "mistral"),
        ("mistral_call_id.txt", "mistral"),
        ("qwen3_xml.txt", "qwen3_xml"),
        ("kimi_k2.txt", "kimi_k2"),
        ("deepseek_v3.txt", "deepseek_v3"),
        ("deepseek_v31.txt", "deepseek_v3"),
        ("pythonic.txt", "pythonic"),
    ],
)
def test_published_format_parses_with_its_parser_and_auto(fixture: str, fmt: str) -> None:
    text = (FIXTURES / fixture).read_text(encoding="utf-8")
    report = parse(fmt, text, TOOLS)
    assert calls(report) == EXPECTED
    assert report.skipped == []

    reports = parse_tool_calls(text, schema=TOOLS)
    assert reports[-1].parser == fmt
    assert calls(reports[-1]) == EXPECTED


def test_ids_are_kept() -> None:
    old = parse("mistral", (FIXTURES / "mistral_v3.txt").read_text())
    assert [c.id for c in old.calls] == ["a1B2c3D4e", "Z9y8X7w6v"]
    new = parse("mistral", (FIXTURES / "mistral_call_id.txt").read_text())
    assert [c.id for c in new.calls] == ["a1B2c3D4e", "Z9y8X7w6v"]
    kimi = parse("kimi_k2", (FIXTURES / "kimi_k2.txt").read_text())
    assert [c.id for c in kimi.calls] == ["functions.get_weather:0", "functions.get_time:1"]


# --------------------------------------------------------------------------- hermes


def test_hermes_missing_end_tag_at_eos_and_prose() -> None:
    text = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
    report = parse("hermes", text)
    assert calls(report) == [("get_weather", {"city": "Paris"})]
    assert any("no </tool_call>" in note for note in report.notes)
    assert any("outside" in note for note in report.notes)


def test_hermes_trailing_comma_is_repaired_with_a_note() -> None:
    text = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris",},}</tool_call>'
    report = parse("hermes", text)
    assert calls(report) == [("get_weather", {"city": "Paris"})]
    assert any("repaired" in note for note in report.notes)


def test_hermes_string_arguments_fence_and_lost_opening_tag() -> None:
    double_encoded = '<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call>'
    assert calls(parse("hermes", double_encoded)) == [("f", {"a": 1})]
    fenced = '<tool_call>\n```json\n{"name": "f", "arguments": {"a": 1}}\n```\n</tool_call>'
    assert calls(parse("hermes", fenced)) == [("f", {"a": 1})]
    lost_open = '{"name": "f", "arguments": {"a": 1}}</tool_call>'
    report = parse("hermes", lost_open)
    assert calls(report) == [("f", {"a": 1})]
    assert report.notes


# --------------------------------------------------------------------------- llama 3


def test_llama3_without_python_tag_with_arguments_key_and_prose() -> None:
    text = 'Calling now: {"name": "get_weather", "arguments": {"city": "Paris"}} <|eot_id|>'
    report = parse("llama3_json", text)
    assert calls(report) == [("get_weather", {"city": "Paris"})]
    assert any("ignored text" in note for note in report.notes)


def test_llama3_refuses_json_that_is_not_a_call() -> None:
    report = parse("llama3_json", '<|python_tag|>{"city": "Paris"}')
    assert report.calls == []
    assert report.skipped


def test_llama3_builtin_tool_syntax_is_refused_not_guessed() -> None:
    report = parse("llama3_json", '<|python_tag|>brave_search.call(query="weather in Paris")')
    assert report.calls == []
    assert "built-in" in report.skipped[0]


# --------------------------------------------------------------------------- mistral


def test_mistral_spacing_trailing_comma_and_missing_args_marker() -> None:
    spaced = '[TOOL_CALLS]  [ {"name": "f", "arguments": {"a": 1,}} ]  '
    report = parse("mistral", spaced)
    assert calls(report) == [("f", {"a": 1})]
    assert any("repaired" in note for note in report.notes)
    no_args_marker = '[TOOL_CALLS]f{"a": 1}'
    report = parse("mistral", no_args_marker)
    assert calls(report) == [("f", {"a": 1})]
    assert any("[ARGS]" in note for note in report.notes)


def test_mistral_unclosed_arguments_at_eos_are_repaired() -> None:
    report = parse("mistral", '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"')
    assert calls(report) == [("get_weather", {"city": "Paris"})]
    assert report.notes


# --------------------------------------------------------------------------- qwen3 xml


def test_qwen3_values_are_typed_from_the_schema() -> None:
    schema = {
        "type": "object",
        "$defs": {"Unit": {"type": "string", "enum": ["c", "f"]}},
        "properties": {
            "n": {"type": "integer"},
            "x": {"type": "number"},
            "ok": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "meta": {"type": "object"},
            "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "unit": {"$ref": "#/$defs/Unit"},
            "code": {"type": "string"},
            "poem": {"type": "string"},
        },
    }
    text = (
        "<tool_call>\n<function=f>\n"
        "<parameter=n>\n42\n</parameter>\n"
        "<parameter=x>\n2.5\n</parameter>\n"
        "<parameter=ok>\nFalse\n</parameter>\n"
        '<parameter=tags>\n["a", "b"]\n</parameter>\n'
        '<parameter=meta>\n{"k": 1}\n</parameter>\n'
        "<parameter=maybe>\nnull\n</parameter>\n"
        "<parameter=unit>\nc\n</parameter>\n"
        "<parameter=code>\n007\n</parameter>\n"
        "<parameter=poem>\nline one\n  line two\n</parameter>\n"
        "</function>\n</tool_call>"
    )
    report = parse("qwen3_xml", text, schema)
    assert calls(report) == [("f", {
        "n": 42, "x": 2.5, "ok": False, "tags": ["a", "b"], "meta": {"k": 1}, "maybe": None,
        "unit": "c", "code": "007", "poem": "line one\n  line two",
    })]


def test_qwen3_without_schema_keeps_text_and_says_so() -> None:
    report = parse("qwen3_xml", "<function=f><parameter=n>42</parameter></function>")
    assert calls(report) == [("f", {"n": "42"})]
    assert any("no schema" in note for note in report.notes)


def test_qwen3_value_not_fitting_its_type_stays_text_with_a_note() -> None:
    report = parse("qwen3_xml", "<function=get_weather><parameter=days>three</parameter></function>", WEATHER)
    assert calls(report) == [("get_weather", {"days": "three"})]
    assert any("does not fit" in note for note in report.notes)


def test_qwen3_missing_end_tags_at_eos() -> None:
    text = "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n"
    report = parse("qwen3_xml", text, TOOLS)
    assert calls(report) == [("get_weather", {"city": "Paris", "days": 3})]
    assert any("</parameter>" in note for note in report.notes)
    assert any("</function>" in note for note in report.notes)
    assert any("</tool_call>" in note for note in report.notes)


def test_qwen3_is_chosen_over_hermes_in_auto() -> None:
    text = (FIXTURES / "qwen3_xml.txt").read_text()
    reports = parse_tool_calls(text, schema=TOOLS)
    assert [r.parser for r in reports] == ["qwen3_xml"]


# --------------------------------------------------------------------------- kimi k2


@pytest.mark.parametrize(
    ("call_id", "name"),
    [
        ("functions.get_weather:0", "get_weather"),
        ("get_weather:3", "get_weather"),
        ("get_weather", "get_weather"),
        ("functions.get_weather", "get_weather"),
        (" functions.get_weather:0 \n", "get_weather"),
        ("call_8f2a", None),  # an opaque id names nothing: the name is left open, the call kept
    ],
)
def test_kimi_accepts_any_id_shape(call_id: str, name: str | None) -> None:
    text = (
        "<|tool_calls_section_begin|><|tool_call_begin|>"
        f'{call_id}<|tool_call_argument_begin|>{{"city": "Paris"}}<|tool_call_end|><|tool_calls_section_end|>'
    )
    report = parse("kimi_k2", text)
    assert calls(report) == [(name, {"city": "Paris"})]
    assert report.calls[0].id == call_id.strip()


def test_kimi_missing_end_markers_singular_section_and_prose() -> None:
    text = (
        "I'll look it up. <|tool_call_section_begin|>\n<|tool_call_begin|> functions.get_weather:0 "
        '<|tool_call_argument_begin|> {"city": "Paris", "days": 3,}'
    )
    report = parse("kimi_k2", text)
    assert calls(report) == [("get_weather", {"city": "Paris", "days": 3})]
    assert any("no <|tool_call_end|>" in note for note in report.notes)
    assert any("repaired" in note for note in report.notes)


def test_kimi_names_checked_against_known_tools() -> None:
    text = f'{BEGIN}functions.get_wether:0{ARGS}{{"city": "Paris"}}{END}'
    report = parse("kimi_k2", text, TOOLS)
    assert calls(report) == [("get_wether", {"city": "Paris"})]  # kept as written, flagged
    assert any("not among the tools" in note for note in report.notes)


def test_strict_kimi_parse_drops_a_call_the_tolerant_parser_recovers() -> None:
    text = (
        "<|tool_calls_section_begin|>"
        f'{BEGIN}functions.get_weather:0{ARGS}{{"city": "Paris"}}{END}'
        f'{BEGIN}get_time{ARGS}{{"timezone": "UTC"}}{END}'
        f'{BEGIN}functions.get_weather:2{ARGS}{{"city": "Rome"}}'
    )
    # What a parser that insists on the documented id and on every end marker would find.
    strict = re.findall(
        r"<\|tool_call_begin\|>functions\.([\w.]+):\d+<\|tool_call_argument_begin\|>(\{.*?\})<\|tool_call_end\|>",
        text,
    )
    assert [name for name, _ in strict] == ["get_weather"]

    tolerant = parse("kimi_k2", text)
    assert calls(tolerant) == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"timezone": "UTC"}),
        ("get_weather", {"city": "Rome"}),
    ]


# --------------------------------------------------------------------------- deepseek


def test_deepseek_ascii_markers_missing_ends_and_unclosed_fence() -> None:
    text = (
        "Sure.<|tool_calls_begin|><|tool_call_begin|>function<|tool_sep|>get_weather\n"
        '```json\n{"city": "Paris"}\n'
    )
    report = parse("deepseek_v3", text)
    assert calls(report) == [("get_weather", {"city": "Paris"})]
    assert any("end marker" in note for note in report.notes)


def test_ascii_deepseek_markers_are_not_taken_for_kimi_in_auto() -> None:
    # With ASCII "_" the DeepSeek call marker reads <|tool_call_begin|>, exactly Kimi's.
    text = '<|tool_calls_begin|><|tool_call_begin|>get_weather<|tool_sep|>{"city": "Paris"}<|tool_call_end|>'
    reports = parse_tool_calls(text)
    assert [r.parser for r in reports] == ["kimi_k2", "deepseek_v3"]
    assert reports[0].calls == [] and reports[0].skipped
    assert calls(reports[-1]) == [("get_weather", {"city": "Paris"})]


def test_deepseek_v31_with_newlines_and_trailing_comma() -> None:
    text = '<｜tool▁call▁begin｜> get_weather <｜tool▁sep｜>\n{"city": "Paris",}\n<｜tool▁call▁end｜>'
    report = parse("deepseek_v3", text)
    assert calls(report) == [("get_weather", {"city": "Paris"})]
    assert any("repaired" in note for note in report.notes)


# --------------------------------------------------------------------------- pythonic


def test_pythonic_prose_unclosed_list_json_spellings_and_dotted_names() -> None:
    report = parse("pythonic", 'Calling: [get_weather(city="Paris", days=3)] now.')
    assert calls(report) == [("get_weather", {"city": "Paris", "days": 3})]
    report = parse("pythonic", '[get_weather(city="Paris", flags=[true, null], opts={"a": (1, 2)})')
    assert calls(report) == [("get_weather", {"city": "Paris", "flags": [True, None], "opts": {"a": [1, 2]}})]
    assert any("not closed" in note for note in report.notes)
    dotted = parse("pythonic", "[api.weather.get(city='Paris')]")
    assert calls(dotted) == [("api.weather.get", {"city": "Paris"})]
    wrapped = '<|python_start|>[get_weather(city="Paris")]<|python_end|>'
    assert calls(parse("pythonic", wrapped)) == [("get_weather", {"city": "Paris"})]


def test_pythonic_never_evaluates_code() -> None:
    report = parse("pythonic", '[get_weather(city=__import__("os").system("echo pwned"))]')
    assert report.calls == []
    assert "not a literal" in report.skipped[0]
    report = parse("pythonic", "[get_weather(city=CITY)]")
    assert report.calls == []


def test_pythonic_keeps_good_calls_and_refuses_bad_ones_separately() -> None:
    report = parse("pythonic", '[get_weather(city="Paris"), get_time("UTC"), 42]')
    assert calls(report) == [("get_weather", {"city": "Paris"})]
    assert len(report.skipped) == 2


# --------------------------------------------------------------------------- json


def test_json_text_list_of_envelopes_payload_and_name_field() -> None:
    listed = parse("json", '[{"name": "f", "arguments": {"a": 1}}, {"name": "g", "arguments": {"b": 2}}]')
    assert calls(listed) == [("f", {"a": 1}), ("g", {"b": 2})]
    payload = parse("json", 'Here it is:\n```json\n{"name": "Alice", "age": 30}\n```')
    assert calls(payload) == [(None, {"name": "Alice", "age": 30})]


# --------------------------------------------------------------------------- garbage


GARBAGE = [
    ("hermes", "<tool_call>I would rather not.</tool_call>"),
    ("hermes", '<tool_call>{"arguments": {"city": "Paris"}}</tool_call>'),
    ("llama3_json", "<|python_tag|>the weather is nice"),
    ("mistral", "[TOOL_CALLS] sorry, I can't"),
    ("mistral", "[TOOL_CALLS]get weather now[ARGS]{}"),
    ("mistral", "[TOOL_CALLS]get_weather[ARGS]Paris"),
    ("qwen3_xml", "<function=>\n<parameter=city>\nParis\n</parameter>\n</function>"),
    ("qwen3_xml", "<function=get_weather>I think it is sunny</function>"),
    ("kimi_k2", f"{BEGIN}functions.get_weather:0{ARGS}Paris{END}"),
    ("kimi_k2", "<|tool_calls_section_begin|><|tool_calls_section_end|>"),
    # json-repair would turn this prose into ["sunny}"]: arguments must be an object.
    ("kimi_k2", f"{BEGIN}get_weather{ARGS}{{sunny}}{END}"),
    ("hermes", '<tool_call>{"name": "get_weather", "arguments": ["Paris"]}</tool_call>'),
    ("deepseek_v3", "<｜tool▁call▁begin｜>get_weather with Paris<｜tool▁call▁end｜>"),
    ("deepseek_v3", "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\nParis<｜tool▁call▁end｜>"),
    ("pythonic", '[print("hello")]'),
    ("pythonic", "[get_weather(city=Paris"),
    ("json", "The answer is forty-two."),
]


@pytest.mark.parametrize(("fmt", "text"), GARBAGE)
def test_garbage_is_refused_with_a_reason(fmt: str, text: str) -> None:
    report = parse(fmt, text, TOOLS)
    assert report.calls == []
    assert not report.ok
    assert report.skipped, "a refusal must say why"


@pytest.mark.parametrize("fmt", list(PARSERS))
def test_every_parser_refuses_plain_prose(fmt: str) -> None:
    report = parse(fmt, "I'm sorry, I can't help with that request.")
    assert report.calls == []
    assert report.skipped


def test_auto_on_prose_finds_nothing() -> None:
    reports = parse_tool_calls("Nothing to call here.")
    assert all(not r.ok for r in reports)
    assert reports[-1].parser == "json"
