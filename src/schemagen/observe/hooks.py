"""Hooks: your callables, told what each stage of an extraction did.

    sg = schemagen.Client(hooks={"request": log_body})
    sg.on("done", lambda e: print(e.usage.total_tokens, e.cost))

Events (:data:`HookName`): ``request`` (the exact body about to be sent), ``response`` (the
raw response), ``parse_error`` (the errors a reask will send back), ``reask``,
``retry`` (a transport retry: the error and the wait), ``attempt`` (an attempt ended,
with its :class:`~schemagen.trace.AttemptRecord`) and ``done`` (value or error, usage, cost).

A hook is a sync or an async callable taking one :class:`HookEvent`. A hook that raises
is noted in the run's trace (``trace.notes``) and the extraction goes on, unless it was
registered with ``raise_errors=True``: then its exception ends the extraction.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Union, get_args

from schemagen.errors import ConfigurationError
from schemagen.exchange import Completion, Request, Usage
from schemagen.redact import redact_text
from schemagen.trace import AttemptRecord

if TYPE_CHECKING:
    from schemagen.engine.run import Extraction, ExtractionRun
    from schemagen.observe import Watch

__all__ = ["HOOK_NAMES", "HookEvent", "HookFunction", "HookName", "Hooks", "HooksSetting"]

HookName = Literal["request", "response", "parse_error", "reask", "retry", "attempt", "done"]
HOOK_NAMES: tuple[str, ...] = get_args(HookName)
#: Failed outcomes that are a parse or validation failure (the rest: transport, truncation, refusal).
_PARSE_FAILURES = ("invalid", "no_call")


@dataclass(frozen=True)
class HookEvent:
    """What a hook is told. Fields that don't apply to the event are ``None``."""

    name: HookName
    target: str  # the tool name, e.g. "Invoice"
    attempt: int  # 1-based; 0 when the run ended before its first request
    request: Request | None = None
    completion: Completion | None = None
    record: AttemptRecord | None = None
    errors: str | None = None  # parse_error / reask: the errors sent back to the model
    error: BaseException | None = None  # retry: the transport error; done: the run's error
    wait_s: float | None = None  # retry: seconds until the next try
    usage: Usage | None = None  # done: the whole run's usage
    value: Any = None  # done: the validated value

    @property
    def body(self) -> dict[str, Any] | None:
        """The exact request body (request, response, attempt events)."""
        return self.request.body if self.request is not None else None

    @property
    def raw(self) -> dict[str, Any] | None:
        """The server's raw JSON response (response, attempt events)."""
        return self.completion.raw if self.completion is not None else None

    @property
    def cost(self) -> float | None:
        """USD, when the model's price is known (done)."""
        return self.usage.cost if self.usage is not None else None


HookFunction = Callable[[HookEvent], Union[Awaitable[None], None]]  # noqa: UP007
HookFunctions = Union[HookFunction, Iterable[HookFunction]]  # noqa: UP007


@dataclass(frozen=True)
class _Registered:
    fn: HookFunction
    raise_errors: bool


@dataclass
class Hooks:
    """Callables per event; an :class:`~schemagen.observe.Observer` for the drivers."""

    _by_name: dict[str, list[_Registered]] = field(default_factory=dict)

    @classmethod
    def coerce(cls, setting: Hooks | Mapping[str, HookFunctions] | None) -> Hooks:
        """``Client(hooks=...)``: a Hooks (used as is) or ``{event: fn or [fn, ...]}``."""
        if isinstance(setting, Hooks):
            return setting
        hooks = cls()
        for name, fns in (setting or {}).items():
            for fn in ([fns] if callable(fns) else fns):
                hooks.on(name, fn)
        return hooks

    def on(self, name: str, fn: HookFunction, *, raise_errors: bool = False) -> HookFunction:
        """Call ``fn(event)`` on ``name``; returns ``fn``. ``raise_errors=True`` lets its
        exceptions end the extraction (by default they are noted in the trace)."""
        if name not in HOOK_NAMES:
            raise ConfigurationError(f"Unknown hook event {name!r}. Known events: {', '.join(HOOK_NAMES)}")
        if not callable(fn):
            raise ConfigurationError(f"A hook must be callable, got {type(fn).__name__} for {name!r}")
        self._by_name.setdefault(name, []).append(_Registered(fn, raise_errors))
        return fn

    def off(self, name: str, fn: HookFunction) -> None:
        """Stop calling ``fn`` on ``name``."""
        self._by_name[name] = [r for r in self._by_name.get(name, []) if r.fn is not fn]

    def __bool__(self) -> bool:
        return any(self._by_name.values())

    def watch(self, run: ExtractionRun[Any], *, is_async: bool) -> Watch | None:
        """A watch over ``run`` that calls the hooks; ``None`` when none is registered."""
        if not self:
            return None
        return _HookWatch({k: list(v) for k, v in self._by_name.items() if v}, run, is_async)


#: ``Client(hooks=...)``: a :class:`Hooks`, or ``{event: fn or [fn, ...]}``.
HooksSetting = Union[Hooks, Mapping[str, HookFunctions], None]  # noqa: UP007


class _HookWatch:
    """One run's hook calls. Async hooks are awaited by ``drain`` (async driver) or run to the
    end at once (sync driver)."""

    def __init__(self, hooks: dict[str, list[_Registered]], run: ExtractionRun[Any], is_async: bool) -> None:
        self.hooks = hooks
        self.run = run
        self.is_async = is_async
        self.pending: list[tuple[str, _Registered, Awaitable[Any]]] = []
        self.open: AttemptRecord | None = None
        self.finished = False

    # ------------------------------------------------------------ calling

    def emit(self, name: HookName, **fields: Any) -> None:
        registered = self.hooks.get(name)
        if not registered:
            return
        record = self.open or (self.run.trace.attempts[-1] if self.run.trace.attempts else None)
        event = HookEvent(name, self.run.spec.name, record.number if record else 0, **fields)
        for hook in registered:
            try:
                result = hook.fn(event)
            except Exception as exc:
                self._failed(name, hook, exc)
                continue
            if inspect.isawaitable(result):
                if self.is_async:
                    self.pending.append((name, hook, result))
                else:
                    self._run_now(name, hook, result)

    def _run_now(self, name: str, hook: _Registered, awaitable: Awaitable[Any]) -> None:
        """An async hook under the sync driver: run it now, unless a loop already runs here."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            self._failed(name, hook, RuntimeError(
                "an async hook can't run under the sync extract() inside a running event loop; "
                "use aextract() there"))
            return
        try:
            asyncio.run(_wrap(awaitable))
        except Exception as exc:
            self._failed(name, hook, exc)

    async def drain(self) -> None:
        while self.pending:
            name, hook, awaitable = self.pending.pop(0)
            try:
                await awaitable
            except Exception as exc:
                self._failed(name, hook, exc)

    def _failed(self, name: str, hook: _Registered, exc: Exception) -> None:
        fn_name = getattr(hook.fn, "__qualname__", None) or repr(hook.fn)
        self.run.trace.notes.append(redact_text(f"hook {name} {fn_name} raised {type(exc).__name__}: {exc}"))
        if hook.raise_errors:
            self.pending.clear()
            raise exc

    # ------------------------------------------------------------ the driver's reports

    def request(self, request: Request) -> None:
        self.open = self.run.current
        self.emit("request", request=request)

    def response(self, completion: Completion) -> None:
        self.emit("response", request=self.run.current.request, completion=completion)

    def received(self) -> None:
        self._close()

    def retry(self, exc: BaseException, wait_s: float) -> None:
        self.emit("retry", request=self.run.current.request, error=exc, wait_s=wait_s)

    def finish(self, result: Extraction[Any] | None, error: BaseException | None) -> None:
        if self.finished:
            return
        self.finished = True
        if self.open is not None:
            self._close()
        if result is not None:
            self.emit("done", usage=result.usage, value=result.value)
        else:
            self.emit("done", usage=self.run.usage, error=error)

    def _close(self) -> None:
        record = self.open
        if record is None:
            return
        self.open = None
        common = {"request": record.request, "completion": record.completion, "record": record}
        if record.outcome in _PARSE_FAILURES:
            self.emit("parse_error", errors=record.errors, **common)
        self.emit("attempt", errors=record.errors, **common)
        if not self.run.done:
            self.emit("reask", errors=record.errors, **common)


async def _wrap(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
