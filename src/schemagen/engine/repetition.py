"""Repetition guard: notice when a growing output has entered a loop. Pure, no I/O.

A loop is the tail of the text being one unit repeated back to back: the same list
item, line or sentence again and again (``"Alice", "Alice", "Alice", ...``). The
tail must repeat its unit at least ``min_repeats`` times and span at least
``min_span`` characters, so short honest patterns (``"ha ha ha"``, a row of dashes,
``[0, 0, 0]``) pass. A loop whose items differ only in their numbers (``"14. Meet
the team.", "15. Meet the team.", ...``) counts too, under stricter limits: the unit
must hold at least ``NEAR_LETTERS`` letters, so lists of dates, rooms or codes pass.
Other near-repeats are left to the token bound. Backends that see the output grow
(streaming HTTP, local generation) feed it to a :class:`RepetitionGuard` and stop
when it fires; the engine then raises ``TruncatedError(reason="repetition")``.
Backends that see token ids (local generation) also feed a :class:`RepeatedRun`, which
notices an exact loop after about one repeat of its unit rather than four.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: The finish_reason a backend reports when the guard stopped the output.
REPETITION = "repetition"
# Limits for loops that differ only in numbers: more repeats, a longer span, and a unit
# with real words in it.
NEAR_REPEATS = 6
NEAR_SPAN = 240
NEAR_LETTERS = 12
NEAR_MAX_PERIOD = 160  # numbered loops are items or lines, not pages
_NUMBER = re.compile(r"\d+")
KEY = 8


@dataclass(frozen=True)
class Repetition:
    """A loop found at the end of a text."""

    unit: str
    repeats: int  # whole repeats of ``unit`` at the end of the text
    numbered: bool = False  # the repeats differ in their numbers (shown as # in ``unit``)

    def __str__(self) -> str:
        shown = self.unit if len(self.unit) <= 60 else self.unit[:57] + "..."
        return f"{shown!r} repeated {self.repeats} times" + (" (numbers aside)" if self.numbered else "")


def detect_repetition(
    text: str, *, min_repeats: int = 4, min_span: int = 160, max_period: int = 512, numbered: bool = True,
) -> Repetition | None:
    """The loop the text ends in, or None. The shortest repeating unit is reported."""
    found = _periodic_tail(text, min_repeats, min_span, max_period)
    if found is not None or not numbered or not any(c.isdigit() for c in text[-NEAR_SPAN:]):
        return found
    repeats, span = max(min_repeats, NEAR_REPEATS), max(min_span, NEAR_SPAN)
    period = min(max_period, NEAR_MAX_PERIOD)
    tail = text[-max(span, repeats * period) * 2:]  # numbers shrink to '#', so take extra
    near = _periodic_tail(_NUMBER.sub("#", tail), repeats, span, period)
    if near is None or sum(c.isalpha() for c in near.unit) < NEAR_LETTERS:
        return None
    return Repetition(near.unit, near.repeats, numbered=True)


def _periodic_tail(text: str, min_repeats: int, min_span: int, max_period: int) -> Repetition | None:
    n = len(text)
    if n < min_span:
        return None
    # A period p needs the last KEY characters to occur again p characters earlier;
    # rfind (in C) lists those candidates, nearest first, so honest text costs little.
    key = text[n - KEY:]
    lowest = max(0, n - KEY - min(max_period, n // min_repeats))
    stop = n - 1
    while True:
        i = text.rfind(key, lowest, stop)
        if i < 0:
            return None
        period = n - KEY - i
        span = max(min_repeats * period, min_span)
        if span > n:
            return None  # spans only grow with the period
        tail = text[n - span:]
        if tail[period:] == tail[:-period]:
            start = n - span  # step back a unit at a time to count every repeat
            while start >= period and text[start - period:start] == text[start:start + period]:
                start -= period
            return Repetition(_aligned(text[n - period:]), (n - start) // period)
        stop = i + KEY - 1


def _aligned(unit: str) -> str:
    """The unit rotated to start after a separator, so it reads as the item that repeats."""
    for sep in (", ", "\n", ". ", " "):
        i = unit.find(sep)
        if i >= 0:
            k = i + len(sep)
            return unit[k:] + unit[:k]
    return unit


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
    numbered: bool = True
    found: Repetition | None = None
    _tail: str = field(default="", repr=False)
    _pending: int = field(default=0, repr=False)
    _total: int = field(default=0, repr=False)

    @property
    def window(self) -> int:
        return max(self.min_span, self.min_repeats * self.max_period,
                   2 * max(NEAR_SPAN, NEAR_REPEATS * NEAR_MAX_PERIOD)) + self.check_every

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
                max_period=self.max_period, numbered=self.numbered,
            )
        return self.found is not None


@dataclass
class RepeatedRun:
    """Token-level loop check: ``feed(token)`` is True once ``run`` tokens in a row each
    complete an ``n``-gram the output already had at least ``n`` tokens earlier, that is once
    the last ``run + n - 1`` tokens repeat earlier ones exactly, in a unit of ``n`` tokens or
    more.

    A greedy model that has entered a loop repeats its unit token for token, so this fires
    about one unit after the loop starts, where :class:`RepetitionGuard` waits for four
    repeats and 160 characters. Honest JSON repeats its structure (``", "quantity": ``) but
    not ``run + n - 1`` tokens of it in a row: a value differs first. Short units (``0, 0,
    0``) are left to :class:`RepetitionGuard`, which lets short honest patterns pass.
    """

    n: int = 8
    run: int = 32
    _tokens: list[int] = field(default_factory=list, repr=False)
    _last: dict[tuple[int, ...], int] = field(default_factory=dict, repr=False)  # n-gram -> where it ended
    _streak: int = field(default=0, repr=False)

    def feed(self, token: int) -> bool:
        self._tokens.append(token)
        end = len(self._tokens)
        if end >= self.n:
            gram = tuple(self._tokens[-self.n:])
            before = self._last.get(gram)
            self._streak = self._streak + 1 if before is not None and end - before >= self.n else 0
            self._last[gram] = end
        return self._streak >= self.run
