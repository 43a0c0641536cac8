"""``finish-reason``: ``tool_calls``/``stop`` when a call completes, ``length`` when ``max_tokens``
cuts it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemagen.doctor.checks.base import CUT_TOKENS, Check, call_problem, preview
from schemagen.doctor.report import CheckResult
from schemagen.exchange import Completion
from schemagen.schema import ToolSpec

if TYPE_CHECKING:
    from schemagen.doctor.session import Doctor


def judge_finish_reason(
    spec: ToolSpec, full: Completion | Exception, cut: Completion | Exception, cut_tokens: int = CUT_TOKENS
) -> CheckResult:
    """A complete forced call ends with tool_calls/stop; one cut by max_tokens with length."""
    evidence, problems = [], []
    if isinstance(full, Exception):
        evidence.append(f"complete call: request failed: {full}")
    else:
        problem = call_problem(spec, full)
        evidence.append(
            f"complete call: finish_reason={full.finish_reason!r}" + (f" ({problem})" if problem else "")
        )
        if problem is None and full.finish_reason not in ("tool_calls", "stop"):
            problems.append(f"a complete call ended with finish_reason={full.finish_reason!r}")
    if isinstance(cut, Exception):
        evidence.append(f"max_tokens={cut_tokens}: request failed: {cut}")
    else:
        shown = cut.tool_calls[0].arguments if cut.tool_calls else cut.text
        evidence.append(
            f"max_tokens={cut_tokens}: finish_reason={cut.finish_reason!r}, output {preview(shown)}"
        )
        if cut.finish_reason != "length" and (not cut.tool_calls or call_problem(spec, cut)):
            problems.append(
                f"a call cut at max_tokens={cut_tokens} reported finish_reason={cut.finish_reason!r}, "
                "not 'length'"
            )
    if isinstance(full, Exception) and isinstance(cut, Exception):
        return CheckResult("finish-reason", "skip", "both requests failed", tuple(evidence))
    if problems:
        return CheckResult(
            "finish-reason",
            "fail",
            "; ".join(problems),
            tuple(evidence),
            "Clients use finish_reason to tell a cut-off call from a complete one. With a server that "
            "reports a cut call as complete, truncated arguments look final: set max_tokens generously "
            "and rely on validation (schemagen reasks on broken JSON).",
        )
    return CheckResult(
        "finish-reason", "pass", "complete and cut-off calls are reported correctly", tuple(evidence)
    )


def run(doctor: Doctor) -> CheckResult:
    cut = doctor.chat(doctor.call_messages(), max_tokens=CUT_TOKENS)
    return judge_finish_reason(doctor.spec, doctor.full_call(), cut)


CHECK = Check("finish-reason", "finish_reason: tool_calls/stop when complete, length when cut", run)
