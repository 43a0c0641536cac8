"""What a batch produces: one result per record and the run's summary.

Shared by the online driver (``run``), the Batch API path (``openai_batch``) and the
progress bar, so none of them imports another.
"""

from __future__ import annotations

from collections import Counter as Tally
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic_core import to_jsonable_python

from schemagen.batch.records import Record
from schemagen.exchange import Usage

T = TypeVar("T")

MAX_MESSAGE_CHARS = 8000


@dataclass(frozen=True)
class ErrorInfo:
    type: str
    message: str


@dataclass
class BatchResult(Generic[T]):
    """One output line: the id and either ``value`` or ``error``, plus usage and attempts."""

    id: str
    value: T | None = None
    error: ErrorInfo | None = None
    attempts: int = 0
    usage: Usage = field(default_factory=Usage)
    line: int | None = None  # the input line, for file inputs
    index: int = -1  # position in the input stream (this run's), for ordering
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """The JSON line written to the checkpoint file."""
        out: dict[str, Any] = {"id": self.id, "ok": self.ok}
        if self.error is None:
            out["value"] = to_jsonable_python(self.value)
        else:
            out["error"] = {"type": self.error.type, "message": self.error.message}
        out["attempts"] = self.attempts
        out["usage"] = self.usage.to_dict()
        if self.line is not None:
            out["line"] = self.line
        return out

    @classmethod
    def failure(cls, record: Record, exc: BaseException, index: int) -> BatchResult[Any]:
        usage = getattr(exc, "usage", None) or Usage()
        trace = getattr(exc, "trace", None)
        attempts = len(trace.attempts) if trace is not None else 0
        message = str(exc)
        if len(message) > MAX_MESSAGE_CHARS:
            extra = len(message) - MAX_MESSAGE_CHARS
            message = message[:MAX_MESSAGE_CHARS] + f"... ({extra} more characters)"
        return cls(record.id, error=ErrorInfo(type(exc).__name__, message), attempts=attempts, usage=usage,
                   line=record.line, index=index, exception=exc)

    @classmethod
    def unreadable(cls, record: Record, index: int) -> BatchResult[Any]:
        return cls(record.id, error=ErrorInfo(record.error_type, record.error or "unreadable input"),
                   line=record.line, index=index)


@dataclass
class BatchSummary:
    """Counts, tokens and time of one batch run (this run only; resumed items are ``skipped``)."""

    total: int | None = None  # records in the input, when known
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0  # already in the checkpoint
    unfinished: int = 0  # started but stopped by the budget or an abort; not written, redone on resume
    usage: Usage = field(default_factory=Usage)
    throttled: int = 0  # 429 responses absorbed by the rate limiter
    wall_s: float = 0.0
    stopped: str | None = None  # "budget", "error" or "unreachable", when the batch ended early
    reason: str | None = None
    error_types: Tally[str] = field(default_factory=Tally)
    truncated_bytes: int = 0  # a torn last line removed from the checkpoint on resume
    dropped_errors: int = 0  # error records removed by retry_errors
    prior_errors: int = 0  # error records in the checkpoint from earlier runs
    batch_ids: list[str] = field(default_factory=list)  # Batch API jobs

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    @property
    def remaining(self) -> int | None:
        """Records neither done now nor before, when the total is known."""
        return None if self.total is None else max(0, self.total - self.done - self.skipped)

    @property
    def exit_code(self) -> int:
        """The CLI's: 3 stopped by budget, 2 aborted (key or model rejected), 1 some error
        records (now or in the checkpoint from before; also a server that stayed unreachable),
        0 all results."""
        if self.stopped == "budget":
            return 3
        if self.stopped == "error":
            return 2
        return 1 if self.failed or self.prior_errors else 0

    def describe(self) -> str:
        rate = self.done / self.wall_s if self.wall_s > 0 else 0.0
        kinds = ", ".join(f"{k} {n}" for k, n in self.error_types.most_common())
        lines = [
            f"{self.succeeded} results, {self.failed} errors" + (f" ({kinds})" if kinds else "")
            + (f", {self.skipped} already done" if self.skipped else "")
            + (f" ({self.prior_errors} of them error records)" if self.prior_errors else "")
            + f" in {self.wall_s:.1f} s ({rate:.1f} items/s)",
            f"tokens: {self.usage.total_tokens:,} (prompt {self.usage.prompt_tokens:,}, completion "
            f"{self.usage.completion_tokens:,}) over {self.usage.requests:,} requests"
            + (f"; {self.throttled} rate-limited (429)" if self.throttled else "")
            + (f"; cost ${self.usage.cost:.4f}" if self.usage.cost is not None else ""),
        ]
        if self.truncated_bytes:
            lines.append(f"resume: removed a torn last line ({self.truncated_bytes} bytes); "
                         "that item was redone")
        if self.dropped_errors:
            lines.append(f"resume: retried {self.dropped_errors} earlier error records")
        if self.batch_ids:
            lines.append(f"batch API jobs: {', '.join(self.batch_ids)}")
        if self.stopped:
            left = f"; {self.remaining} records not attempted" if self.remaining else ""
            lines.append(f"stopped ({self.stopped}): {self.reason}{left}. Rerun with --resume to continue.")
        return "\n".join(lines)


class BatchResults(list[BatchResult[T]]):
    """What :func:`extract_many` returns: the results in input order, and ``summary``."""

    summary: BatchSummary
