"""What every check module provides (``CHECK``), the tool and prompts the checks ask with, and the
helpers several judges share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ValidationError

from schemagen.doctor.report import CheckResult
from schemagen.exchange import Completion
from schemagen.parse.jsonfix import NotJSON, loads_strict
from schemagen.render.lint import Finding
from schemagen.schema import ToolSpec

if TYPE_CHECKING:
    from schemagen.doctor.session import Doctor


class DoctorCity(BaseModel):
    """A city named in the text."""

    name: str
    country: str


#: The tool every check forces (``DoctorCity``), a prompt that invites no call, and one that does.
NO_CALL_PROMPT = "Hi! Just saying hello, nothing to do here."
CALL_PROMPT = "Paris is the capital of France."
#: max_tokens of the request that must be cut off (finish-reason).
CUT_TOKENS = 3


@dataclass(frozen=True)
class Check:
    """One check: its id and title, and ``run``, the probe that asks the server through the
    :class:`Doctor` and hands the answers to the module's pure ``judge_*`` function."""

    id: str
    title: str
    run: Callable[[Doctor], CheckResult]


def preview(text: str | None, limit: int = 80) -> str:
    text = text or ""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def call_problem(spec: ToolSpec, completion: Completion) -> str | None:
    """What keeps ``completion`` from being a complete, schema-valid forced call; None if nothing."""
    if not completion.tool_calls:
        finish, content = completion.finish_reason, preview(completion.content)
        return f"no tool_calls (finish_reason={finish}; content {content})"
    call = completion.tool_calls[0]
    if call.name != spec.name:
        return f"called {call.name!r}, not the forced {spec.name!r}"
    try:
        arguments = loads_strict(call.arguments)
    except (NotJSON, ValueError) as exc:
        return f"arguments are not JSON ({exc}): {preview(call.arguments)}"
    try:
        spec.validate(arguments)
    except ValidationError as exc:
        return f"arguments fail the schema ({exc.error_count()} errors): {preview(call.arguments)}"
    return None


def judge_server_prompt(
    check_id: str, findings: Sequence[Finding], how: str, passed: str, fix: str
) -> CheckResult:
    """The verdict from lint findings on the server's own prompt text: fail on the first."""
    if findings:
        evidence = tuple(f"{f} (server prompt via {how})" for f in findings)
        return CheckResult(check_id, "fail", findings[0].message, evidence, fix)
    return CheckResult(check_id, "pass", passed, (f"server prompt via {how}",))


def cut_off(completion: Completion, max_tokens: int | None) -> bool:
    """Stopped by max_tokens: said so, or used them all (some servers say "tool_calls" anyway)."""
    used = completion.usage.completion_tokens
    return completion.finish_reason == "length" or bool(max_tokens and used >= max_tokens)
