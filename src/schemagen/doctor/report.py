"""Doctor results: plain data (a check's verdict with its evidence, and the whole report)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Verdict = Literal["pass", "fail", "skip"]


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict, a one-line summary, the evidence behind it, and the fix on a fail."""

    id: str
    verdict: Verdict
    summary: str
    evidence: tuple[str, ...] = ()
    fix: str = ""

    @property
    def title(self) -> str:
        from schemagen.doctor.checks import TITLES  # lazy: the checks import this module

        return TITLES.get(self.id, self.id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "verdict": self.verdict,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "fix": self.fix,
        }


@dataclass
class DoctorReport:
    """Every check's result for one endpoint; ``ok`` unless a check failed."""

    model: str
    endpoint: str | None
    template: str | None
    tokenizer: str | None
    checks: list[CheckResult] = field(default_factory=list)
    auto_mode: dict[str, Any] | None = None  # what mode="auto" picked: mode, steps, extra_requests

    @property
    def ok(self) -> bool:
        return all(check.verdict != "fail" for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "endpoint": self.endpoint,
            "template": self.template,
            "tokenizer": self.tokenizer,
            "ok": self.ok,
            "auto_mode": self.auto_mode,
            "checks": [c.to_dict() for c in self.checks],
        }


__all__ = ["CheckResult", "DoctorReport", "Verdict"]
