"""Transport retries: one policy, applied the same way to sync and async backends.

Validation reasks are a separate budget, handled by :mod:`schemagen.engine.run`.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypedDict, TypeVar

import tenacity

from schemagen.errors import TransportError

T = TypeVar("T")
OnRetry = Callable[[BaseException, float], None]


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransportError) and exc.retryable



class _TenacityKwargs(TypedDict):
    retry: tenacity.retry_base
    stop: tenacity.stop.stop_base
    wait: Callable[[tenacity.RetryCallState], float]
    before_sleep: Callable[[tenacity.RetryCallState], None]
    reraise: bool


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; a server's Retry-After wins when it sends one."""

    max_retries: int = 3
    initial_wait: float = 0.5
    max_wait: float = 30.0
    jitter: float = 0.25  # +- fraction of the computed wait
    max_retry_after: float = 120.0

    def wait_for(self, retry_number: int, exc: BaseException | None) -> float:
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return max(0.0, min(float(retry_after), self.max_retry_after))
        base = min(self.max_wait, self.initial_wait * (2.0 ** (retry_number - 1)))
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))

    def next_wait(self, retry_number: int, exc: BaseException) -> float | None:
        """Seconds to wait before retry ``retry_number`` (1, 2, ...) after ``exc``; None: give up.
        For drivers that can't hand the call to :meth:`call` (a stream yields as it goes)."""
        if not is_retryable(exc) or retry_number > self.max_retries:
            return None
        return self.wait_for(retry_number, exc)

    def _kwargs(self, on_retry: OnRetry | None) -> _TenacityKwargs:
        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return self.wait_for(state.attempt_number, exc)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if on_retry and state.outcome and state.next_action:
                exc = state.outcome.exception()
                if exc is not None:
                    on_retry(exc, state.next_action.sleep)

        return {
            "retry": tenacity.retry_if_exception(is_retryable),
            "stop": tenacity.stop_after_attempt(self.max_retries + 1),
            "wait": wait,
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def call(self, fn: Callable[[], T], on_retry: OnRetry | None = None) -> T:
        retrying = tenacity.Retrying(**self._kwargs(on_retry))
        return retrying(fn)

    async def acall(self, fn: Callable[[], Awaitable[T]], on_retry: OnRetry | None = None) -> T:
        async def attempt() -> T:
            return await fn()

        retrying = tenacity.AsyncRetrying(**self._kwargs(on_retry))
        return await retrying(attempt)
