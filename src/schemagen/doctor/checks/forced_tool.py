"""``forced-tool``: a named ``tool_choice`` is honoured and the arguments are schema-valid, over N
samples of a prompt that invites no call at all."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from schemagen.doctor.checks.base import Check, call_problem, cut_off
from schemagen.doctor.report import CheckResult
from schemagen.exchange import Completion
from schemagen.schema import ToolSpec

if TYPE_CHECKING:
    from schemagen.doctor.session import Doctor


def judge_forced_tool(
    spec: ToolSpec, samples: Sequence[Completion | Exception], max_tokens: int | None = None
) -> CheckResult:
    """Every sample must be a call to the forced tool with schema-valid JSON arguments. A sample
    cut off by ``max_tokens`` before its call was complete proves nothing either way."""
    evidence, failures, cut = [], 0, 0
    for i, sample in enumerate(samples, 1):
        if isinstance(sample, Exception):
            failures += 1
            evidence.append(f"sample {i}: request failed: {sample}")
            continue
        problem = call_problem(spec, sample)
        if problem and cut_off(sample, max_tokens):
            cut += 1
            evidence.append(f"sample {i}: cut off at max_tokens={max_tokens}, inconclusive ({problem})")
        elif problem:
            failures += 1
            evidence.append(f"sample {i}: {problem}")
        else:
            call = sample.tool_calls[0]
            evidence.append(f"sample {i}: {spec.name}({call.arguments}) finish_reason={sample.finish_reason}")
    judged = len(samples) - cut
    if not samples:
        return CheckResult("forced-tool", "skip", "no samples were asked for (--samples 0)")
    if failures:
        return CheckResult(
            "forced-tool",
            "fail",
            f"{failures} of {judged} samples were not a valid forced call",
            tuple(evidence),
            "The server ignores or loosely enforces a named tool_choice. Use a server/model with "
            "constrained tool calls (vLLM, llama.cpp with --jinja), or mode='raw' with a parser that "
            "accepts the model's format; schemagen's reasks cover occasional misses.",
        )
    if not judged:
        summary = "every sample was cut off by max_tokens (raise --max-tokens)"
        return CheckResult("forced-tool", "skip", summary, tuple(evidence))
    return CheckResult(
        "forced-tool",
        "pass",
        f"{judged} of {judged} samples called {spec.name} with schema-valid arguments"
        + (f" ({cut} cut off, not judged)" if cut else ""),
        tuple(evidence),
    )


def run(doctor: Doctor) -> CheckResult:
    return judge_forced_tool(doctor.spec, doctor.sampled(), doctor.max_tokens)


CHECK = Check("forced-tool", "Forced tool honoured, arguments schema-valid", run)
