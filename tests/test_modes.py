"""Output modes, mode="auto" and reasoning models.

Pure parts (capability detection, the ladder, reasoning markers, usage) are tested as
functions; each vendor behaviour is a scripted loopback server answering from that vendor's
documented error shape, quoted in the test's docstring. The real llama.cpp cases are in
tests/test_modes_llama.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from schemagen import Client
from schemagen.backends.capability import capability_feature, needs_max_completion_tokens
from schemagen.engine.modes import MODES, RenderInput, get_mode
from schemagen.engine.negotiate import LADDER, Learned, step_down
from schemagen.engine.reasoning import split_reasoning
from schemagen.errors import (
    ModeUnsupportedError,
    RateLimitError,
    RequestRejectedError,
    ServerError,
)
from schemagen.exchange import Usage
from schemagen.mode_cache import MEMORY, ModeMemory, endpoint_key
from schemagen.schema import build_tool
from tests.fault_server import Call, FaultServer, content, openai_error, respond, status, tool_call

ADA = {"name": "Ada", "age": 36}


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture(autouse=True)
def _fresh_memory() -> Iterator[None]:
    MEMORY.forget()  # loopback ports are reused: nothing learned may leak between tests
    yield
    MEMORY.forget()


def client(srv: FaultServer, **kw: Any) -> Client:
    kw.setdefault("max_retries", 0)
    return Client(base_url=srv.base_url, api_key="sk-test-modes-key-0000", model="m", **kw)


def chat(message: dict[str, Any], usage: dict[str, Any] | None = None) -> Any:
    """A 200 chat completion whose message is exactly ``message`` (extra fields included)."""
    body = {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", **message},
                         "finish_reason": "tool_calls" if message.get("tool_calls") else "stop"}],
            "usage": usage or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
    return status(200, body)


def call_message(arguments: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
        "name": "Person", "arguments": json.dumps(arguments)}}], **extra}


def choice(c: Call) -> Any:
    return c.body.get("tool_choice")


# --------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(("status_code", "text", "feature"), [
    (500, "1 validation error: {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
          "'msg': \"Input should be 'text' or 'json_object'\"}", "response_format"),
    (400, "Only 'auto' or 'none' tool_choice is supported in response API with Harmony", "tool_choice"),
    (400, "Thinking may not be enabled when tool_choice forces tool use.", "thinking"),
    (400, "Invalid value: 'true'. The value 'true' isn't supported yet. For now, please use 'false' for "
          "this setting. tools[0].function.strict", "strict"),
    (400, "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
          "'max_completion_tokens' instead.", "max_tokens"),
    (400, "This model's maximum context length is 8192 tokens; the tools take 9000.", None),
    (401, "Incorrect API key provided: tools", None),
    (429, "Rate limit reached for tool_choice requests", None),
    (500, "The server had an error while processing your request (tools). Sorry about that!", None),
    # a validation error about the messages is not about a feature, whatever words it quotes
    (500, "2 validation errors: {'loc': ('body', 'messages', 2, 'role'), 'msg': 'Field required', "
          "'input': {'tool_calls': []}}", None),
])
def test_capability_feature(status_code: int, text: str, feature: str | None) -> None:
    assert capability_feature(status_code, text) == feature


def test_needs_max_completion_tokens() -> None:
    said = "Unsupported parameter: 'max_tokens' ... Use 'max_completion_tokens' instead."
    assert needs_max_completion_tokens(400, said)
    assert not needs_max_completion_tokens(429, said)
    assert not needs_max_completion_tokens(400, "max_tokens is too large")
    assert needs_max_completion_tokens(RequestRejectedError(said, status_code=400))


def test_ladder_steps() -> None:
    assert LADDER[0] == "tools"
    assert step_down("tools", "tool_choice") == "tools_required"
    assert step_down("tools_required", "tool_choice") == "tools_auto"
    assert step_down("tools", "tool_choice", "tool_choice must be 'auto' or 'none'") == "tools_auto"
    assert step_down("tools", "thinking") == "tools_auto"
    assert step_down("tools", "tools") == "json_schema"
    assert step_down("tools", "ignored") == "json_schema"
    assert step_down("json_schema", "response_format") == "json_object"
    assert step_down("json_object", "ignored") == "prompt"
    assert step_down("prompt", "ignored") is None
    assert step_down("raw", "tools") is None
    assert step_down("tools", "strict") is None  # a schema the server refuses: no mode fixes that


@pytest.mark.parametrize(("text", "reasoning", "rest"), [
    ("<think>add 2 and 2</think>\n{\"a\": 4}", "add 2 and 2", '{"a": 4}'),
    ("the template opened it</think>{\"a\": 1}", "the template opened it", '{"a": 1}'),
    ("<think>cut off while thinking", "cut off while thinking", ""),
    ("◁think▷hmm◁/think▷{}", "hmm", "{}"),
    ("<|channel|>analysis<|message|>plan<|end|><|start|>assistant<|channel|>final<|message|>{}",
     "plan", "{}"),
    ('{"a": "no reasoning here"}', "", '{"a": "no reasoning here"}'),
])
def test_split_reasoning(text: str, reasoning: str, rest: str) -> None:
    assert split_reasoning(text) == (reasoning, rest)


def test_reasoning_tokens_counted_in_usage() -> None:
    # OpenAI: reasoning is inside completion_tokens; kept as is, and shown.
    inside = Usage.from_openai({"prompt_tokens": 10, "completion_tokens": 50, "total_tokens": 60,
                                "completion_tokens_details": {"reasoning_tokens": 40}})
    assert (inside.completion_tokens, inside.reasoning_tokens) == (50, 40)
    # A server whose total shows it left them out of completion_tokens: added back.
    outside = Usage.from_openai({"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 60,
                                 "completion_tokens_details": {"reasoning_tokens": 40}})
    assert (outside.completion_tokens, outside.reasoning_tokens) == (50, 40)
    assert (inside + outside).to_dict()["reasoning_tokens"] == 80


def test_every_mode_renders_through_the_registry() -> None:
    spec = build_tool(Person, False)
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "Ada is 36."}]
    bodies = {}
    for name in MODES:
        if name == "raw":
            continue
        inp = RenderInput(spec=spec, messages=messages, model="m", params={"temperature": 0})
        bodies[name] = get_mode(name).render(inp).request.body
    assert bodies["tools"]["tool_choice"] == {"type": "function", "function": {"name": "Person"}}
    assert bodies["tools_required"]["tool_choice"] == "required"
    assert bodies["tools_auto"]["tool_choice"] == "auto"
    assert bodies["json_schema"]["response_format"]["json_schema"]["schema"] == spec.parameters
    assert bodies["json_object"]["response_format"] == {"type": "json_object", "schema": spec.parameters}
    assert "tools" not in bodies["prompt"] and "response_format" not in bodies["prompt"]
    for name in ("json_schema", "json_object", "prompt"):
        assert '"age"' in bodies[name]["messages"][0]["content"]  # the schema is in the prompt
        assert bodies[name]["temperature"] == 0


# --------------------------------------------------------------------------- vendors


def test_rejects_named_tool_choice() -> None:
    """vLLM serving gpt-oss (Harmony) refuses a forced tool: HTTP 400 "Only 'auto' or 'none'
    tool_choice is supported in response API with Harmony". The server says only auto works, so
    auto steps tools -> tools_auto in one request, once per process: the next extraction starts
    at tools_auto."""
    words = "Only 'auto' or 'none' tool_choice is supported in response API with Harmony"

    def server(c: Call) -> Any:
        if choice(c) in ("auto", "none"):
            return tool_call(ADA)
        return status(400, openai_error(400, words, param="tool_choice"))

    with FaultServer() as srv:
        srv.default = respond(server)
        sg = client(srv)
        result = sg.extract_result(Person, "Ada is 36.")
        assert result.value == Person(**ADA)
        assert result.trace.mode == "tools_auto"
        assert [s["to"] for s in result.trace.steps] == ["tools_auto"]
        assert words in result.trace.steps[0]["said"]
        assert result.attempts == 2 and len(srv.model_requests) == 2
        again = sg.extract_result(Person, "Ada is 36.")
        assert again.value == Person(**ADA)
        assert len(srv.model_requests) == 3  # no renegotiation
        assert srv.model_requests[-1].body["tool_choice"] == "auto"


def test_rejects_required_named_mode_gives_typed_error() -> None:
    """vLLM before 0.6 accepted only a named tool: tool_choice="required" answered HTTP 400 "The
    tool_choice option required is not yet supported but on the roadmap." A mode picked by hand
    that the server refuses is a typed error naming the mode and the server's words."""
    words = "The tool_choice option required is not yet supported but on the roadmap."

    def server(c: Call) -> Any:
        if choice(c) == "required":
            return status(400, openai_error(400, words))
        return tool_call(ADA)

    with FaultServer() as srv:
        srv.default = respond(server)
        with pytest.raises(ModeUnsupportedError) as info:
            client(srv, mode="tools_required").extract(Person, "Ada is 36.")
        err = info.value
        assert err.mode == "tools_required" and err.feature == "tool_choice"
        assert words in str(err) and "mode='auto'" in str(err)
        assert len(srv.model_requests) == 1  # not retried
        assert err.trace is not None and err.trace.attempts[0].outcome == "rejected"
        # auto never asks for required here: the named choice works
        assert client(srv).extract(Person, "Ada is 36.") == Person(**ADA)


def test_ignores_tool_choice() -> None:
    """Older Ollama accepted tools and tool_choice but answered in prose with no tool_calls;
    it did honour response_format (its ``format``). auto records the ignored constraint, with
    the prose, and steps to json_schema."""
    prose = "Sure! Ada is a person who is thirty-six years old."

    def server(c: Call) -> Any:
        if "response_format" in c.body:
            return content(json.dumps(ADA))
        return content(prose)

    with FaultServer() as srv:
        srv.default = respond(server)
        result = client(srv).extract_result(Person, "Ada is 36.")
        assert result.value == Person(**ADA)
        assert result.trace.mode == "json_schema"
        step = result.trace.steps[0]
        assert (step["from"], step["to"], step["refused"]) == ("tools", "json_schema", "ignored")
        assert "thirty-six" in step["said"]
        assert result.trace.attempts[0].outcome == "ignored"


def test_thinking_refuses_forced_tools() -> None:
    """Anthropic's OpenAI-compatible endpoint with extended thinking on: HTTP 400 "Thinking may
    not be enabled when tool_choice forces tool use." auto goes straight to tools_auto, which
    keeps the reasoning, instead of turning thinking off."""
    words = "Thinking may not be enabled when tool_choice forces tool use."

    def server(c: Call) -> Any:
        if choice(c) != "auto":
            error = {"type": "invalid_request_error", "message": words}
            return status(400, {"type": "error", "error": error})
        return chat(call_message(ADA, reasoning_content="The text says Ada, aged 36."))

    with FaultServer() as srv:
        srv.default = respond(server)
        result = client(srv).extract_result(Person, "Ada is 36.")
        assert result.value == Person(**ADA)
        assert [s["to"] for s in result.trace.steps] == ["tools_auto"]
        assert result.trace.steps[0]["refused"] == "thinking"
        assert result.trace.attempts[-1].reasoning == "The text says Ada, aged 36."


@pytest.mark.parametrize("mode", ["tools", "tools_auto", "json_schema", "json_object", "prompt"])
def test_think_then_answer_in_every_mode(mode: str) -> None:
    """Qwen3 / DeepSeek-R1 behind a server without a reasoning parser (llama.cpp without
    --reasoning-format, older vLLM): the content starts with "<think>...</think>" and the call or
    the JSON follows. The reasoning is cut before parsing in every mode and kept in the trace."""
    thought = "<think>The user wants Person. Name Ada, age 36. Braces like { must not confuse.</think>\n"

    def server(c: Call) -> Any:
        if c.body.get("tools"):
            call = json.dumps({"name": "Person", "arguments": ADA})
            return content(f"{thought}<tool_call>\n{call}\n</tool_call>")
        return content(thought + json.dumps(ADA))

    with FaultServer() as srv:
        srv.default = respond(server)
        result = client(srv, mode=mode).extract_result(Person, "Ada is 36.")
        assert result.value == Person(**ADA)
        assert result.attempts == 1
        record = result.trace.attempts[0]
        assert record.reasoning.startswith("The user wants Person")
        assert "<think>" not in record.output


def test_reasoning_content_and_tokens() -> None:
    """DeepSeek's API returns the reasoning in ``message.reasoning_content`` next to the answer,
    and counts it in ``completion_tokens_details.reasoning_tokens``. Kept in the trace; the
    tokens count in usage and budgets."""
    usage = {"prompt_tokens": 20, "completion_tokens": 90, "total_tokens": 110,
             "completion_tokens_details": {"reasoning_tokens": 80}}
    with FaultServer() as srv:
        srv.default = respond(lambda c: chat(call_message(ADA, reasoning_content="Ada is 36, so age=36."),
                                             usage))
        result = client(srv).extract_result(Person, "Ada is 36.")
        assert result.value == Person(**ADA)
        assert result.trace.attempts[0].reasoning == "Ada is 36, so age=36."
        assert result.usage.reasoning_tokens == 80 and result.usage.completion_tokens == 90
        assert result.trace.to_dict()["attempts"][0]["reasoning"] == "Ada is 36, so age=36."


def test_rejects_strict_then_non_strict_once() -> None:
    """DeepSeek / Upstage and other OpenAI-compatible servers without structured outputs: HTTP 400
    "Invalid value: 'true'. The value 'true' isn't supported yet. For now, please use 'false' for
    this setting." (param tools[0].function.strict). Retried once non-strict, recorded."""
    words = ("Invalid value: 'true'. The value 'true' isn't supported yet. For now, please use 'false' "
             "for this setting.")

    def server(c: Call) -> Any:
        if any((t.get("function") or {}).get("strict") for t in c.body.get("tools") or ()):
            return status(400, openai_error(400, words, param="tools[0].function.strict",
                                            error_code="invalid_request_error"))
        return tool_call(ADA)

    with FaultServer() as srv:
        srv.default = respond(server)
        result = client(srv, supports_strict=True).extract_result(Person, "Ada is 36.")
        assert result.value == Person(**ADA)
        first, second = (r.body for r in srv.model_requests)
        assert first["tools"][0]["function"]["strict"] is True
        assert "strict" not in second["tools"][0]["function"]
        assert result.trace.mode == "tools" and not result.trace.steps
        assert any("non-strict" in n for n in result.trace.attempts[0].notes)


def test_requires_max_completion_tokens() -> None:
    """OpenAI's reasoning models (o1, o3, gpt-5 under other names): HTTP 400 "Unsupported
    parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens'
    instead." (param max_tokens, code unsupported_parameter). Resent with the newer name and
    remembered for the endpoint."""
    words = ("Unsupported parameter: 'max_tokens' is not supported with this model. "
             "Use 'max_completion_tokens' instead.")

    def server(c: Call) -> Any:
        if "max_tokens" in c.body:
            error = openai_error(400, words, param="max_tokens", error_code="unsupported_parameter")
            return status(400, error)
        return tool_call(ADA)

    with FaultServer() as srv:
        srv.default = respond(server)
        sg = client(srv, max_tokens=300)
        assert sg.extract(Person, "Ada is 36.") == Person(**ADA)
        assert srv.model_requests[1].body["max_completion_tokens"] == 300
        assert sg.extract(Person, "Ada is 36.") == Person(**ADA)
        assert len(srv.model_requests) == 3
        assert "max_tokens" not in srv.model_requests[2].body


@pytest.mark.parametrize(("reply", "error"), [
    (status(401), RequestRejectedError),
    (status(429, openai_error(429, "Rate limit reached for tool_choice requests")), RateLimitError),
    (status(500), ServerError),
    (status(503, "tools are temporarily unavailable"), ServerError),
])
def test_faults_never_step_down(reply: Any, error: type[Exception]) -> None:
    """401, 429 and a 5xx that does not name a refused feature are faults: no step down."""
    with FaultServer() as srv:
        srv.default = reply
        with pytest.raises(error) as info:
            client(srv).extract(Person, "Ada is 36.")
        assert not isinstance(info.value, ModeUnsupportedError)
        assert info.value.trace is not None and not info.value.trace.steps  # type: ignore[attr-defined]
        assert all(r.body.get("tool_choice") == {"type": "function", "function": {"name": "Person"}}
                   for r in srv.model_requests)


def test_disk_cache_spares_the_negotiation(tmp_path: Path) -> None:
    """With mode_cache= a new process starts where the first one ended: 0 extra requests."""
    cache = tmp_path / "modes.json"

    def server(c: Call) -> Any:
        if choice(c) != "auto":
            return status(400, openai_error(400, "Only 'auto' or 'none' tool_choice is supported"))
        return tool_call(ADA)

    with FaultServer() as srv:
        srv.default = respond(server)
        client(srv, mode_cache=cache).extract(Person, "Ada is 36.")
        assert len(srv.model_requests) == 2
        stored = json.loads(cache.read_text())
        assert stored[endpoint_key(srv.base_url, "m")]["mode"] == "tools_auto"
        MEMORY.forget()  # as if a new process
        result = client(srv, mode_cache=cache).extract_result(Person, "Ada is 36.")
        assert result.attempts == 1 and len(srv.model_requests) == 3
        assert any("learned earlier" in n for n in result.trace.notes)


def test_memory_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    ModeMemory().put("k", Learned(mode="json_object", relax=("strict",)), path)
    assert ModeMemory().get("k", path) == Learned(mode="json_object", relax=("strict",))
    path.write_text("not json")
    assert ModeMemory().get("k", path) is None  # an unreadable cache costs a renegotiation, no more


def test_debug_output_shows_the_step_down(capsys: pytest.CaptureFixture[str]) -> None:
    words = "Currently tool_choice must be a named tool or 'required'"

    def server(c: Call) -> Any:
        return tool_call(ADA) if choice(c) == "required" else status(400, openai_error(400, words))

    with FaultServer() as srv:
        srv.default = respond(server)
        client(srv, debug=True).extract(Person, "Ada is 36.")
    err = " ".join(capsys.readouterr().err.split())
    assert "stepped down tools -> tools_required" in err
    assert words in err and "sk-test-modes-key-0000" not in err


def test_async_twin_negotiates_the_same_way() -> None:
    """The async driver takes the same step (vLLM Harmony's words, as above)."""
    import asyncio

    def server(c: Call) -> Any:
        if choice(c) == "auto":
            return tool_call(ADA)
        return status(400, openai_error(400, "Only 'auto' or 'none' tool_choice is supported"))

    with FaultServer() as srv:
        srv.default = respond(server)
        result = asyncio.run(client(srv).aextract_result(Person, "Ada is 36."))
        assert result.value == Person(**ADA) and result.trace.mode == "tools_auto"


def test_thinking_mode_words_of_dashscope() -> None:
    """DashScope (Qwen) in thinking mode: HTTP 400 "<400> InternalError.Algo.InvalidParameter: The
    tool_choice parameter does not support being set to required or object in thinking mode"."""
    said = ("<400> InternalError.Algo.InvalidParameter: The tool_choice parameter does not support "
            "being set to required or object in thinking mode")
    assert capability_feature(400, said) == "thinking"
    assert step_down("tools", "thinking", said) == "tools_auto"


def test_doctor_reports_the_mode_auto_picks() -> None:
    from schemagen.backends import create_backend
    from schemagen.doctor import run_doctor

    def server(c: Call) -> Any:
        if choice(c) == "auto":
            return tool_call({"name": "Paris", "country": "France"})
        return status(400, openai_error(400, "Only 'auto' or 'none' tool_choice is supported"))

    with FaultServer() as srv:
        srv.default = respond(server)
        backend = create_backend("openai", model="m", base_url=srv.base_url, api_key="x")
        report = run_doctor(backend, only=["auto-mode"], tokenizer=lambda text: len(text))
    (check,) = report.checks
    assert check.verdict == "pass" and "auto picks `tools_auto`" in check.summary
    assert "tool_choice is supported" in check.evidence[0]
    assert report.to_dict()["auto_mode"]["mode"] == "tools_auto"
    assert report.to_dict()["auto_mode"]["extra_requests"] == 1


def test_cut_while_reasoning_gets_room_once() -> None:
    """An unknown reasoning model (Qwen3 behind llama.cpp, no reasoning parser) spends the derived
    max_tokens thinking: finish_reason "length" inside "<think>". Resent once with room to reason
    (not a reask, not a TruncatedError), and remembered for the endpoint."""
    def server(c: Call) -> Any:
        if c.body["max_tokens"] < 1000:
            return content("<think>Let me think about the name. The text says Ada and",
                           finish_reason="length")
        return tool_call(ADA)

    with FaultServer() as srv:
        srv.default = respond(server)
        sg = client(srv, retries=0)
        result = sg.extract_result(Person, "Ada is 36.")
        assert result.value == Person(**ADA) and result.attempts == 2
        first, second = (r.body["max_tokens"] for r in srv.model_requests)
        assert second >= first + 8000
        assert result.trace.attempts[0].reasoning.startswith("Let me think")
        assert sg.learned() is not None and sg.learned().reasoning
        sg.extract(Person, "Ada is 36.")
        assert srv.model_requests[-1].body["max_tokens"] == second  # no second cut


def test_streamed_reasoning_content_is_kept() -> None:
    """vLLM and DeepSeek stream the reasoning as ``delta.reasoning_content`` before the call."""
    from schemagen.backends.openai_compat import StreamAccumulator, completion_from_json
    from schemagen.engine.reasoning import strip_reasoning
    from schemagen.exchange import Request

    acc = StreamAccumulator("chat", None)
    for delta in ({"reasoning_content": "Ada is "}, {"reasoning_content": "36."},
                  {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "Person",
                                                                        "arguments": json.dumps(ADA)}}]}):
        acc.add({"choices": [{"index": 0, "delta": delta}]})
    acc.usage = {"prompt_tokens": 1, "completion_tokens": 1}
    completion = completion_from_json(acc.response(Request("chat", {}), "m"), "chat")
    assert strip_reasoning(completion)[1] == "Ada is 36."


# ---------------------------------------------------------------- the template's own system prompt

SMOL_DEFAULT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


@pytest.mark.parametrize("mode", ["tools", "tools_required", "tools_auto"])
def test_tools_modes_keep_a_named_templates_own_system_prompt(mode: str) -> None:
    """Measured on the 54-text set through llama.cpp: the template's default system prompt plus
    ours scored best; ours alone, ours in the user turn, or none scored lower (docs/local.md)."""
    from schemagen.models import smollm2_gguf_path
    from schemagen.render.messages import build_messages
    from schemagen.render.templates import load_template

    spec = build_tool(Person)
    messages = build_messages(spec, "Ada, 36")
    template = load_template(str(smollm2_gguf_path()))
    named = get_mode(mode).render(RenderInput(spec, messages, "m", {}, template=template))
    system = named.request.body["messages"][0]
    assert system["role"] == "system"
    assert system["content"].startswith(SMOL_DEFAULT + "\n\n")
    assert system["content"].endswith(messages[0]["content"])
    assert any("own system prompt is kept" in note for note in named.notes)
    unnamed = get_mode(mode).render(RenderInput(spec, messages, "m", {}))
    assert unnamed.request.body["messages"][0] == messages[0]  # no template: nothing to keep


def test_a_callers_system_message_is_never_merged_with_the_templates() -> None:
    from schemagen.models import smollm2_gguf_path
    from schemagen.render.messages import build_messages
    from schemagen.render.templates import load_template

    spec = build_tool(Person)
    messages = build_messages(spec, "Ada, 36", system="Be terse.")
    template = load_template(str(smollm2_gguf_path()))
    rendered = get_mode("tools").render(RenderInput(spec, messages, "m", {}, template=template))
    assert rendered.request.body["messages"][0] == {"role": "system", "content": "Be terse."}
    raw = get_mode("raw").render(RenderInput(spec, messages, "m", {}, template=template, constrain=True))
    assert raw.prompt is not None and SMOL_DEFAULT not in raw.prompt
    assert raw.prompt.startswith("<|im_start|>system\nBe terse.<|im_end|>")
    assert "Copy values exactly from the text.\n\nText:\nAda, 36" in raw.prompt
