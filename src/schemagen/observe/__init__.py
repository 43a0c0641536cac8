"""Observers: what the drivers tell hooks and OpenTelemetry about a run.

Driver side only: ``Client.drive``/``adrive`` and the batch runner report each stage to
the observers; the sans-IO engine never knows they exist. One mechanism, two consumers:
:class:`~schemagen.observe.hooks.Hooks` (user callables) and
:mod:`schemagen.observe.otel` (spans). A new integration is one module here plus one
line in :data:`INTEGRATIONS`.

With nothing to observe (no hooks, no telemetry) :func:`watch_run` returns ``None`` and
the drivers skip every report: no cost.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from schemagen.exchange import Completion, Request

if TYPE_CHECKING:
    from schemagen.backends.base import Backend
    from schemagen.engine.run import Extraction, ExtractionRun

__all__ = [
    "INTEGRATIONS",
    "BatchObservation",
    "Observer",
    "Watch",
    "auto_observers",
    "start_batch",
    "watch_run",
]

#: name -> "module:factory". A factory takes ``(setting, backend)`` and returns an
#: :class:`Observer`, or ``None`` when its package is missing or it is switched off.
INTEGRATIONS: dict[str, str] = {
    "otel": "schemagen.observe.otel:observer",
}


class Watch(Protocol):
    """One run, as an observer sees it. The driver calls these in order, each at most once per
    attempt (``retry`` any number of times), and ``finish`` exactly once."""

    def request(self, request: Request) -> None: ...

    def response(self, completion: Completion) -> None: ...

    def received(self) -> None: ...  # the engine judged the attempt; it did not raise

    def retry(self, exc: BaseException, wait_s: float) -> None: ...

    def finish(self, result: Extraction[Any] | None, error: BaseException | None) -> None: ...

    async def drain(self) -> None: ...  # await what async hooks left pending


class Observer(Protocol):
    """Something the drivers report runs to: hooks, OpenTelemetry."""

    def watch(self, run: ExtractionRun[Any], *, is_async: bool) -> Watch | None:
        """A watch over one run, or ``None`` to sit this run out (then it costs nothing)."""
        ...


class BatchObservation(Protocol):
    """A batch as an observer sees it: ``observers`` watch its items, ``end`` closes it."""

    observers: tuple[Observer, ...]

    def end(self, summary: Any, error: BaseException | None) -> None: ...


class _Fanout:
    """Several watches behind one: the drivers only ever see one."""

    __slots__ = ("watches",)

    def __init__(self, watches: list[Watch]) -> None:
        self.watches = watches

    def request(self, request: Request) -> None:
        for w in self.watches:
            w.request(request)

    def response(self, completion: Completion) -> None:
        for w in self.watches:
            w.response(completion)

    def received(self) -> None:
        for w in self.watches:
            w.received()

    def retry(self, exc: BaseException, wait_s: float) -> None:
        for w in self.watches:
            w.retry(exc, wait_s)

    def finish(self, result: Extraction[Any] | None, error: BaseException | None) -> None:
        for w in self.watches:
            w.finish(result, error)

    async def drain(self) -> None:
        for w in self.watches:
            await w.drain()


def watch_run(observers: Iterable[Observer], run: ExtractionRun[Any], *, is_async: bool = False
              ) -> Watch | None:
    """A watch over ``run`` for every observer that wants one; ``None`` when none does."""
    watches = [w for o in observers if (w := o.watch(run, is_async=is_async)) is not None]
    if not watches:
        return None
    return watches[0] if len(watches) == 1 else _Fanout(watches)


def with_retry(watch: Watch | None, record: Callable[[BaseException, float], None]
               ) -> Callable[[BaseException, float], None]:
    """The ``on_retry`` callback for the retry policy: the engine's record, then the watch."""
    if watch is None:
        return record

    def on_retry(exc: BaseException, wait_s: float) -> None:
        record(exc, wait_s)
        watch.retry(exc, wait_s)

    return on_retry


def auto_observers(setting: Any, backend: Backend) -> tuple[Observer, ...]:
    """Observers from :data:`INTEGRATIONS` for ``telemetry=`` (None: each decides, False: none)."""
    if setting is False:
        return ()
    found = []
    for target in INTEGRATIONS.values():
        module_name, _, attr = target.partition(":")
        module = importlib.import_module(module_name)
        factory: Callable[[Any, Backend], Observer | None] = getattr(module, attr)
        made = factory(setting, backend)
        if made is not None:
            found.append(made)
    return tuple(found)


def start_batch(observers: Iterable[Observer], name: str, attributes: dict[str, Any]
                ) -> tuple[tuple[Observer, ...], list[BatchObservation]]:
    """Open a batch on every observer that tracks batches; returns the observers for its items
    (batch-aware ones replaced by their per-batch twin) and the observations to end."""
    items: list[Observer] = []
    opened: list[BatchObservation] = []
    for observer in observers:
        batch: Callable[[str, dict[str, Any]], BatchObservation | None] | None = getattr(
            observer, "batch", None)
        observation = batch(name, attributes) if batch is not None else None
        if observation is None:
            items.append(observer)
        else:
            opened.append(observation)
            items.extend(observation.observers)
    return tuple(items), opened
