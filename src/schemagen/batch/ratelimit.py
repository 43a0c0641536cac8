"""Client-side rate limiting for batches: RPM, TPM, and backing off together on 429.

One :class:`RateLimiter` is shared by every worker of a batch. Before each request a
worker waits for (1) a slot under the adaptive in-flight cap, (2) the end of any shared
cool-down, (3) its turn under RPM/TPM. Pacing is GCRA with no burst: requests are spread
evenly, so any window of W seconds sees at most ``limit * W / 60`` plus one request's
worth -- never the 2x burst a refilling bucket allows at the start.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable


class Pacer:
    """Evenly spaced admission at ``per_minute`` units (requests or tokens) per minute."""

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0:
            raise ValueError(f"a rate limit must be positive, got {per_minute!r}")
        self.seconds_per_unit: float = 60.0 / per_minute
        self._clock = clock
        self._tat = 0.0  # theoretical arrival time: when the next unit may start
        self._bookings: deque[tuple[float, float]] = deque()  # (start, end), in start order

    def reserve(self, cost: float = 1.0, not_before: float = 0.0) -> float:
        """Book ``cost`` units; returns the monotonic time at which they may be used."""
        now = self._clock()
        start = max(now, self._tat, not_before)
        self._tat = start + cost * self.seconds_per_unit
        # Only the latest booking that has started matters to reset(); drop older ones.
        while len(self._bookings) > 1 and self._bookings[1][0] <= now:
            self._bookings.popleft()
        self._bookings.append((start, self._tat))
        return start

    def reset(self, at: float) -> None:
        """Void bookings that haven't started; keep the spacing after the last one that has."""
        now = self._clock()
        while self._bookings and self._bookings[-1][0] > now:
            self._bookings.pop()
        self._tat = max(at, self._bookings[-1][1] if self._bookings else 0.0)


class RateLimiter:
    """RPM/TPM pacing, a shared cool-down after 429s, and an AIMD cap on requests in flight.

    On a 429 the cap on requests in flight is halved (once per cool-down, not once per
    429 of the same burst) and every worker waits out ``Retry-After``; each success then
    adds ``1/cap`` back, up to ``concurrency``, as TCP does with its window.
    """

    def __init__(
        self,
        *,
        concurrency: int,
        rpm: float | None = None,
        tpm: float | None = None,
        default_cooldown: float = 1.0,
        max_cooldown: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency!r}")
        self.max_in_flight = concurrency
        self.cap: float = float(concurrency)
        self.in_flight: int = 0
        self.rpm: Pacer | None = Pacer(rpm, clock) if rpm else None
        self.tpm: Pacer | None = Pacer(tpm, clock) if tpm else None
        self.default_cooldown = default_cooldown
        self.max_cooldown = max_cooldown
        self.cooldown_until: float = 0.0
        self.throttled: int = 0  # 429s seen
        self._clock = clock
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._epoch = 0  # bumped by each 429; bookings made before it are void

    @property
    def needs_tokens(self) -> bool:
        return self.tpm is not None

    async def _slot(self) -> None:
        if self.in_flight < int(self.cap) and not self._waiters:
            self.in_flight += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future  # release() hands its slot over, in_flight already counted
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release_slot()
            else:
                self._waiters.remove(future)
            raise

    def _release_slot(self) -> None:
        self.in_flight -= 1
        while self._waiters and self.in_flight < int(self.cap):
            future = self._waiters.popleft()
            if not future.done():
                self.in_flight += 1
                future.set_result(None)

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until one request of about ``tokens`` tokens may be sent; pair with :meth:`release`."""
        await self._slot()
        try:
            while True:
                now = self._clock()
                if now < self.cooldown_until:
                    await asyncio.sleep(self.cooldown_until - now)
                    continue
                start, epoch = now, self._epoch
                if self.rpm is not None:
                    start = self.rpm.reserve(1, self.cooldown_until)
                if self.tpm is not None:
                    start = max(start, self.tpm.reserve(max(tokens, 1), self.cooldown_until))
                delay = start - self._clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                if epoch == self._epoch:  # no 429 while we waited: the booking still holds
                    return
        except BaseException:
            self._release_slot()
            raise

    def release(self, ok: bool = True) -> None:
        """After the response (or failure) of a request admitted by :meth:`acquire`."""
        if ok and self.cap < self.max_in_flight:
            self.cap = min(float(self.max_in_flight), self.cap + 1.0 / self.cap)
        self._release_slot()

    def throttle(self, retry_after: float | None) -> float:
        """A 429 came back: start (or extend) the shared cool-down. Returns its length."""
        self.throttled += 1
        now = self._clock()
        wait = self.default_cooldown if retry_after is None else retry_after
        wait = max(0.0, min(wait, self.max_cooldown))
        if now >= self.cooldown_until:  # a new episode, not another 429 from the same burst
            self.cap = max(1.0, self.cap / 2)
        self.cooldown_until = max(self.cooldown_until, now + wait)
        # Void every booking: the workers sleeping on them book again after the cool-down,
        # so the queue of future slots doesn't stretch the pause beyond Retry-After.
        self._epoch += 1
        for pacer in (self.rpm, self.tpm):
            if pacer is not None:
                pacer.reset(self.cooldown_until)
        return wait
