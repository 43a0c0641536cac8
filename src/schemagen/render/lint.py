"""Prompt lint: known ways a chat template turns a good conversation into a bad prompt.

The ``check_*`` functions work on prompt strings alone, so they apply to any rendering
(ours, or a server's). :func:`lint_prompt` renders with a template and runs them all.
Pure functions, no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from schemagen.errors import TemplateError
from schemagen.render.templates import ChatTemplate, Message, normalize_messages, with_system_block

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Finding:
    """One problem. ``code`` is stable (for tests and filters); ``evidence`` quotes the prompt."""

    code: str
    severity: Severity
    message: str
    evidence: str = ""

    def __str__(self) -> str:
        evidence = f" ({self.evidence})" if self.evidence else ""
        return f"[{self.severity}] {self.code}: {self.message}{evidence}"


_EVIDENCE_CHARS = 80

# A content-parts list printed with Python or JSON quoting: [{'type': 'text', ...
_PARTS_LITERAL = re.compile(r"""\[\s*\{\s*['"]type['"]\s*:\s*['"][a-z_]+['"]""")
# `None` or `[]` standing alone where a turn's text should be: between markers or on its own line.
_BARE_LITERAL = re.compile(r"(?:^|(?<=[>\]|]))[ \t]*(None|\[\])[ \t]*(?=$|[<\[])", re.MULTILINE)


def _tail(text: str) -> str:
    return repr(text[-_EVIDENCE_CHARS:])


def _around(text: str, start: int, end: int) -> str:
    margin = (_EVIDENCE_CHARS - (end - start)) // 2
    return repr(text[max(0, start - max(margin, 10)): end + max(margin, 10)])


# --------------------------------------------------------------------------- string checks


def generation_prompt_between(with_prompt: str, without_prompt: str) -> str:
    """The text ``add_generation_prompt=True`` added: what follows the common prefix."""
    common = 0
    for a, b in zip(with_prompt, without_prompt, strict=False):
        if a != b:
            break
        common += 1
    return with_prompt[common:]


def check_generation_prompt(prompt: str, generation_prompt: str) -> list[Finding]:
    """Does ``prompt`` end with ``generation_prompt`` (the assistant header)?

    An empty ``generation_prompt`` means the template ignores ``add_generation_prompt``.
    """
    if not generation_prompt:
        return [Finding(
            "generation-prompt-empty", "error",
            "the template adds nothing when add_generation_prompt=True, so the prompt ends inside the "
            "last turn and the model continues it instead of answering",
            _tail(prompt),
        )]
    if prompt.endswith(generation_prompt):
        return []
    if prompt.rstrip().endswith(generation_prompt.rstrip()):
        return [Finding(
            "generation-prompt-whitespace", "warning",
            f"the prompt ends with the generation prompt {generation_prompt!r} but its trailing whitespace "
            "differs, which changes the tokens the model is conditioned on",
            _tail(prompt),
        )]
    return [Finding(
        "no-generation-prompt", "error",
        f"the prompt does not end with the generation prompt {generation_prompt!r}; the model would "
        "continue the last turn instead of answering",
        _tail(prompt),
    )]


def _bare_literals(text: str) -> list[re.Match[str]]:
    return list(_BARE_LITERAL.finditer(text))


def check_content_literals(prompt: str, messages: Sequence[Message] | None = None) -> list[Finding]:
    """Content printed as a Python/JSON list of parts, or as a bare ``None``/``[]``.

    With ``messages`` (normalised), occurrences that the messages' own text explains are not
    counted, so a user who really wrote "None" is not flagged.
    """
    findings: list[Finding] = []
    own_text: list[str] = [m["content"] for m in (messages or []) if isinstance(m.get("content"), str)]
    parts = list(_PARTS_LITERAL.finditer(prompt))
    if len(parts) > sum(len(_PARTS_LITERAL.findall(text)) for text in own_text):
        match = parts[0]
        findings.append(Finding(
            "content-list-literal", "error",
            "message content was printed as a list of parts instead of its text",
            _around(prompt, match.start(), match.end()),
        ))
    for literal, code in (("None", "content-none-literal"), ("[]", "content-empty-list-literal")):
        hits = [m for m in _bare_literals(prompt) if m.group(1) == literal]
        explained = sum(1 for text in own_text for m in _bare_literals(text) if m.group(1) == literal)
        if len(hits) > explained:
            match = hits[0]
            findings.append(Finding(
                code, "error",
                f"empty message content was printed as {literal!r} instead of nothing",
                _around(prompt, match.start(1), match.end(1)),
            ))
    return findings


def check_double_bos(prompt: str, bos_token: str, *, tokenizer_adds_bos: bool | None = None) -> list[Finding]:
    """BOS written twice at the start, or written once by a template whose tokenizer adds one."""
    if not bos_token or not prompt.startswith(bos_token):
        return []
    rest = prompt[len(bos_token):]
    if rest.lstrip().startswith(bos_token):
        return [Finding(
            "double-bos", "error",
            f"the prompt starts with the BOS token {bos_token!r} twice",
            _around(prompt, 0, 2 * len(bos_token)),
        )]
    if tokenizer_adds_bos:
        return [Finding(
            "double-bos", "warning",
            f"the template writes the BOS token {bos_token!r} and the tokenizer adds one too, so a "
            "prompt tokenised with special tokens (e.g. raw /v1/completions) starts with two",
            _around(prompt, 0, len(bos_token)),
        )]
    return []


def _tool_function(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    function = tool.get("function")
    return function if isinstance(function, Mapping) else tool


def check_tools_present(prompt: str, tools: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """Every tool's name should appear in a prompt rendered with those tools."""
    missing = [
        str(_tool_function(tool).get("name")) for tool in tools
        if _tool_function(tool).get("name") and str(_tool_function(tool).get("name")) not in prompt
    ]
    if not missing:
        return []
    return [Finding(
        "tools-ignored", "error",
        f"the prompt does not mention the tool(s) {', '.join(missing)}; the model cannot know their schema",
        _tail(prompt),
    )]


# --------------------------------------------------------------------------- template checks


def generation_prompt(
    template: ChatTemplate,
    messages: Sequence[Message],
    tools: Sequence[Mapping[str, Any]] | None = None,
    **extra: Any,
) -> str:
    """The assistant header ``template`` appends for ``messages`` ('' if it appends none)."""
    with_prompt = template.render(messages, tools=tools, add_generation_prompt=True, **extra)
    without_prompt = template.render(messages, tools=tools, add_generation_prompt=False, **extra)
    return generation_prompt_between(with_prompt, without_prompt)


def template_ignores_tools(
    template: ChatTemplate, messages: Sequence[Message], tools: Sequence[Mapping[str, Any]], **extra: Any
) -> bool:
    """True when rendering with ``tools`` gives the same text as without them."""
    return template.render(messages, tools=tools, **extra) == template.render(messages, tools=None, **extra)


def inject_tools_into_system(
    messages: Sequence[Message], tools: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Messages with the tools described in the system message, for templates that ignore
    ``tools``. The reply format asked for is ``{"name": ..., "arguments": {...}}`` (the ``json``
    parser reads it). A system message is added when there is none; the input is not modified.
    """
    if not tools:
        return [dict(m) for m in messages]
    described = "\n".join(
        json.dumps(
            {key: _tool_function(tool)[key] for key in ("name", "description", "parameters")
             if key in _tool_function(tool)},
            ensure_ascii=False,
        )
        for tool in tools
    )
    block = (
        "You can call the following tools. Each line describes one tool and the JSON schema of its "
        f"arguments:\n<tools>\n{described}\n</tools>\n"
        'To call a tool, reply with only a JSON object of the form {"name": "<tool name>", '
        '"arguments": {...}} whose arguments match the schema, and nothing else.'
    )
    return with_system_block(messages, block)


def lint_prompt(
    template: ChatTemplate,
    messages: Sequence[Message],
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    prompt: str | None = None,
    **extra: Any,
) -> list[Finding]:
    """Everything wrong with the prompt for ``messages`` under ``template``.

    ``prompt`` is the prompt actually sent (e.g. a server's own rendering); by default the
    template's rendering with normalised messages, which is what schemagen sends in raw mode.
    The messages are also rendered unnormalised, as a chat server passing them through would,
    and problems only that rendering has are reported as warnings. ``extra`` reaches the
    template as variables, as in :meth:`ChatTemplate.render`.
    """
    findings: list[Finding] = []
    normalized = normalize_messages(messages)
    with_prompt = template.render(messages, tools=tools, add_generation_prompt=True, **extra)
    without_prompt = template.render(messages, tools=tools, add_generation_prompt=False, **extra)
    checked = with_prompt if prompt is None else prompt

    findings += check_generation_prompt(checked, generation_prompt_between(with_prompt, without_prompt))
    findings += check_content_literals(checked, normalized)

    try:
        passed_through = template.render(messages, tools=tools, normalize=False, **extra)
    except TemplateError as exc:
        findings.append(Finding(
            "unnormalized-render-fails", "warning",
            "the messages as given make the template fail; schemagen normalises them, but a server "
            "rendering them unchanged would reject the request",
            str(exc)[:200],
        ))
    else:
        seen = {f.code for f in findings}
        for found in check_content_literals(passed_through, normalized):
            if found.code not in seen:
                findings.append(Finding(
                    found.code, "warning",
                    f"{found.message} when the messages are rendered unnormalised, as a chat server "
                    "passing them through would",
                    found.evidence,
                ))

    if tools:
        if template_ignores_tools(template, messages, tools, **extra):
            findings.append(Finding(
                "tools-ignored", "error",
                "the template renders the same prompt with and without tools, so the model never sees "
                "the tool schema; inject it into the system message instead (inject_tools_into_system)",
                _tail(with_prompt),
            ))
        elif prompt is not None:
            findings += check_tools_present(prompt, tools)

    findings += check_double_bos(checked, template.bos_token, tokenizer_adds_bos=template.tokenizer_adds_bos)
    return findings


__all__ = [
    "Finding",
    "Severity",
    "check_content_literals",
    "check_double_bos",
    "check_generation_prompt",
    "check_tools_present",
    "generation_prompt",
    "generation_prompt_between",
    "inject_tools_into_system",
    "lint_prompt",
    "template_ignores_tools",
]
