"""``tools-injected``: ``prompt_tokens`` with tools > without: the model sees the schema."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from schemagen.doctor.checks.base import CALL_PROMPT, Check, judge_server_prompt
from schemagen.doctor.report import CheckResult
from schemagen.render.lint import check_tools_present

if TYPE_CHECKING:
    from schemagen.doctor.session import Doctor


def judge_tools_injected(
    *,
    with_tools: int | None,
    without_tools: int | None,
    server_prompt: str | None = None,
    tools: Sequence[Mapping[str, Any]] = (),
    how: str = "",
) -> CheckResult:
    fix = (
        "The server's chat template ignores `tools`, so the model never sees the schema (a grammar may "
        "still force the shape, but field meanings and descriptions are lost). Use a template that "
        "renders tools (llama.cpp --jinja, a tool-use template), or mode='raw', which injects the "
        "schema into the system message."
    )
    if server_prompt is not None:
        findings = check_tools_present(server_prompt, tools)
        return judge_server_prompt(
            "tools-injected", findings, how, "the tool is named in the server's prompt", fix
        )
    if with_tools is None or without_tools is None:
        return CheckResult("tools-injected", "skip", "the server reports no prompt_tokens")
    evidence = (f"prompt_tokens: {with_tools} with the tool, {without_tools} without",)
    if with_tools > without_tools:
        return CheckResult(
            "tools-injected", "pass", f"the tool adds {with_tools - without_tools} prompt tokens", evidence
        )
    return CheckResult(
        "tools-injected",
        "fail",
        "the prompt is no longer with the tool than without it: tools are not in the prompt",
        evidence,
        fix,
    )


def run(doctor: Doctor) -> CheckResult:
    # No system message: the default one names the tool, which would hide a template that drops it.
    messages = [{"role": "user", "content": CALL_PROMPT}]
    server_prompt, how = doctor.server_prompt(messages)
    if server_prompt is not None:
        return judge_tools_injected(
            with_tools=None,
            without_tools=None,
            server_prompt=server_prompt,
            tools=[doctor.spec.tool],
            how=how,
        )
    return judge_tools_injected(
        with_tools=doctor.prompt_tokens(messages), without_tools=doctor.prompt_tokens(messages, tools=False)
    )


CHECK = Check("tools-injected", "Tool schema reaches the prompt", run)
