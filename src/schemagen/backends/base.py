"""The backend protocol: the only place schemagen does I/O.

A backend turns a :class:`~schemagen.exchange.Request` into a
:class:`~schemagen.exchange.Completion`, and raises a
:class:`~schemagen.errors.TransportError` subclass when the transport fails.
Retrying is not its job: :mod:`schemagen.retry` wraps every backend the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Protocol, runtime_checkable

from schemagen.chunks import Delta
from schemagen.exchange import Completion, Endpoint, Request


@runtime_checkable
class Backend(Protocol):
    #: Endpoints this backend can serve ("chat", "completions").
    endpoints: frozenset[Endpoint]
    #: The model name requests are sent for, used for token counts and prices.
    model: str
    #: Whether the server accepts strict tool schemas (OpenAI's ``strict: true``).
    supports_strict: bool

    def complete(self, request: Request) -> Completion: ...

    async def acomplete(self, request: Request) -> Completion: ...

    def close(self) -> None: ...


@runtime_checkable
class StreamingBackend(Protocol):
    """A backend that streams: deltas as they arrive, then the whole :class:`Completion`
    (the one ``complete`` would return). Drivers call a backend without it once instead."""

    def stream(self, request: Request) -> Iterator[Delta | Completion]: ...

    def astream(self, request: Request) -> AsyncIterator[Delta | Completion]: ...
