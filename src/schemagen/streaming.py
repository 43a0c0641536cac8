"""Streaming: ``extract_stream`` / ``extract_iter`` and their async twins.

No driving loop here: :meth:`Client.steps <schemagen.client.Client.steps>` (and
``asteps``) with ``stream=True`` drive the run, the same loop as ``extract``, with the
same hooks, spans, transport retries and budget. These streams only turn its events into
Partials through :class:`~schemagen.engine.stream.StreamingRun` (sans-IO). A transport
failure mid-stream is retried from scratch (the partials of the broken try are marked
superseded), or raised with ``received``: the last partial.
"""

from __future__ import annotations

import typing
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from schemagen.engine.run import Extraction
from schemagen.engine.stream import InvalidItem, OnInvalid, Partial, StreamingRun
from schemagen.errors import AttemptError, ConfigurationError

if TYPE_CHECKING:
    from schemagen.client import Client

T = TypeVar("T")


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
        self._iter = self._outputs()

    def __iter__(self) -> Iterator[Any]:
        return self._iter

    def result(self) -> T:
        for _ in self._iter:  # the caller stopped early: finish the run
            pass
        return super().result()

    def _outputs(self) -> Iterator[Any]:
        srun = self.srun
        try:
            for event in self._client.steps(srun.run, stream=True):
                yield from srun.on(event)
        except AttemptError as exc:
            srun.failed(exc)  # attach the last partial
            raise


class AsyncPartialStream(_Outputs[T]):
    """Async twin of :class:`PartialStream`: ``async for``, then :meth:`aresult`."""

    def __init__(self, client: Client, srun: StreamingRun[T]) -> None:
        super().__init__(srun)
        self._client = client
        self._iter = self._outputs()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iter

    async def aresult(self) -> T:
        async for _ in self._iter:
            pass
        return self.result()

    async def _outputs(self) -> AsyncIterator[Any]:
        srun = self.srun
        try:
            async for event in self._client.asteps(srun.run, stream=True):
                for out in srun.on(event):
                    yield out
        except AttemptError as exc:
            srun.failed(exc)
            raise


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
