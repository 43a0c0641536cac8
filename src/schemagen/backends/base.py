"""The backend protocol: the only place schemagen does I/O.

A backend turns a :class:`~schemagen.exchange.Request` into a
:class:`~schemagen.exchange.Completion`, and raises a
:class:`~schemagen.errors.TransportError` subclass when the transport fails.
Retrying is not its job: :mod:`schemagen.retry` wraps every backend the same way.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

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
