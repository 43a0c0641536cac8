"""``markup-leak``: no tool-call markup left in ``content`` while ``tool_calls`` is empty."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import ValidationError

from schemagen.doctor.checks.base import Check, preview
from schemagen.doctor.report import CheckResult
from schemagen.exchange import Completion
from schemagen.parse.formats import PARSERS, get_parser
from schemagen.render.messages import render_chat
from schemagen.schema import ToolSpec

if TYPE_CHECKING:
    from schemagen.doctor.session import Doctor


def leaked_markup(spec: ToolSpec, content: str) -> str | None:
    """Which tool-call format ``content`` carries (markers, or JSON of the call); None if none."""
    for name in PARSERS:
        if name != "json" and get_parser(name).detect(content):
            report = get_parser(name).parse(content, schema=spec.parameters)
            return f"{name} markup" + (" (a parsable call)" if report.ok else "")
    for call in get_parser("json").parse(content, schema=spec.parameters).calls:
        if call.name == spec.name:
            return f"a JSON call to {spec.name}"
        if call.name is None:
            try:
                spec.validate(call.arguments)
            except (ValidationError, ValueError, TypeError):
                continue
            return f"{spec.name} arguments as JSON"
    return None


def judge_markup_leak(
    spec: ToolSpec, completions: Sequence[tuple[str, Completion | Exception]]
) -> CheckResult:
    """``completions``: (label, completion). A leak: empty ``tool_calls`` with a call in ``content``."""
    evidence, leaks, looked = [], 0, 0
    for label, completion in completions:
        if isinstance(completion, Exception):
            continue
        looked += 1
        if completion.tool_calls:
            evidence.append(f"{label}: tool_calls present")
            continue
        found = leaked_markup(spec, completion.text)
        if found:
            leaks += 1
            evidence.append(
                f"{label}: tool_calls empty but content holds {found}: {preview(completion.text)}"
            )
        else:
            evidence.append(f"{label}: no call, no markup (content {preview(completion.text)})")
    if not looked:
        return CheckResult("markup-leak", "skip", "no completion to look at (the requests failed)")
    if leaks:
        return CheckResult(
            "markup-leak",
            "fail",
            f"{leaks} of {looked} responses left a tool call in content",
            tuple(evidence),
            "The server's tool parser does not recognise the model's format (wrong --tool-call-parser, "
            "an unexpected id or a missing end marker). schemagen recovers such calls from content; "
            "fix the server parser or use mode='raw' to take it out of the path.",
        )
    return CheckResult(
        "markup-leak", "pass", f"no tool-call markup in content ({looked} responses)", tuple(evidence)
    )


def run(doctor: Doctor) -> CheckResult:
    auto = doctor.send(
        render_chat(
            doctor.spec,
            doctor.call_messages(),
            model=doctor.backend.model,
            params={"temperature": 0.0, "max_tokens": doctor.max_tokens, "tool_choice": "auto"},
        )
    )
    labelled = [(f"sample {i}", c) for i, c in enumerate(doctor.sampled(), 1)]
    labelled += [("forced call", doctor.full_call()), ("tool_choice=auto", auto)]
    return judge_markup_leak(doctor.spec, labelled)


CHECK = Check("markup-leak", "No tool-call markup left in content", run)
