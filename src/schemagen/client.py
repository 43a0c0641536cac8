"""The public entry points. Sync and async are twins over :class:`ExtractionRun`."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import time
import warnings
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any, TypeVar, overload

import openai

from schemagen.backends import BACKENDS, Backend, create_backend
from schemagen.backends.base import StreamingBackend
from schemagen.chunks import Delta
from schemagen.engine.bounds import BoundRule
from schemagen.engine.run import BudgetSetting, Extraction, ExtractionRun, Settings, TruncationPolicy
from schemagen.engine.stream import OnInvalid
from schemagen.errors import ConfigurationError, EmptyTextError, TransportError
from schemagen.exchange import Completion, Request
from schemagen.observe import Observer, auto_observers, watch_run, with_retry
from schemagen.observe.hooks import HookFunction, Hooks, HooksSetting
from schemagen.observe.otel import Telemetry
from schemagen.redact import register_mapping
from schemagen.render.messages import Example
from schemagen.retry import RetryPolicy
from schemagen.schema import StrictSetting
from schemagen.streaming import AsyncPartialStream, PartialStream, start_stream
from schemagen.tokens import Counter

T = TypeVar("T")
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
ENV_VARS = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "SCHEMAGEN_MODEL")
_SETTING_NAMES = {f.name for f in dataclasses.fields(Settings)}
#: Settings of the OpenAI client itself: they configure the connection, never the JSON body.
CONNECTION_KEYS = ("default_headers", "default_query", "organization", "project")
#: Per-call request options, as the SDK names them: headers/query/timeout go on the request,
#: extra_body is merged into the body.
REQUEST_OPTIONS = ("extra_headers", "extra_query", "extra_body", "timeout", "max_retries")
DEFAULT_MAX_RETRIES = 3


def _deprecated(old: str, new: str, stacklevel: int = 3) -> None:
    warnings.warn(f"{old}= is deprecated; use {new}= (same meaning). It will be removed in a later release.",
                  DeprecationWarning, stacklevel=stacklevel)


def split_request_options(values: dict[str, Any]) -> dict[str, Any]:
    """Pop the per-call request options out of ``values`` (so they never reach the body)."""
    found = {k: values.pop(k) for k in REQUEST_OPTIONS if k in values}
    register_mapping(found.get("extra_headers"))
    register_mapping(found.get("extra_query"), query=True)
    if "http_client" in values:
        raise ConfigurationError(
            "http_client= is a setting of the openai client: pass client=openai.OpenAI(http_client=...) "
            "and async_client=openai.AsyncOpenAI(http_client=...)")
    if "max_completion_tokens" in values and "max_tokens" in values:
        raise ConfigurationError("Pass max_tokens= or max_completion_tokens=, not both")
    return found


def endpoint_configured() -> bool:
    """Whether the environment names an OpenAI-compatible endpoint."""
    return any(os.environ.get(name) for name in ENV_VARS)


def resolve_backend(
    *,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    client: openai.OpenAI | openai.AsyncOpenAI | None = None,
    backend: Backend | None = None,
    timeout: float = 120.0,
    supports_strict: bool | None = None,
    local_options: dict[str, Any] | None = None,
    async_client: openai.AsyncOpenAI | None = None,
    connection: dict[str, Any] | None = None,
) -> Backend:
    """Pick the backend: explicit > ``local:`` model > client > base_url/env > embedded default.

    ``connection``: :data:`CONNECTION_KEYS` for an OpenAI client schemagen makes; with
    ``client=`` they belong on that client instead (ConfigurationError).
    """
    connection = {k: v for k, v in (connection or {}).items() if v is not None}
    if backend is not None:
        return backend
    model = model or os.environ.get("SCHEMAGEN_MODEL")
    if model and model.startswith("local:"):
        return create_backend("local", model=model[len("local:"):] or None, **(local_options or {}))
    if client is not None or async_client is not None:
        if not model:
            raise ConfigurationError("Pass model= (or set SCHEMAGEN_MODEL) together with client=")
        if connection:
            raise ConfigurationError(
                f"{', '.join(sorted(connection))} are settings of your openai client: set them there "
                "(openai.OpenAI(default_headers=...)), not on schemagen, when you pass client=")
        sync = client if isinstance(client, openai.OpenAI) else None
        async_ = client if isinstance(client, openai.AsyncOpenAI) else async_client
        if sync is None and client is not None and async_client is not None:
            raise ConfigurationError("client= must be a sync openai client when async_client= is given")
        return create_backend("openai", model=model, client=sync, async_client=async_,
                              supports_strict=supports_strict)
    base_url = base_url or os.environ.get("OPENAI_BASE_URL")
    api_key = api_key or os.environ.get("OPENAI_API_KEY")
    if base_url or api_key or model:
        return create_backend("openai", model=model or DEFAULT_OPENAI_MODEL, base_url=base_url,
                              api_key=api_key, timeout=timeout, supports_strict=supports_strict,
                              **connection)
    if "local" not in BACKENDS:
        raise ConfigurationError(
            "No endpoint configured: set OPENAI_BASE_URL / OPENAI_API_KEY / SCHEMAGEN_MODEL, "
            "or pass client=, base_url= or model="
        )
    return create_backend("local", model=None, **(local_options or {}))


def _retry_policy(given: RetryPolicy | None, max_retries: int | None, backend: Backend) -> RetryPolicy:
    """One transport retry count: ``max_retries=``, else the caller's openai client's own
    ``max_retries`` (its SDK retries are switched off, so it is counted once), else 3."""
    if given is not None:
        return given
    if max_retries is None:
        from_client = getattr(backend, "max_retries", None)
        max_retries = from_client if isinstance(from_client, int) else DEFAULT_MAX_RETRIES
    return RetryPolicy(max_retries=max_retries)


class Client:
    """A reusable extractor bound to one backend and default settings.

    >>> sg = Client(base_url="http://127.0.0.1:8080/v1", model="m", retries=2)
    >>> invoice = sg.extract(Invoice, text)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        client: openai.OpenAI | openai.AsyncOpenAI | None = None,
        async_client: openai.AsyncOpenAI | None = None,
        backend: Backend | None = None,
        retries: int = 2,
        max_retries: int | None = None,
        transport_retries: int | None = None,
        retry_policy: RetryPolicy | None = None,
        timeout: float = 120.0,
        strict: StrictSetting = "auto",
        supports_strict: bool | None = None,
        system: str | None = None,
        examples: Iterable[Example] = (),
        max_tokens: int | None = None,
        max_context: int | None = None,
        debug: bool | None = None,
        mode: str | None = None,
        template: Any = None,
        device: str | None = None,
        engine: str | None = None,
        bounds: BoundRule | bool = True,
        on_truncation: TruncationPolicy | None = None,
        budget: BudgetSetting = None,
        mode_cache: str | os.PathLike[str] | None = None,
        hooks: HooksSetting = None,
        telemetry: Telemetry | bool | None = None,
        grounded: bool = False,
        **params: Any,
    ) -> None:
        """``retries``: validation reasks after the first attempt. ``max_retries``: transport
        retries per request (429/5xx/timeouts/resets); default: your openai client's
        ``max_retries`` with ``client=``, else 3. See docs/clients.md. ``on_truncation``: what a
        cut-off answer does, ``"raise"`` or ``"reask"``; default ``"reask"`` for local models,
        ``"raise"`` elsewhere (docs/cost.md)."""
        local_options = {k: v for k, v in {"device": device, "engine": engine}.items() if v is not None}
        if transport_retries is not None:
            _deprecated("transport_retries", "max_retries")
            max_retries = transport_retries if max_retries is None else max_retries
        if "reasks" in params:
            _deprecated("reasks", "retries")
            retries = params.pop("reasks")
        connection = {k: params.pop(k) for k in CONNECTION_KEYS if k in params}
        transport = split_request_options(params)
        self.backend: Backend = resolve_backend(
            model=model, base_url=base_url, api_key=api_key, client=client, backend=backend,
            timeout=timeout, supports_strict=supports_strict, local_options=local_options,
            async_client=async_client, connection=connection,
        )
        from schemagen.render.templates import load_template, template_from_backend

        template = load_template(template) if template is not None else template_from_backend(self.backend)
        if mode is None or mode == "auto":  # auto negotiates chat modes; without chat, raw it is
            mode = "auto" if "chat" in self.backend.endpoints else "raw"
        # mode="auto" remembers per (base_url, model), in this process and optionally on disk.
        from schemagen.mode_cache import ENV_VAR, MEMORY, endpoint_key

        self.mode_cache: str | os.PathLike[str] | None = mode_cache or os.environ.get(ENV_VAR) or None
        self.memory = MEMORY
        self.endpoint_key: str = endpoint_key(getattr(self.backend, "base_url", None), self.backend.model)
        if mode == "raw" and template is None:
            from schemagen.engine.modes.raw import NEEDS_TEMPLATE

            raise ConfigurationError(NEEDS_TEMPLATE)
        self.policy: RetryPolicy = _retry_policy(retry_policy, max_retries, self.backend)
        self.settings: Settings = Settings(
            model=self.backend.model,
            mode=mode,
            system=system,
            examples=tuple(examples),
            reasks=retries,
            strict=strict,
            max_tokens=max_tokens,
            params=params,
            max_context=max_context or getattr(self.backend, "max_context", None),
            debug=debug,
            template=template,
            constrain=bool(getattr(self.backend, "enforces_constraints", False)),
            bounds=bounds,
            # local models: a reask turned more cut-off answers into values than raising did
            # (benchmarks/truncation_policy.py, docs/local.md); remote: the caller's bill, so raise
            on_truncation=on_truncation or ("reask" if getattr(self.backend, "enforces_constraints", False)
                                            else "raise"),
            budget=budget,
            transport=transport,
            grounded=grounded,
        )
        # The backend's own tokenizer, when it has one, beats a tiktoken estimate.
        count = getattr(self.backend, "count_tokens", None)
        self.counter: Counter | None = Counter.from_count(count) if callable(count) else None
        # Observers of every run (hooks, OpenTelemetry): told by drive/adrive, never by the engine.
        self.hooks: Hooks = Hooks.coerce(hooks)
        self.observers: tuple[Observer, ...] = (self.hooks, *auto_observers(telemetry, self.backend))

    def on(self, event: str, fn: HookFunction, *, raise_errors: bool = False) -> HookFunction:
        """Call ``fn(event)`` on a hook event ("request", "response", "parse_error", "reask",
        "retry", "attempt", "done"); see :mod:`schemagen.observe.hooks`."""
        return self.hooks.on(event, fn, raise_errors=raise_errors)

    # ------------------------------------------------------------ plumbing

    def start(self, target: Any, text: str, overrides: dict[str, Any] | None = None) -> ExtractionRun[Any]:
        """A new extraction of ``target`` from ``text`` with this client's settings (sans-IO)."""
        return self._run(target, text, dict(overrides or {}))

    def drive(self, run: ExtractionRun[T]) -> Extraction[T]:
        """Send the run's requests through the backend until it succeeds or raises."""
        [result] = self.steps(run)  # without stream=True, its only event is the Extraction
        assert isinstance(result, Extraction)
        return result

    async def adrive(self, run: ExtractionRun[T]) -> Extraction[T]:
        """Async twin of :meth:`drive`; async hooks are awaited after each report."""
        [result] = [event async for event in self.asteps(run)]
        assert isinstance(result, Extraction)
        return result

    def steps(self, run: ExtractionRun[T], *, stream: bool = False) -> Iterator[Event]:
        """The driving loop (the only one: extract, streaming and batch all come here). Yields
        the run's :class:`Extraction` last. With ``stream=True`` (the backend's ``stream``)
        it also yields, as they happen, each attempt's Request, its Deltas, the TransportError
        before a retry from scratch, and its Completion once the engine has judged it."""
        watch = watch_run(self.observers, run)  # None when nothing observes
        policy = self._policy(run)
        on_retry = with_retry(watch, run.record_retry)
        try:
            while not run.done:
                request = run.next_request()
                if watch:
                    watch.request(request)
                if stream:
                    yield request
                completion: Completion | None = None
                tries = 0
                while completion is None:
                    try:
                        if stream:
                            for event in _deltas(self.backend, request):
                                if isinstance(event, Completion):
                                    completion = event
                                else:
                                    yield event
                        else:
                            completion = self.backend.complete(request)
                    except TransportError as exc:
                        tries += 1
                        wait = policy.next_wait(tries, exc)
                        if wait is not None:
                            on_retry(exc, wait)
                            time.sleep(wait)
                            if stream:
                                yield exc  # what streamed so far is void: the request starts over
                            continue
                        if run.rejected(exc):  # a capability answer: the run adapted, send again
                            self._remember(run)
                            break
                        exc.__context__ = None  # the raw SDK exception; __cause__ is its redacted stand-in
                        raise run.transport_failed(exc) from exc.__cause__
                if completion is None:
                    continue
                if watch:
                    watch.response(completion)
                run.receive(completion)
                self._remember(run)
                if watch:
                    watch.received()
                if stream:
                    yield completion
            result = run.result()
        except BaseException as exc:  # GeneratorExit too: a stream closed early
            if watch:
                watch.finish(None, exc)
            raise
        if watch:
            watch.finish(result, None)
        yield result

    async def asteps(self, run: ExtractionRun[T], *, stream: bool = False) -> AsyncIterator[Event]:
        """Async twin of :meth:`steps`."""
        watch = watch_run(self.observers, run, is_async=True)
        policy = self._policy(run)
        on_retry = with_retry(watch, run.record_retry)
        try:
            while not run.done:
                request = run.next_request()
                if watch:
                    watch.request(request)
                    await watch.drain()
                if stream:
                    yield request
                completion: Completion | None = None
                tries = 0
                while completion is None:
                    try:
                        if stream:
                            async for event in _adeltas(self.backend, request):
                                if isinstance(event, Completion):
                                    completion = event
                                else:
                                    yield event
                        else:
                            completion = await self.backend.acomplete(request)
                    except TransportError as exc:
                        tries += 1
                        wait = policy.next_wait(tries, exc)
                        if wait is not None:
                            on_retry(exc, wait)
                            if watch:
                                await watch.drain()
                            await asyncio.sleep(wait)
                            if stream:
                                yield exc
                            continue
                        if run.rejected(exc):
                            self._remember(run)
                            break
                        exc.__context__ = None  # the raw SDK exception; __cause__ is its redacted stand-in
                        raise run.transport_failed(exc) from exc.__cause__
                if completion is None:
                    continue
                if watch:
                    watch.response(completion)
                    await watch.drain()
                run.receive(completion)
                self._remember(run)
                if watch:
                    watch.received()
                    await watch.drain()
                if stream:
                    yield completion
            result = run.result()
        except BaseException as exc:
            if watch:
                watch.finish(None, exc)
                await watch.drain()
            raise
        if watch:
            watch.finish(result, None)
            await watch.drain()
        yield result

    def _policy(self, run: ExtractionRun[Any]) -> RetryPolicy:
        """The retry policy, with a per-call ``max_retries=`` when the call gave one."""
        count = run.settings.transport.get("max_retries")
        return self.policy if count is None else dataclasses.replace(self.policy, max_retries=count)

    def _remember(self, run: ExtractionRun[Any]) -> None:
        """Keep what the run learned about the endpoint, so the next run starts there (every
        adaptation is followed by a normal return, so a run that fails later is still counted)."""
        if run.negotiated or run.relax or run.completion_key:
            self.memory.put(self.endpoint_key, run.learned(), self.mode_cache)

    def learned(self) -> Any:
        """What ``mode="auto"`` knows about this client's endpoint and model (None: nothing yet)."""
        return self.memory.get(self.endpoint_key, self.mode_cache)

    def _run(self, target: Any, text: str, overrides: dict[str, Any]) -> ExtractionRun[Any]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        settings = self.settings
        if overrides:
            if "reasks" in overrides:
                _deprecated("reasks", "retries", stacklevel=5)
                overrides.setdefault("retries", overrides.pop("reasks"))
            if "retries" in overrides:
                overrides["reasks"] = overrides.pop("retries")
            misplaced = sorted(k for k in (*CONNECTION_KEYS, "base_url", "api_key", "client", "async_client")
                               if k in overrides)
            if misplaced:
                raise ConfigurationError(
                    f"{', '.join(misplaced)} configure the connection, not one call: pass them to "
                    "schemagen.Client(...) (or your openai client). Per call, use extra_headers=, "
                    "extra_query=, extra_body=, timeout= or max_retries=.")
            transport = split_request_options(overrides)
            if transport:
                overrides["transport"] = {**settings.transport, **transport}
            if "examples" in overrides:
                overrides["examples"] = tuple(overrides["examples"])
            params = {k: overrides.pop(k) for k in list(overrides) if k not in _SETTING_NAMES}
            if params:
                overrides["params"] = {**settings.params, **params}
            settings = dataclasses.replace(settings, **overrides)
        return ExtractionRun(target, text, settings, counter=self.counter,
                             supports_strict=getattr(self.backend, "supports_strict", False),
                             learned=self.learned())

    # ------------------------------------------------------------ sync

    # A class gives its instance type; any other target (Literal, a JSON Schema dict...) gives Any.
    @overload
    def extract_result(self, target: type[T], text: str, **overrides: Any) -> Extraction[T]: ...
    @overload
    def extract_result(self, target: Any, text: str, **overrides: Any) -> Extraction[Any]: ...
    def extract_result(self, target: Any, text: str, **overrides: Any) -> Extraction[Any]:
        _check_text(text)
        return self.drive(self._run(target, text, overrides))

    @overload
    def extract(self, target: type[T], text: str, **overrides: Any) -> T: ...
    @overload
    def extract(self, target: Any, text: str, **overrides: Any) -> Any: ...
    def extract(self, target: Any, text: str, **overrides: Any) -> Any:
        return self.extract_result(target, text, **overrides).value

    # ------------------------------------------------------------ async twin

    @overload
    async def aextract_result(self, target: type[T], text: str, **overrides: Any) -> Extraction[T]: ...
    @overload
    async def aextract_result(self, target: Any, text: str, **overrides: Any) -> Extraction[Any]: ...
    async def aextract_result(self, target: Any, text: str, **overrides: Any) -> Extraction[Any]:
        _check_text(text)
        return await self.adrive(self._run(target, text, overrides))

    @overload
    async def aextract(self, target: type[T], text: str, **overrides: Any) -> T: ...
    @overload
    async def aextract(self, target: Any, text: str, **overrides: Any) -> Any: ...
    async def aextract(self, target: Any, text: str, **overrides: Any) -> Any:
        return (await self.aextract_result(target, text, **overrides)).value

    # ------------------------------------------------------------ streaming (schemagen.streaming)

    @overload
    def stream(self, target: type[T], text: str, **overrides: Any) -> PartialStream[T]: ...
    @overload
    def stream(self, target: Any, text: str, **overrides: Any) -> PartialStream[Any]: ...
    def stream(self, target: Any, text: str, **overrides: Any) -> PartialStream[Any]:
        """Partials as the value arrives; the last one has ``.final``. See docs/streaming.md."""
        return PartialStream(self, start_stream(self, target, text, overrides))

    @overload
    def astream(self, target: type[T], text: str, **overrides: Any) -> AsyncPartialStream[T]: ...
    @overload
    def astream(self, target: Any, text: str, **overrides: Any) -> AsyncPartialStream[Any]: ...
    def astream(self, target: Any, text: str, **overrides: Any) -> AsyncPartialStream[Any]:
        """Async twin of :meth:`stream`."""
        return AsyncPartialStream(self, start_stream(self, target, text, overrides))

    def extract_iter(self, target: Any, text: str, *, on_invalid: OnInvalid = "reask",
                     **overrides: Any) -> PartialStream[Any]:
        """For ``list[Item]``: each item, validated, as soon as it closes."""
        return PartialStream(self, start_stream(self, target, text, overrides, items=on_invalid))

    def aextract_iter(self, target: Any, text: str, *, on_invalid: OnInvalid = "reask",
                      **overrides: Any) -> AsyncPartialStream[Any]:
        """Async twin of :meth:`extract_iter`."""
        return AsyncPartialStream(self, start_stream(self, target, text, overrides, items=on_invalid))

    def close(self) -> None:
        """Close the connections schemagen opened; a client you passed stays open."""
        self.backend.close()

    def __repr__(self) -> str:
        return f"Client(backend={self.backend!r}, model={self.settings.model!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: What :meth:`Client.steps` yields (see there).
Event = Request | Delta | Completion | TransportError | Extraction[Any]


def _whole(completion: Completion) -> list[Delta | Completion]:
    """A backend that can't stream: its answer as one delta, then the completion."""
    deltas: list[Delta | Completion] = []
    if completion.tool_calls:
        deltas += [Delta("arguments", c.arguments, i) for i, c in enumerate(completion.tool_calls)]
    elif completion.content:
        deltas.append(Delta("content", completion.content))
    return [*deltas, completion]


def _deltas(backend: Backend, request: Request) -> Iterator[Delta | Completion]:
    if isinstance(backend, StreamingBackend):
        return backend.stream(request)  # no generator in between: this runs once per delta
    return iter(_whole(backend.complete(request)))


async def _adeltas(backend: Backend, request: Request) -> AsyncIterator[Delta | Completion]:
    if isinstance(backend, StreamingBackend):
        async for event in backend.astream(request):
            yield event
    else:
        for event in _whole(await backend.acomplete(request)):
            yield event


# ---------------------------------------------------------------- module-level API

# Connection-level settings: they pick (and key the cache of) the Client, not the call.
_CLIENT_KEYS = ("client", "model", "base_url", "api_key", "backend", "timeout", "device", "engine",
                "supports_strict", "mode", "template", "retry_policy", "transport_retries", "max_retries",
                "async_client", "mode_cache", "hooks", "telemetry", *CONNECTION_KEYS)
_by_openai_client: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Client]] = weakref.WeakKeyDictionary()
_by_config: dict[tuple[Any, ...], Client] = {}
_lock = threading.Lock()


def _check_text(text: str) -> None:
    """Refuse an empty text up front: a model asked anyway would invent a value."""
    if isinstance(text, str) and not text.strip():
        raise EmptyTextError()


def _client_for(kwargs: dict[str, Any]) -> Client:
    """A cached Client for the connection settings in ``kwargs`` (popped from it)."""
    conn = {k: kwargs.pop(k) for k in _CLIENT_KEYS if k in kwargs}
    oa = conn.pop("client", None)
    if oa is None and conn.get("async_client") is not None:
        oa = conn.pop("async_client")
    key = tuple(sorted((k, _hashable(v)) for k, v in conn.items() if k != "backend"))
    if conn.get("backend") is not None:
        return Client(**conn)
    if conn.get("hooks") is not None or conn.get("telemetry") is not None:
        return Client(client=oa, **conn)  # not cached: a cache keyed by callables would only grow
    env = tuple(os.environ.get(name) for name in ENV_VARS)
    with _lock:
        if oa is not None:
            per_client = _by_openai_client.setdefault(oa, {})
            if key not in per_client:
                per_client[key] = Client(client=oa, **conn)
            return per_client[key]
        full_key = (*key, env)
        if full_key not in _by_config:
            _by_config[full_key] = Client(**conn)
        return _by_config[full_key]


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((str(k), _hashable(v)) for k, v in value.items()))
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


@overload
def extract(target: type[T], text: str, **kwargs: Any) -> T: ...
@overload
def extract(target: Any, text: str, **kwargs: Any) -> Any: ...
def extract(target: Any, text: str, **kwargs: Any) -> Any:
    """Extract ``target`` (a Pydantic model, ``list[Model]``, ``Literal``, ``Enum``, ``str``...)
    from ``text``. The endpoint comes from ``client=``/``base_url=``/``model=``, else
    OPENAI_BASE_URL / OPENAI_API_KEY / SCHEMAGEN_MODEL, else the embedded local model."""
    return _client_for(kwargs).extract(target, text, **kwargs)


@overload
def extract_result(target: type[T], text: str, **kwargs: Any) -> Extraction[T]: ...
@overload
def extract_result(target: Any, text: str, **kwargs: Any) -> Extraction[Any]: ...
def extract_result(target: Any, text: str, **kwargs: Any) -> Extraction[Any]:
    """Like :func:`extract`, returning an :class:`Extraction` (value, attempts, usage, trace)."""
    return _client_for(kwargs).extract_result(target, text, **kwargs)


@overload
async def aextract(target: type[T], text: str, **kwargs: Any) -> T: ...
@overload
async def aextract(target: Any, text: str, **kwargs: Any) -> Any: ...
async def aextract(target: Any, text: str, **kwargs: Any) -> Any:
    """Async twin of :func:`extract`."""
    return await _client_for(kwargs).aextract(target, text, **kwargs)


@overload
async def aextract_result(target: type[T], text: str, **kwargs: Any) -> Extraction[T]: ...
@overload
async def aextract_result(target: Any, text: str, **kwargs: Any) -> Extraction[Any]: ...
async def aextract_result(target: Any, text: str, **kwargs: Any) -> Extraction[Any]:
    """Async twin of :func:`extract_result`."""
    return await _client_for(kwargs).aextract_result(target, text, **kwargs)


@overload
def extract_stream(target: type[T], text: str, **kwargs: Any) -> PartialStream[T]: ...
@overload
def extract_stream(target: Any, text: str, **kwargs: Any) -> PartialStream[Any]: ...
def extract_stream(target: Any, text: str, **kwargs: Any) -> PartialStream[Any]:
    """Like :func:`extract`, yielding a :class:`~schemagen.engine.stream.Partial` each time a
    field changes; the last has ``.final`` (also the stream's ``.result()``)."""
    return _client_for(kwargs).stream(target, text, **kwargs)


@overload
def aextract_stream(target: type[T], text: str, **kwargs: Any) -> AsyncPartialStream[T]: ...
@overload
def aextract_stream(target: Any, text: str, **kwargs: Any) -> AsyncPartialStream[Any]: ...
def aextract_stream(target: Any, text: str, **kwargs: Any) -> AsyncPartialStream[Any]:
    """Async twin of :func:`extract_stream` (``async for``; then ``await stream.aresult()``)."""
    return _client_for(kwargs).astream(target, text, **kwargs)


def extract_iter(target: Any, text: str, *, on_invalid: OnInvalid = "reask",
                 **kwargs: Any) -> PartialStream[Any]:
    """For ``list[Item]`` targets: each item, validated, as soon as its closing brace arrives.
    ``on_invalid``: "reask" (the whole call, as extract does) or "skip" (listed on ``.invalid``)."""
    return _client_for(kwargs).extract_iter(target, text, on_invalid=on_invalid, **kwargs)


def aextract_iter(target: Any, text: str, *, on_invalid: OnInvalid = "reask",
                  **kwargs: Any) -> AsyncPartialStream[Any]:
    """Async twin of :func:`extract_iter`."""
    return _client_for(kwargs).aextract_iter(target, text, on_invalid=on_invalid, **kwargs)
