"""``generation-prompt``: the server's prompt ends with the assistant header (its own rendering via
llama.cpp ``/apply-template`` or vLLM ``/tokenize``, else ``prompt_tokens`` against the local
render's token count)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemagen.doctor.checks.base import Check
from schemagen.doctor.report import CheckResult
from schemagen.errors import TemplateError
from schemagen.render.lint import check_generation_prompt

if TYPE_CHECKING:
    from schemagen.doctor.session import Doctor


def judge_generation_prompt(
    *,
    generation_prompt: str,
    server_prompt: str | None = None,
    server_tokens: int | None = None,
    local_with: int | None = None,
    local_without: int | None = None,
    bos_slack: int = 0,
    how: str = "",
) -> CheckResult:
    """From the server's own prompt text if there is one, else from token counts."""
    if not generation_prompt:
        finding = check_generation_prompt("", "")[0]
        return CheckResult(
            "generation-prompt", "fail", f"the template itself: {finding.message}", (str(finding),), _GEN_FIX
        )
    gen = f"generation prompt {generation_prompt!r}"
    if server_prompt is not None:
        findings = check_generation_prompt(server_prompt, generation_prompt)
        evidence: tuple[str, ...] = (f"server prompt via {how} ends with {server_prompt[-60:]!r}",)
        if findings:
            return CheckResult(
                "generation-prompt",
                "fail",
                findings[0].message,
                evidence + tuple(map(str, findings)),
                _GEN_FIX,
            )
        return CheckResult("generation-prompt", "pass", f"the server's prompt ends with the {gen}", evidence)
    if server_tokens is None or local_with is None or local_without is None:
        return CheckResult(
            "generation-prompt", "skip", "the server shows neither its prompt nor prompt_tokens"
        )
    evidence = (
        f"server prompt_tokens={server_tokens} ({how})",
        f"local render: {local_with} tokens with the {gen}, {local_without} without",
    )
    extra_with, extra_without = server_tokens - local_with, server_tokens - local_without
    if 0 <= extra_with <= bos_slack:
        note = "" if extra_with == 0 else f" (+{extra_with}: the server's BOS)"
        return CheckResult("generation-prompt", "pass", f"server and local render agree{note}", evidence)
    if local_with != local_without and 0 <= extra_without <= bos_slack:
        return CheckResult(
            "generation-prompt",
            "fail",
            f"the server's prompt has the token count of a render without the {gen}",
            evidence,
            _GEN_FIX,
        )
    return CheckResult(
        "generation-prompt",
        "fail",
        f"the server's prompt is {extra_with:+d} tokens off the local render; the {gen} can't be confirmed",
        evidence,
        "The server renders with a different template than the one given (or adds/strips tokens). "
        "Pass the server's exact template with --template, or inspect its prompt (llama.cpp "
        "/apply-template, vLLM /tokenize).",
    )


_GEN_FIX = (
    "The server renders without add_generation_prompt (or its template ignores it), so the model "
    "continues the last turn. Fix the template/server flag, or use mode='raw', which always adds it."
)


def run(doctor: Doctor) -> CheckResult:
    if doctor.template is None:
        return CheckResult("generation-prompt", "skip", "no chat template to compare with (pass --template)")
    messages = doctor.call_messages()
    try:
        gen = doctor.generation_prompt(doctor.template, messages)
    except TemplateError as exc:
        return CheckResult("generation-prompt", "skip", f"the template does not render: {exc}")
    server_prompt, how = doctor.server_prompt(messages)
    if server_prompt is not None:
        return judge_generation_prompt(generation_prompt=gen, server_prompt=server_prompt, how=how)
    if doctor.tokenizer is None:
        return CheckResult("generation-prompt", "skip", doctor.tokenizer_note)
    adds_bos = doctor.tokenizer.adds_bos is False and doctor.template.tokenizer_adds_bos is not False
    return judge_generation_prompt(
        generation_prompt=gen,
        server_tokens=doctor.prompt_tokens(messages),
        local_with=doctor.count(doctor.template, messages),
        local_without=doctor.count(doctor.template, messages, add_generation_prompt=False),
        bos_slack=1 if adds_bos else 0,
        how="chat usage.prompt_tokens",
    )


CHECK = Check("generation-prompt", "Generation prompt present in the server's prompt", run)
