"""Streaming drivers: ``extract_stream`` / ``extract_iter`` and their async twins.

They drive the same :class:`~schemagen.engine.run.ExtractionRun` as ``Client.drive``,
through :class:`~schemagen.engine.stream.StreamingRun` (sans-IO), with a backend's
``stream``/``astream`` (see :class:`~schemagen.backends.base.StreamingBackend`); a backend
without them is called once and its answer fed as one delta. A transport failure
mid-stream is retried from scratch under the client's :class:`~schemagen.retry.RetryPolicy`
(the partials of the broken try are marked superseded), or raised with ``received``: the
last partial.
"""

from __future__ import annotations

import asyncio
import time
import typing
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from schemagen.backends.base import StreamingBackend
from schemagen.chunks import Delta
from schemagen.engine.run import Extraction
from schemagen.engine.stream import InvalidItem, OnInvalid, Partial, StreamingRun
from schemagen.errors import ConfigurationError, TransportError
from schemagen.exchange import Completion, Request

if TYPE_CHECKING:
    from schemagen.client import Client

T = TypeVar("T")
Event = Delta | Completion


def _whole(completion: Completion) -> list[Event]:
    deltas: list[Event] = []
    if completion.tool_calls:
        deltas += [Delta("arguments", c.arguments, i) for i, c in enumerate(completion.tool_calls)]
    elif completion.content:
        deltas.append(Delta("content", completion.content))
    return [*deltas, completion]


def _events(backend: Any, request: Request) -> Iterator[Event]:
    if isinstance(backend, StreamingBackend):
        return backend.stream(request)  # no generator in between: this runs once per delta
    return iter(_whole(backend.complete(request)))


async def _aevents(backend: Any, request: Request) -> AsyncIterator[Event]:
    if isinstance(backend, StreamingBackend):
        async for event in backend.astream(request):
            yield event
    else:
        for event in _whole(await backend.acomplete(request)):
            yield event


class _Outputs(Generic[T]):
    """What a stream has produced so far, shared by the sync and async streams."""

    def __init__(self, srun: StreamingRun[T]) -> None:
        self.srun = srun

    @property
    def extraction(self) -> Extraction[T]:
        """Value, attempts, usage and trace, as ``extract_result`` gives them (after the end)."""
        return self.srun.run.result()

    def result(self) -> T:
        """The validated value (after the stream ended)."""
        return self.srun.run.result().value

    @property
    def invalid(self) -> list[InvalidItem]:
        """``extract_iter``: items that closed but failed validation (skipped or reasked)."""
        return self.srun.invalid

    @property
    def last(self) -> Partial[T] | None:
        return self.srun.last


class PartialStream(_Outputs[T]):
    """Iterate for Partials (or items, for ``extract_iter``); then :meth:`result`."""

    def __init__(self, client: Client, srun: StreamingRun[T]) -> None:
        super().__init__(srun)
        self._client = client
        self._iter = self._drive()

    def __iter__(self) -> Iterator[Any]:
        return self._iter

    def result(self) -> T:
        for _ in self._iter:  # the caller stopped early: finish the run
            pass
        return super().result()

    def _drive(self) -> Iterator[Any]:
        client, srun, run = self._client, self.srun, self.srun.run
        policy, backend = client._policy(run), client.backend
        while not run.done:
            request = srun.next_request()
            completion: Completion | None = None
            tries = 0
            while completion is None:
                try:
                    for event in _events(backend, request):
                        if isinstance(event, Completion):
                            completion = event
                        else:
                            yield from srun.feed(event)
                except TransportError as exc:
                    if run.rejected(exc):  # a capability answer (mode="auto"): the run adapted
                        client._remember(run)
                        break
                    tries += 1
                    wait = policy.next_wait(tries, exc)
                    if wait is None:
                        exc.__context__ = None  # the raw SDK exception; __cause__ is its redacted stand-in
                        raise srun.transport_failed(exc) from exc.__cause__
                    run.record_retry(exc, wait)
                    time.sleep(wait)
                    srun.restart()
            if completion is not None:
                yield from srun.receive(completion)
                client._remember(run)


class AsyncPartialStream(_Outputs[T]):
    """Async twin of :class:`PartialStream`: ``async for``, then :meth:`aresult`."""

    def __init__(self, client: Client, srun: StreamingRun[T]) -> None:
        super().__init__(srun)
        self._client = client
        self._iter = self._drive()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iter

    async def aresult(self) -> T:
        async for _ in self._iter:
            pass
        return self.result()

    async def _drive(self) -> AsyncIterator[Any]:
        client, srun, run = self._client, self.srun, self.srun.run
        policy = client._policy(run)
        while not run.done:
            request = srun.next_request()
            completion: Completion | None = None
            tries = 0
            while completion is None:
                try:
                    async for event in _aevents(client.backend, request):
                        if isinstance(event, Completion):
                            completion = event
                        else:
                            for out in srun.feed(event):
                                yield out
                except TransportError as exc:
                    if run.rejected(exc):
                        client._remember(run)
                        break
                    tries += 1
                    wait = policy.next_wait(tries, exc)
                    if wait is None:
                        exc.__context__ = None
                        raise srun.transport_failed(exc) from exc.__cause__
                    run.record_retry(exc, wait)
                    await asyncio.sleep(wait)
                    srun.restart()
            if completion is not None:
                for out in srun.receive(completion):
                    yield out
                client._remember(run)


def start_stream(client: Client, target: Any, text: str, overrides: dict[str, Any],
                 items: OnInvalid | None = None) -> StreamingRun[Any]:
    """A StreamingRun for ``client``: the same settings as ``extract``, with ``stream=True``.
    For items (``extract_iter``), ``Item`` means ``list[Item]``."""
    if items is not None and isinstance(target, dict):
        raise ConfigurationError(
            "extract_iter needs a Pydantic list target such as list[Invoice], not a JSON Schema: use "
            "extract_stream, whose final value is validated whole")
    if items is not None and typing.get_origin(target) is not list:
        target = list[target]
    return StreamingRun(client.start(target, text, {**overrides, "stream": True}), items=items)


__all__ = ["AsyncPartialStream", "PartialStream", "start_stream"]
