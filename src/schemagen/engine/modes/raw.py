"""Raw mode: render the prompt here with the model's chat template, complete it on
``/v1/completions``, and read the call back with the native tool-call parsers.

A chat server does the same three steps out of sight: expand the conversation into one
prompt, complete it, parse tool calls out of the text. Doing the expansion and the parse
here puts the exact prompt and the raw completion in the trace, and takes the server's
template handling and tool parser out of the path.

Rendering: always with the generation prompt; messages normalised (empty content is
nothing, tool-call arguments are dicts); a template that ignores ``tools`` gets the tool
schema in the system message; a template that can't print tool calls gets earlier calls
and their results (examples, reasks) as plain text. With ``constrain`` (a backend that
enforces a JSON schema itself) the output is the arguments alone, so the prompt asks for
exactly that and ``Request.constraint`` carries the schema.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from schemagen.engine.modes.base import Rendered, RenderInput
from schemagen.errors import ConfigurationError, TemplateError
from schemagen.exchange import Completion, Request
from schemagen.parse.formats import ParseReport
from schemagen.parse.jsonfix import NotJSON, loads_lenient
from schemagen.parse.recover import NoToolCall, Recovered, recover_from_text
from schemagen.render.lint import (
    Finding,
    check_content_literals,
    check_double_bos,
    check_generation_prompt,
    generation_prompt_between,
    inject_tools_into_system,
    template_ignores_tools,
)
from schemagen.render.messages import EXAMPLE_CALL_ID, after_native_system, is_default_system
from schemagen.render.templates import ChatTemplate, default_system_prompt, load_template, normalize_messages
from schemagen.schema import ToolSpec

#: vLLM/SGLang extensions to /v1/completions: the prompt already holds its special tokens
#: (BOS included, if the template writes one), and markers such as ``[TOOL_CALLS]`` must
#: survive detokenisation for the parsers to see them. Servers that ignore unknown fields
#: are unaffected; one that rejects them gets the request again without them (see
#: ``backends.openai_compat.OPTIONAL_FIELDS``). Pass ``add_special_tokens=None`` to leave one out.
SPECIAL_TOKEN_FIELDS: dict[str, Any] = {"add_special_tokens": False, "skip_special_tokens": False}

NEEDS_TEMPLATE = (
    "mode='raw' renders the prompt locally and needs the model's chat template: pass template= "
    "(a .gguf file, a Hugging Face model folder or tokenizer_config.json, or a Jinja file)"
)

_PROBE_NAME = "schemagen_probe_tool"
_PROBE_KEY = "schemagen_probe_key"
_PROBE_RESULT = "schemagen_probe_result"
_PROBE_TOOLS = [{"type": "function", "function": {
    "name": _PROBE_NAME, "description": "probe", "parameters": {"type": "object", "properties": {}},
}}]
_SENTINEL = "schemagen_end_of_turn_probe"


@dataclass(frozen=True)
class RawPrompt:
    """The exact prompt raw mode sends, what it was rendered from, and what was done to get it."""

    text: str
    messages: list[dict[str, Any]]  # as handed to the template
    tools: list[dict[str, Any]] | None
    notes: tuple[str, ...]
    findings: tuple[Finding, ...]  # lint of ``text``


# --------------------------------------------------------------------------- template probes


@functools.lru_cache(maxsize=32)
def renders_tool_calls(template: ChatTemplate) -> bool:
    """Does the template print an assistant turn's tool calls (SmolLM2's, for one, drops them)?"""
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "", "tool_calls": [{
            "id": "call_probe", "type": "function",
            "function": {"name": _PROBE_NAME, "arguments": {_PROBE_KEY: 1}},
        }]},
        {"role": "tool", "tool_call_id": "call_probe", "content": _PROBE_RESULT},
    ]
    try:
        text = template.render(messages, tools=_PROBE_TOOLS, add_generation_prompt=False)
    except TemplateError:
        return False
    return _PROBE_KEY in text and _PROBE_RESULT in text


@functools.lru_cache(maxsize=32)
def end_of_turn(template: ChatTemplate) -> str | None:
    """The marker the template closes an assistant turn with (``<|im_end|>``, ``<|eot_id|>``), used
    as a stop string so that a model that keeps going after its answer is cut at the turn's end.
    None when the template ends turns with plain text or whitespace (a stop there could cut JSON)."""
    try:
        text = template.render(
            [{"role": "user", "content": "x"}, {"role": "assistant", "content": _SENTINEL}],
            add_generation_prompt=False,
        )
    except TemplateError:
        return None
    if _SENTINEL not in text:
        return None
    after = text.rsplit(_SENTINEL, 1)[1].strip()
    marker = after.split()[0] if after else ""
    if marker and marker[0] in "<[" and len(marker) <= 40:
        return marker
    return None


# --------------------------------------------------------------------------- message rewrites


def _call_text(call: Mapping[str, Any], *, envelope: bool) -> str:
    function = call.get("function") if isinstance(call.get("function"), Mapping) else call
    assert isinstance(function, Mapping)
    arguments = function.get("arguments")
    if not envelope:
        return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return json.dumps({"name": function.get("name"), "arguments": arguments}, ensure_ascii=False)


def has_tool_turns(messages: Sequence[Mapping[str, Any]]) -> bool:
    return any(m.get("tool_calls") or m.get("role") == "tool" for m in messages)


def lower_tool_turns(messages: Sequence[Mapping[str, Any]], *, envelope: bool = True) -> list[dict[str, Any]]:
    """Tool calls as assistant text and tool results as user text, for templates that can't print
    them. ``envelope``: write a call as ``{"name": ..., "arguments": ...}`` (the format the
    injected tool description asks for), else the arguments alone (constrained output).
    Consecutive turns of one role are merged, so templates that insist on alternation accept them."""
    out: list[dict[str, Any]] = []
    for message in normalize_messages(messages):
        role = message.get("role")
        content = message.get("content") or ""
        if message.get("tool_calls"):
            calls = "\n".join(_call_text(call, envelope=envelope) for call in message["tool_calls"])
            content = f"{content}\n{calls}" if content else calls
            message = {"role": "assistant", "content": content}
        elif role == "tool":
            message = {"role": "user", "content": f"Tool result:\n{content}"}
        if out and out[-1]["role"] == message["role"] and message["role"] in ("user", "assistant"):
            out[-1] = {**out[-1], "content": f"{out[-1]['content']}\n\n{message['content']}"}
        else:
            out.append(dict(message))
    return out


def constrained_instruction(spec: ToolSpec) -> str:
    """The instruction for output a grammar enforces: no schema (the grammar holds the shape, and
    a small model copies schema text into values), the description, and "copy" (see docs/local.md)."""
    return (f"Extract the {spec.name} ({spec.description.strip()}) from the text as JSON. "
            "Copy values exactly from the text.")


def place_instruction(
    messages: Sequence[Mapping[str, Any]], spec: ToolSpec, template: ChatTemplate, *, constrain: bool,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Put schemagen's instruction in the system turn, after the template's own system prompt
    rather than in its place (docs/local.md has the measurement).

    Constrained output gets :func:`constrained_instruction`; otherwise our default system
    message is kept as written. A caller's ``system=`` stays as the caller wrote it; with
    constrained output the instruction then opens each input turn instead.
    """
    out = normalize_messages(messages)
    ours = bool(out) and is_default_system(out[0], spec)
    theirs = bool(out) and out[0].get("role") == "system" and not ours
    if theirs:
        if not constrain:
            return out, []
        instruction = constrained_instruction(spec)
        for message in out:
            content = str(message.get("content") or "")
            if message.get("role") == "user" and not content.startswith("Tool result:"):
                message["content"] = f"{instruction}\n\nText:\n{content}"
        return out, []
    if not (ours or constrain):
        return out, []
    instruction = constrained_instruction(spec) if constrain else str(out[0]["content"])
    native = default_system_prompt(template)
    notes = []
    if native:
        notes.append(f"the chat template's own system prompt is kept ({native[:60]!r}); schemagen's "
                     "instruction follows it in the system turn")
    return after_native_system(out, native, instruction), notes


def _fold_system(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    """The system message prepended to the first user turn, for templates that refuse a system role."""
    out = [dict(m) for m in messages]
    if not out or out[0].get("role") != "system":
        return None
    system = out.pop(0)
    for message in out:
        if message.get("role") == "user":
            message["content"] = f"{system['content']}\n\n{message['content']}"
            return out
    return [{"role": "user", "content": system["content"]}, *out]


# --------------------------------------------------------------------------- the prompt


def lint_raw_prompt(
    template: ChatTemplate, messages: Sequence[Mapping[str, Any]], text: str,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> list[Finding]:
    """Lint's string checks on the prompt raw mode sends (``messages`` as given to the template)."""
    without = template.render(messages, tools=tools, add_generation_prompt=False)
    findings = check_generation_prompt(text, generation_prompt_between(text, without))
    findings += check_content_literals(text, normalize_messages(messages))
    findings += check_double_bos(text, template.bos_token, tokenizer_adds_bos=template.tokenizer_adds_bos)
    return findings


def build_prompt(
    template: ChatTemplate, spec: ToolSpec, messages: Sequence[Mapping[str, Any]], *, constrain: bool = False,
) -> RawPrompt:
    """The exact prompt for ``messages`` under ``template``, as raw mode sends it."""
    notes: list[str] = []
    tools = None if constrain else [spec.tool]
    rendered = normalize_messages(messages)
    if constrain:  # an example's "Recorded." result says nothing when the output is bare JSON
        rendered = [m for m in rendered if not str(m.get("tool_call_id") or "").startswith(EXAMPLE_CALL_ID)]
    if has_tool_turns(rendered) and (constrain or not renders_tool_calls(template)):
        rendered = lower_tool_turns(rendered, envelope=not constrain)
        notes.append("earlier tool calls and their results are written as plain assistant/user text"
                     + (" (constrained output is the arguments alone)" if constrain
                        else ": the chat template does not print tool calls"))
    rendered, placed = place_instruction(rendered, spec, template, constrain=constrain)
    notes += placed
    if constrain:
        notes.append("constrained output: the instruction names no schema; the grammar holds it "
                     "(Request.constraint) and the completion is read as plain JSON")
    fold = False
    try:
        template.render(rendered, tools=tools)
    except TemplateError:
        folded = _fold_system(rendered)
        if folded is None:
            raise
        template.render(folded, tools=tools)  # still failing: the template's own error is the clearest
        fold = True
        notes.append("the chat template refused the system message; it was folded into the first user turn")
    probe = (_fold_system(rendered) or rendered) if fold else rendered
    if not constrain and template_ignores_tools(template, probe, tools or []):
        native = default_system_prompt(template)
        if native and rendered and rendered[0].get("role") != "system":
            rendered = [{"role": "system", "content": native}, *rendered]  # keep it, add the tools to it
        rendered = inject_tools_into_system(rendered, tools or [])
        notes.append("the chat template ignores `tools`: the tool schema was injected into the system "
                     "message (lint.inject_tools_into_system)")
    if fold:
        rendered = _fold_system(rendered) or rendered
    text = template.render(rendered, tools=tools, add_generation_prompt=True)
    findings = lint_raw_prompt(template, rendered, text, tools)
    notes += [f"lint: {finding}" for finding in findings]
    return RawPrompt(text, rendered, tools, tuple(notes), tuple(findings))


def parsers_tried(reports: Sequence[ParseReport]) -> str:
    """One line: which parsers looked at the text and what each made of it."""
    parts = []
    for report in reports:
        if report.calls:
            parts.append(f"{report.parser} ({len(report.calls)} call{'s' * (len(report.calls) != 1)})")
        else:
            why = report.skipped[0] if report.skipped else "nothing found"
            parts.append(f"{report.parser} (nothing: {why})")
    return "parsers tried: " + "; ".join(parts) if parts else "parsers tried: none"


class RawMode:
    name = "raw"
    endpoint = "completions"

    def render(self, inp: RenderInput) -> Rendered:
        if inp.template is None:
            raise ConfigurationError(NEEDS_TEMPLATE)
        template = inp.template if isinstance(inp.template, ChatTemplate) else load_template(inp.template)
        prompt = build_prompt(template, inp.spec, inp.messages, constrain=inp.constrain)
        body: dict[str, Any] = {"model": inp.model, "prompt": prompt.text, **SPECIAL_TOKEN_FIELDS}
        stop = None if inp.constrain else end_of_turn(template)
        if stop:
            body["stop"] = [stop]
        body.update(inp.params)
        body = {k: v for k, v in body.items() if v is not None}
        constraint = inp.spec.constraint if inp.constrain else None
        request = Request(endpoint="completions", body=body, constraint=constraint)
        return Rendered(request, prompt=prompt.text, notes=prompt.notes)

    def recover(self, spec: ToolSpec, completion: Completion, request: Request | None = None) -> Recovered:
        text = completion.text
        if request is not None and request.constraint is not None:
            try:
                decoded = loads_lenient(text)
            except NotJSON as exc:
                raise NoToolCall(f"the constrained output is not JSON: {exc}") from exc
            raw = json.dumps(decoded.value, ensure_ascii=False)
            return Recovered(decoded.value, "content:constrained", raw, list(decoded.notes))
        if not text.strip():
            raise NoToolCall("the completion is empty")
        found = recover_from_text(spec, text)
        # The reask shows the model its failed call: the arguments as read, not the whole text.
        raw = json.dumps(found.arguments, ensure_ascii=False)
        return Recovered(found.arguments, found.source, raw, [parsers_tried(found.reports), *found.notes],
                         found.reports)


MODE = RawMode()

__all__ = [
    "MODE",
    "NEEDS_TEMPLATE",
    "SPECIAL_TOKEN_FIELDS",
    "RawMode",
    "RawPrompt",
    "build_prompt",
    "constrained_instruction",
    "default_system_prompt",
    "end_of_turn",
    "lint_raw_prompt",
    "lower_tool_turns",
    "parsers_tried",
    "place_instruction",
    "renders_tool_calls",
]
