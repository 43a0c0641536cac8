"""``auto-mode``: a fresh ``mode="auto"`` extraction: the mode it ends in, each step down with the
server's words, and the extra requests it cost (see docs/modes.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schemagen.doctor.checks.base import CALL_PROMPT, Check, DoctorCity, preview
from schemagen.doctor.report import CheckResult
from schemagen.errors import SchemagenError

if TYPE_CHECKING:
    from schemagen.doctor.session import Doctor


def auto_mode_summary(outcome: Any) -> dict[str, Any] | None:
    """mode, steps and extra requests of an auto extraction (an Extraction or its error)."""
    trace = getattr(outcome, "trace", None)
    if trace is None:
        return None
    extra = sum(1 for a in trace.attempts if a.outcome in ("rejected", "ignored"))
    return {"mode": trace.mode, "steps": list(trace.steps), "extra_requests": extra}


def judge_auto_mode(outcome: Any) -> CheckResult:
    """``outcome``: the Extraction of a fresh ``mode="auto"`` run, or the error it raised."""
    summary = auto_mode_summary(outcome)
    if summary is None:
        return CheckResult("auto-mode", "fail", f"auto could not run: {outcome}")
    steps = summary["steps"]
    evidence = [f"{s['from']} -> {s['to']}: the server "
                + ("ignored the constraint" if s["refused"] == "ignored" else f"refused `{s['refused']}`")
                + f": {preview(s['said'], 200)}" for s in steps]
    trace = outcome.trace
    evidence += [n for a in trace.attempts for n in a.notes if "non-strict" in n or "max_completion" in n]
    if isinstance(outcome, Exception):
        attempts = trace.attempts
        evidence.append(f"{len(attempts)} requests; last outcome: {attempts[-1].outcome}"
                        if attempts else "no request was sent")
        return CheckResult("auto-mode", "fail", f"auto ended at `{summary['mode']}` without a value: "
                           f"{preview(str(outcome), 200)}", tuple(evidence),
                           fix="See docs/modes.md; pick a mode by hand with mode=... to see its own error.")
    how = (f"after {len(steps)} step{'s' * (len(steps) != 1)} down ({summary['extra_requests']} extra "
           "request, once per process)" if steps else "at the top of the ladder: nothing refused or ignored")
    return CheckResult("auto-mode", "pass", f"auto picks `{summary['mode']}` {how}",
                       (*evidence, f"value: {outcome.value!r}"))


def run(doctor: Doctor) -> CheckResult:
    from schemagen.client import Client
    from schemagen.mode_cache import ModeMemory

    sg = Client(backend=doctor.backend, mode="auto", retries=1, max_retries=0,
                max_tokens=doctor.max_tokens, temperature=0.0)
    sg.memory = ModeMemory()  # a fresh negotiation, not what this process learned before
    try:
        outcome: Any = sg.extract_result(DoctorCity, CALL_PROMPT)
    except SchemagenError as exc:
        outcome = exc
    doctor.auto_mode = auto_mode_summary(outcome)
    return judge_auto_mode(outcome)


CHECK = Check("auto-mode", "The output mode mode='auto' picks, and why", run)
