"""Token and money budgets, per call or shared by a whole batch.

A budget is checked before each attempt against an estimate, and charged after
with the real usage. Safe to share between threads and asyncio tasks.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from schemagen.errors import BudgetExceeded
from schemagen.exchange import Usage


@dataclass
class Budget:
    """``max_tokens`` counts prompt + completion tokens; ``max_cost`` is in USD."""

    max_tokens: int | None = None
    max_cost: float | None = None
    spent: Usage = field(default_factory=Usage)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def coerce(cls, value: Budget | int | float | None) -> Budget | None:
        """``budget=1000`` means 1000 tokens; a Budget is used as it is (and shared)."""
        if value is None or isinstance(value, Budget):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ValueError(f"budget must be a positive token count or a Budget, got {value!r}")
        return cls(max_tokens=int(value))

    @property
    def exhausted(self) -> bool:
        with self._lock:
            return self._over(self.spent)

    def _over(self, usage: Usage) -> bool:
        if self.max_tokens is not None and usage.total_tokens > self.max_tokens:
            return True
        return self.max_cost is not None and usage.cost is not None and usage.cost > self.max_cost

    def _describe(self, usage: Usage) -> str:
        limits = []
        if self.max_tokens is not None:
            limits.append(f"{usage.total_tokens}/{self.max_tokens} tokens")
        if self.max_cost is not None:
            limits.append(f"${(usage.cost or 0.0):.6f}/${self.max_cost:.6f}")
        return ", ".join(limits)

    def check(self, estimated: Usage) -> None:
        """Before an attempt: raise if what is spent plus the estimate would go over."""
        with self._lock:
            projected = self.spent + estimated
            if self._over(projected):
                raise BudgetExceeded(
                    f"Budget would be exceeded by the next attempt ({self._describe(projected)} "
                    "including its estimate); nothing was sent. Raise the budget to continue.",
                    spent=self.spent,
                )

    def charge(self, usage: Usage) -> None:
        """After an attempt: record real usage; raise if the budget is now exceeded."""
        with self._lock:
            self.spent = self.spent + usage
            if self._over(self.spent):
                raise BudgetExceeded(
                    f"Budget exceeded ({self._describe(self.spent)}). Raise the budget to continue.",
                    spent=self.spent,
                )
