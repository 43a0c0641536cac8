"""Repetition guard: notice when a growing output has entered a loop. Pure, no I/O.

A loop is the tail of the text being one unit repeated back to back: the same list
item, line or sentence again and again (``"Alice", "Alice", "Alice", ...``). The
tail must repeat its unit at least ``min_repeats`` times and span at least
``min_span`` characters, so short honest patterns (``"ha ha ha"``, a row of dashes,
``[0, 0, 0]``) pass. Near-repeats (a counter that goes up each time) are left to the
token bound. Backends that see the output grow (streaming HTTP, local generation)
feed it to a :class:`RepetitionGuard` and stop when it fires; the engine then raises
``TruncatedError(reason="repetition")``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The finish_reason a backend reports when the guard stopped the output.
REPETITION = "repetition"


@dataclass(frozen=True)
class Repetition:
    """A loop found at the end of a text."""

    unit: str
    repeats: int  # whole repeats of ``unit`` at the end of the text

    def __str__(self) -> str:
        shown = self.unit if len(self.unit) <= 60 else self.unit[:57] + "..."
        return f"{shown!r} repeated {self.repeats} times"


def detect_repetition(
    text: str, *, min_repeats: int = 4, min_span: int = 160, max_period: int = 512
) -> Repetition | None:
    """The loop the text ends in, or None. The shortest repeating unit is reported."""
    n = len(text)
    if n < min_span:
        return None
    last = text[-1]
    for period in range(1, min(max_period, n // min_repeats) + 1):
        span = max(min_repeats * period, min_span)
        if span > n:
            break
        if text[-1 - period] != last:  # cheap filter before comparing the whole span
            continue
        tail = text[-span:]
        if tail[period:] != tail[:-period]:
            continue
        start = n - span  # extend back to count every repeat
        while start > 0 and text[start - 1] == text[start - 1 + period]:
            start -= 1
        return Repetition(text[n - period:], (n - start) // period)
    return None


@dataclass
class RepetitionGuard:
    """Incremental :func:`detect_repetition` over a text that arrives in pieces.

    ``feed(delta)`` returns True once the text has entered a loop (and stays True).
    Only the last ``window`` characters are kept, and the check runs every
    ``check_every`` new characters, so the cost per token stays small.
    """

    min_repeats: int = 4
    min_span: int = 160
    max_period: int = 512
    check_every: int = 16
    found: Repetition | None = None
    _tail: str = field(default="", repr=False)
    _pending: int = field(default=0, repr=False)
    _total: int = field(default=0, repr=False)

    @property
    def window(self) -> int:
        return max(self.min_span, self.min_repeats * self.max_period) + self.check_every

    @property
    def fired(self) -> bool:
        return self.found is not None

    def feed(self, delta: str) -> bool:
        if self.found is not None or not delta:
            return self.found is not None
        self._total += len(delta)
        self._tail = (self._tail + delta)[-self.window:]
        self._pending += len(delta)
        if self._pending >= self.check_every:
            self._pending = 0
            self.found = detect_repetition(
                self._tail, min_repeats=self.min_repeats, min_span=self.min_span,
                max_period=self.max_period,
            )
        return self.found is not None
