"""``schemagen doctor``: the pure judges, a scripted server with and without the empty-content
bug, the CLI, and a run against the real llama.cpp server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from schemagen.backends import create_backend
from schemagen.cli.main import app
from schemagen.doctor import (
    CHECKS,
    Doctor,
    DoctorCity,
    Tokenizer,
    judge_empty_content,
    judge_finish_reason,
    judge_forced_tool,
    judge_generation_prompt,
    judge_markup_leak,
    judge_parity,
    judge_tools_injected,
)
from schemagen.errors import ServerError
from schemagen.exchange import Completion, ToolCall, Usage
from schemagen.render.templates import ChatTemplate
from schemagen.schema import build_tool
from schemagen.testing import Behaviour, Call, FaultServer, completion_text, content, tool_call, truncated
from schemagen.testing.llama import LlamaServer

SPEC = build_tool(DoctorCity, False)
GOOD_ARGS = {"name": "Paris", "country": "France"}
# Prints content as it comes and the tools as JSON: a content list reaches the prompt literally.
NAIVE = (
    "{% if tools %}<|im_start|>system\n{{ tools | tojson }}<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CHARS = Tokenizer(len, "chars", adds_bos=False)  # one token a character: exact for scripted counts
IDS = [check_id for check_id, _ in CHECKS]


def call(args: Any = GOOD_ARGS, finish: str = "tool_calls", name: str = "DoctorCity") -> Completion:
    text = args if isinstance(args, str) else json.dumps(args)
    return Completion(tool_calls=(ToolCall(name, text, "c"),), finish_reason=finish)


# --------------------------------------------------------------------------- pure judges


def test_forced_tool_judge() -> None:
    assert judge_forced_tool(SPEC, [call(), call()]).verdict == "pass"
    bad = judge_forced_tool(SPEC, [call(), Completion(content="Hello!"), call('{"name": 1}'), call("{x")])
    assert bad.verdict == "fail" and bad.summary.startswith("3 of 4")
    assert "no tool_calls" in bad.evidence[1] and "fail the schema" in bad.evidence[2]
    assert "not JSON" in bad.evidence[3]
    assert judge_forced_tool(SPEC, []).verdict == "skip"


def test_forced_tool_sample_cut_by_max_tokens_is_inconclusive() -> None:
    # llama-cpp-python says "tool_calls" even when max_tokens cut the arguments: count the tokens.
    cut = Completion(tool_calls=(ToolCall("DoctorCity", '{"name": "Hi th', "c"),), finish_reason="tool_calls",
                     usage=Usage(completion_tokens=48, requests=1))
    assert judge_forced_tool(SPEC, [cut], max_tokens=48).verdict == "skip"
    mixed = judge_forced_tool(SPEC, [cut, call()], max_tokens=48)
    assert mixed.verdict == "pass" and "(1 cut off, not judged)" in mixed.summary
    assert judge_forced_tool(SPEC, [cut], max_tokens=200).verdict == "fail"


def test_parity_judge() -> None:
    assert judge_parity(call(), Completion(content="x"), GOOD_ARGS, None).verdict == "pass"
    dropped = judge_parity(Completion(content="<tool_call>..."), Completion(content="x"), GOOD_ARGS, None)
    assert dropped.verdict == "fail" and "raw mode recovered a call" in dropped.summary
    differ = judge_parity(call(), Completion(content="x"), {"name": "Rome", "country": "Italy"}, None)
    assert differ.verdict == "fail" and "Rome" in differ.evidence[1]


def test_generation_prompt_judge_text_and_counts() -> None:
    gen = "<|im_start|>assistant\n"
    assert judge_generation_prompt(generation_prompt=gen, server_prompt="x" + gen).verdict == "pass"
    missing = judge_generation_prompt(generation_prompt=gen, server_prompt="x<|im_end|>\n")
    assert missing.verdict == "fail" and "no-generation-prompt" in " ".join(missing.evidence)
    counts = {"local_with": 40, "local_without": 36}
    assert judge_generation_prompt(generation_prompt=gen, server_tokens=40, **counts).verdict == "pass"
    with_bos = judge_generation_prompt(generation_prompt=gen, server_tokens=41, bos_slack=1, **counts)
    assert with_bos.verdict == "pass" and "BOS" in with_bos.summary
    no_gen = judge_generation_prompt(generation_prompt=gen, server_tokens=36, **counts)
    assert no_gen.verdict == "fail" and "without the generation prompt" in no_gen.summary
    other = judge_generation_prompt(generation_prompt=gen, server_tokens=52, **counts)
    assert other.verdict == "fail" and "+12 tokens off" in other.summary
    assert judge_generation_prompt(generation_prompt=gen).verdict == "skip"


def test_empty_content_judge() -> None:
    same = judge_empty_content(server_empty=50, server_ref=51, local_empty=49, local_ref=50)
    assert same.verdict == "pass"  # a constant offset (BOS) is not the empty content's doing
    wrapped = judge_empty_content(server_empty=62, server_ref=51, local_empty=49, local_ref=50,
                                  variants={"[{'type': 'text', 'text': ''}]": 61, "None": 50})
    assert wrapped.verdict == "fail" and "+12" in wrapped.summary
    assert any("prints the content as [{'type'" in e for e in wrapped.evidence)
    assert not any("as None" in e for e in wrapped.evidence)
    assert judge_empty_content(server_empty=62, server_ref=51).verdict == "fail"  # heuristic, no template
    assert judge_empty_content(server_empty=50, server_ref=51).verdict == "skip"
    printed = "<|im_start|>assistant\n[{'type': 'text', 'text': ''}]<|im_end|>"
    text = judge_empty_content(server_empty=None, server_ref=None, server_prompt=printed)
    assert text.verdict == "fail" and "content-list-literal" in text.evidence[0]


def test_tools_injected_judge() -> None:
    assert judge_tools_injected(with_tools=90, without_tools=40).verdict == "pass"
    ignored = judge_tools_injected(with_tools=40, without_tools=40)
    assert ignored.verdict == "fail" and "40 with the tool, 40 without" in ignored.evidence[0]
    assert judge_tools_injected(with_tools=None, without_tools=None).verdict == "skip"
    assert judge_tools_injected(with_tools=None, without_tools=None, server_prompt="no tools here",
                                tools=[SPEC.tool]).verdict == "fail"


def test_markup_leak_judge() -> None:
    leak = Completion(content='<tool_call>\n{"name": "DoctorCity", "arguments": {"name": "Paris"}}')
    json_args = Completion(content='Here: {"name": "Paris", "country": "France"}')
    prose = Completion(content="Paris is in France.")
    result = judge_markup_leak(SPEC, [("a", call()), ("b", leak), ("c", json_args), ("d", prose)])
    assert result.verdict == "fail" and result.summary.startswith("2 of 4")
    assert "hermes markup" in result.evidence[1] and "arguments as JSON" in result.evidence[2]
    assert judge_markup_leak(SPEC, [("a", call()), ("d", prose)]).verdict == "pass"
    assert judge_markup_leak(SPEC, [("a", ServerError("down"))]).verdict == "skip"


def test_finish_reason_judge() -> None:
    assert judge_finish_reason(SPEC, call(), call('{"na', finish="length")).verdict == "pass"
    assert judge_finish_reason(SPEC, call(finish="stop"), Completion(content='{"', finish_reason="length")
                               ).verdict == "pass"
    lying = judge_finish_reason(SPEC, call(), call('{ "', finish="tool_calls"))
    assert lying.verdict == "fail" and "not 'length'" in lying.summary
    odd = judge_finish_reason(SPEC, call(finish="length"), call('{"na', finish="length"))
    assert odd.verdict == "fail" and "complete call ended" in odd.summary


# --------------------------------------------------------------------------- a scripted server


class TemplatedServer:
    """Answers like a chat server that renders with NAIVE and reports prompt_tokens from that
    rendering. ``wrap_empty``: it first turns content '' into [{'type': 'text', 'text': ''}], as
    servers that normalise to content parts do, so the list is printed literally (field case 2)."""

    def __init__(self, *, wrap_empty: bool) -> None:
        self.template = ChatTemplate.from_string(NAIVE)
        self.wrap_empty = wrap_empty

    def prompt_tokens(self, body: dict[str, Any]) -> int:
        messages = [dict(m) for m in body["messages"]]
        if self.wrap_empty:
            for m in messages:
                if m.get("content") == "":
                    m["content"] = [{"type": "text", "text": ""}]
        text = self.template.render(messages, tools=body.get("tools"), normalize=not self.wrap_empty)
        return len(text)

    def __call__(self, c: Call) -> Behaviour:
        if c.endpoint == "completions":
            return completion_text(json.dumps({"name": "DoctorCity", "arguments": GOOD_ARGS}))
        usage = {"prompt_tokens": self.prompt_tokens(c.body)}
        if not isinstance(c.body.get("tool_choice"), dict):
            return content("Paris is in France.", usage=usage)
        if c.body.get("max_tokens", 100) <= 3:
            return truncated('{"na', usage=usage)
        return tool_call(GOOD_ARGS, usage=usage)


@pytest.fixture
def good_server() -> Iterator[FaultServer]:
    with FaultServer(default=TemplatedServer(wrap_empty=False)) as srv:
        yield srv


@pytest.fixture
def wrapping_server() -> Iterator[FaultServer]:
    with FaultServer(default=TemplatedServer(wrap_empty=True)) as srv:
        yield srv


def doctor_for(server: FaultServer, **kw: Any) -> Doctor:
    backend = create_backend("openai", model="scripted", base_url=server.base_url, api_key="x")
    return Doctor(backend, template=ChatTemplate.from_string(NAIVE), tokenizer=CHARS, **kw)


def test_conforming_server_passes_every_check(good_server: FaultServer) -> None:
    report = doctor_for(good_server, samples=2).run()
    assert [c.id for c in report.checks] == IDS
    assert {c.id: c.verdict for c in report.checks} == dict.fromkeys(IDS, "pass"), report.to_dict()
    assert report.ok and all(c.evidence for c in report.checks)
    # The routes outside the OpenAI API were asked for and were absent (404), so counts were used.
    paths = {r.path for r in good_server.requests}
    assert {"/apply-template", "/tokenize", "/v1/completions", "/v1/chat/completions"} <= paths


def test_field_case_empty_content_wrapped_in_a_list_is_flagged(wrapping_server: FaultServer) -> None:
    report = doctor_for(wrapping_server, samples=1).run()
    verdicts = {c.id: c.verdict for c in report.checks}
    assert verdicts["empty-content"] == "fail"
    assert [v for k, v in verdicts.items() if k != "empty-content"] == ["pass"] * (len(IDS) - 1)
    empty = next(c for c in report.checks if c.id == "empty-content")
    literal = str([{"type": "text", "text": ""}])  # what the server printed, one token a character
    assert f"costs the server +{len(literal)} tokens more" in empty.summary
    assert any("prints the content as [{'type': 'text', 'text': ''}]" in e for e in empty.evidence)
    assert "content null" in empty.fix and not report.ok
    # What the server was sent: '' next to tool_calls, exactly as the check describes.
    sent = [r.body for r in wrapping_server.model_requests
            if any(m.get("tool_calls") for m in r.body.get("messages", []))]
    assert sent and sent[0]["messages"][2]["content"] == ""


runner = CliRunner()


def test_cli_doctor_table_and_json(wrapping_server: FaultServer) -> None:
    args = ["doctor", "--base-url", wrapping_server.base_url, "--model", "scripted", "--template", NAIVE,
            "--tokenizer", "server", "--samples", "1"]
    table = runner.invoke(app, args, env={"OPENAI_API_KEY": "x", "COLUMNS": "200"})
    assert table.exit_code == 1, table.output
    for check_id in IDS:
        assert check_id in table.stdout
    assert "PASS" in table.stdout and "FAIL" in table.stdout
    # No tokenize route on this server: the exact comparison is skipped, the heuristic still fails it.
    data = json.loads(runner.invoke(app, [*args, "--json", "--check", "empty-content"],
                                    env={"OPENAI_API_KEY": "x"}).stdout)
    assert data["ok"] is False and data["tokenizer"] is None
    assert [(c["id"], c["verdict"]) for c in data["checks"]] == [("empty-content", "fail")]
    assert "more prompt tokens than content 'OK'" in data["checks"][0]["summary"]


def test_cli_doctor_unknown_check_is_a_usage_error() -> None:
    result = runner.invoke(app, ["doctor", "--base-url", "http://127.0.0.1:9/v1", "--check", "nope"])
    assert result.exit_code == 2 and "unknown check" in result.stderr


def test_without_template_template_checks_skip(good_server: FaultServer) -> None:
    backend = create_backend("openai", model="scripted", base_url=good_server.base_url, api_key="x")
    report = Doctor(backend, tokenizer="none", samples=1).run()
    verdicts = {c.id: c.verdict for c in report.checks}
    assert verdicts["chat-raw-parity"] == "skip" and verdicts["generation-prompt"] == "skip"
    assert verdicts["empty-content"] == "skip"  # heuristic found nothing, no exact comparison possible
    assert verdicts["tools-injected"] == "pass"
    skipped = [c for c in report.checks if c.verdict == "skip"]
    assert all(c.summary for c in skipped)


# --------------------------------------------------------------------------- real llama.cpp server


@pytest.mark.llama
def test_doctor_against_llama_cpp(llama_server: LlamaServer) -> None:
    result = runner.invoke(app, [
        "doctor", "--base-url", llama_server.base_url, "--model", "smollm2", "--template",
        str(llama_server.model_path), "--samples", "1", "--max-tokens", "24", "--json",
    ], env={"OPENAI_API_KEY": "x"})
    data = json.loads(result.stdout)
    checks = {c["id"]: c for c in data["checks"]}
    assert list(checks) == IDS
    for check in checks.values():
        assert check["verdict"] in ("pass", "fail", "skip")
        assert check["summary"]
        assert check["evidence"], check
    assert data["tokenizer"].startswith("gguf:")
    # llama-cpp-python renders SmolLM2's template, which ignores tools: a real finding.
    assert checks["tools-injected"]["verdict"] == "fail"
    assert checks["tools-injected"]["evidence"][0].startswith("prompt_tokens:")
    # The server's prompt and the local render agree token for token.
    assert checks["generation-prompt"]["verdict"] == "pass"
    assert checks["empty-content"]["verdict"] == "pass"
    assert result.exit_code == 1


def test_check_registry_one_module_per_check() -> None:
    from schemagen.doctor import REGISTRY, get_check
    from schemagen.errors import ConfigurationError

    assert [check_id for check_id, _ in CHECKS] == list(REGISTRY)
    for check_id, module in REGISTRY.items():
        check = get_check(check_id)
        assert check.id == check_id and check.run.__module__ == module and check.title
    with pytest.raises(ConfigurationError, match="Known checks: forced-tool"):
        get_check("no-such-check")
