"""``empty-content``: an assistant turn with ``content: ''`` next to ``tool_calls`` costs the server
what it costs the local render (no ``[{'type': 'text', ...}]`` printed literally)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from schemagen.doctor.checks.base import Check, judge_server_prompt
from schemagen.doctor.report import CheckResult
from schemagen.render.lint import check_content_literals
from schemagen.render.templates import normalize_messages

if TYPE_CHECKING:
    from schemagen.doctor.session import Doctor


def judge_empty_content(
    *,
    server_empty: int | None,
    server_ref: int | None,
    local_empty: int | None = None,
    local_ref: int | None = None,
    variants: Mapping[str, int] | None = None,
    server_prompt: str | None = None,
    messages: Sequence[Mapping[str, Any]] = (),
    how: str = "",
) -> CheckResult:
    """``server_*``: the server's prompt tokens for the history with ``content: ''`` and with a
    short reference content; ``local_*`` the same for the local render; ``variants`` token
    counts of local renders that print the empty content wrongly (name -> count)."""
    fix = (
        "The server (or its template) prints empty content as a literal list/None. Send content "
        "null, fix the template (`{% if message.content is string %}`), or use mode='raw', "
        "which renders empty content as nothing."
    )
    if server_prompt is not None:
        findings = check_content_literals(server_prompt, normalize_messages(messages))
        return judge_server_prompt(
            "empty-content", findings, how, "no content literal in the server's prompt", fix
        )
    if server_empty is None or server_ref is None:
        return CheckResult("empty-content", "skip", "the server reports no prompt_tokens")
    evidence = [
        f"server prompt_tokens: {server_empty} with content '', {server_ref} with content 'OK' ({how})"
    ]
    if local_empty is None or local_ref is None:
        if server_empty > server_ref:
            return CheckResult(
                "empty-content",
                "fail",
                "content '' costs the server more prompt tokens than content 'OK'",
                tuple(evidence),
                fix,
            )
        return CheckResult(
            "empty-content",
            "skip",
            "no template/tokenizer for the exact comparison (heuristic found nothing: "
            "'' costs no more than 'OK')",
            tuple(evidence),
        )
    evidence.append(f"local render: {local_empty} tokens with content '', {local_ref} with 'OK'")
    offset = server_ref - local_ref  # what the server adds anyway (BOS, a different system prompt...)
    extra = server_empty - local_empty - offset
    if extra == 0:
        return CheckResult(
            "empty-content",
            "pass",
            "content '' costs the server what it costs the local render",
            tuple(evidence),
        )
    for name, count in (variants or {}).items():
        if server_empty - count == offset:
            evidence.append(f"the server's count matches a local render that prints the content as {name}")
    return CheckResult(
        "empty-content",
        "fail",
        f"content '' costs the server {extra:+d} tokens more than the local render",
        tuple(evidence),
        fix,
    )


def run(doctor: Doctor) -> CheckResult:
    empty = doctor.history("")
    server_prompt, how = doctor.server_prompt(empty)
    if server_prompt is not None:
        return judge_empty_content(
            server_empty=None, server_ref=None, server_prompt=server_prompt, messages=empty, how=how
        )
    server_empty = doctor.prompt_tokens(empty)
    server_ref = doctor.prompt_tokens(doctor.history("OK"))
    local: dict[str, int | None] = {"empty": None, "ref": None}
    variants: dict[str, int] = {}
    if doctor.template is not None and doctor.tokenizer is not None:
        local = {
            "empty": doctor.count(doctor.template, empty),
            "ref": doctor.count(doctor.template, doctor.history("OK")),
        }
        for name, content in (
            ("[{'type': 'text', 'text': ''}]", [{"type": "text", "text": ""}]),
            ("None", None),
        ):
            count = doctor.count(doctor.template, doctor.history(content), normalize=False)
            if count is not None and count != local["empty"]:
                variants[name] = count
    return judge_empty_content(
        server_empty=server_empty,
        server_ref=server_ref,
        local_empty=local["empty"],
        local_ref=local["ref"],
        variants=variants,
        how="chat usage.prompt_tokens",
    )


CHECK = Check("empty-content", "Empty content next to tool_calls renders as nothing", run)
