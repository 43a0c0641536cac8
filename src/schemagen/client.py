"""The public entry points. Sync and async are twins over :class:`ExtractionRun`."""

from __future__ import annotations

import dataclasses
import os
import threading
import weakref
from collections.abc import Iterable
from functools import partial
from typing import Any, TypeVar, overload

import openai

from schemagen.backends import BACKENDS, Backend, create_backend
from schemagen.engine.bounds import BoundRule
from schemagen.engine.run import BudgetSetting, Extraction, ExtractionRun, Settings, TruncationPolicy
from schemagen.engine.stream import OnInvalid
from schemagen.errors import ConfigurationError, TransportError
from schemagen.render.messages import Example
from schemagen.retry import RetryPolicy
from schemagen.schema import StrictSetting
from schemagen.streaming import AsyncPartialStream, PartialStream, start_stream
from schemagen.tokens import Counter

T = TypeVar("T")
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
ENV_VARS = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "SCHEMAGEN_MODEL")
_SETTING_NAMES = {f.name for f in dataclasses.fields(Settings)}


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
) -> Backend:
    """Pick the backend: explicit > ``local:`` model > client > base_url/env > embedded default."""
    if backend is not None:
        return backend
    model = model or os.environ.get("SCHEMAGEN_MODEL")
    if model and model.startswith("local:"):
        return create_backend("local", model=model[len("local:"):] or None, **(local_options or {}))
    if client is not None:
        if not model:
            raise ConfigurationError("Pass model= (or set SCHEMAGEN_MODEL) together with client=")
        sync = client if isinstance(client, openai.OpenAI) else None
        async_ = client if isinstance(client, openai.AsyncOpenAI) else None
        return create_backend("openai", model=model, client=sync, async_client=async_,
                              supports_strict=supports_strict)
    base_url = base_url or os.environ.get("OPENAI_BASE_URL")
    api_key = api_key or os.environ.get("OPENAI_API_KEY")
    if base_url or api_key or model:
        return create_backend("openai", model=model or DEFAULT_OPENAI_MODEL, base_url=base_url,
                              api_key=api_key, timeout=timeout, supports_strict=supports_strict)
    if "local" not in BACKENDS:
        raise ConfigurationError(
            "No endpoint configured: set OPENAI_BASE_URL / OPENAI_API_KEY / SCHEMAGEN_MODEL, "
            "or pass client=, base_url= or model="
        )
    return create_backend("local", model=None, **(local_options or {}))


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
        backend: Backend | None = None,
        retries: int = 2,
        transport_retries: int = 3,
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
        on_truncation: TruncationPolicy = "raise",
        budget: BudgetSetting = None,
        **params: Any,
    ) -> None:
        local_options = {k: v for k, v in {"device": device, "engine": engine}.items() if v is not None}
        self.backend = resolve_backend(
            model=model, base_url=base_url, api_key=api_key, client=client, backend=backend,
            timeout=timeout, supports_strict=supports_strict, local_options=local_options,
        )
        from schemagen.render.templates import load_template, template_from_backend

        template = load_template(template) if template is not None else template_from_backend(self.backend)
        if mode is None:
            mode = "tools" if "chat" in self.backend.endpoints else "raw"
        if mode == "raw" and template is None:
            from schemagen.engine.modes.raw import NEEDS_TEMPLATE

            raise ConfigurationError(NEEDS_TEMPLATE)
        self.policy = retry_policy or RetryPolicy(max_retries=transport_retries)
        self.settings = Settings(
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
            on_truncation=on_truncation,
            budget=budget,
        )
        # The backend's own tokenizer, when it has one, beats a tiktoken estimate.
        count = getattr(self.backend, "count_tokens", None)
        self.counter = Counter.from_count(count) if callable(count) else None

    # ------------------------------------------------------------ plumbing

    def start(self, target: Any, text: str, overrides: dict[str, Any] | None = None) -> ExtractionRun[Any]:
        """A new extraction of ``target`` from ``text`` with this client's settings (sans-IO)."""
        return self._run(target, text, dict(overrides or {}))

    def drive(self, run: ExtractionRun[T]) -> Extraction[T]:
        """Send the run's requests through the backend until it succeeds or raises."""
        while not run.done:
            request = run.next_request()
            try:
                completion = self.policy.call(partial(self.backend.complete, request), run.record_retry)
            except TransportError as exc:
                raise run.transport_failed(exc) from exc.__cause__
            run.receive(completion)
        return run.result()

    async def adrive(self, run: ExtractionRun[T]) -> Extraction[T]:
        """Async twin of :meth:`drive`."""
        while not run.done:
            request = run.next_request()
            try:
                send = partial(self.backend.acomplete, request)
                completion = await self.policy.acall(send, run.record_retry)
            except TransportError as exc:
                raise run.transport_failed(exc) from exc.__cause__
            run.receive(completion)
        return run.result()

    def _run(self, target: Any, text: str, overrides: dict[str, Any]) -> ExtractionRun[Any]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        settings = self.settings
        if overrides:
            if "retries" in overrides:
                overrides["reasks"] = overrides.pop("retries")
            if "examples" in overrides:
                overrides["examples"] = tuple(overrides["examples"])
            params = {k: overrides.pop(k) for k in list(overrides) if k not in _SETTING_NAMES}
            if params:
                overrides["params"] = {**settings.params, **params}
            settings = dataclasses.replace(settings, **overrides)
        return ExtractionRun(target, text, settings, counter=self.counter,
                             supports_strict=getattr(self.backend, "supports_strict", False))

    # ------------------------------------------------------------ sync

    def extract_result(self, target: type[T] | Any, text: str, **overrides: Any) -> Extraction[T]:
        return self.drive(self._run(target, text, overrides))

    def extract(self, target: type[T] | Any, text: str, **overrides: Any) -> T:
        return self.extract_result(target, text, **overrides).value

    # ------------------------------------------------------------ async twin

    async def aextract_result(self, target: type[T] | Any, text: str, **overrides: Any) -> Extraction[T]:
        return await self.adrive(self._run(target, text, overrides))

    async def aextract(self, target: type[T] | Any, text: str, **overrides: Any) -> T:
        return (await self.aextract_result(target, text, **overrides)).value

    # ------------------------------------------------------------ streaming (schemagen.streaming)

    def stream(self, target: type[T] | Any, text: str, **overrides: Any) -> PartialStream[T]:
        """Partials as the value arrives; the last one has ``.final``. See docs/streaming.md."""
        return PartialStream(self, start_stream(self, target, text, overrides))

    def astream(self, target: type[T] | Any, text: str, **overrides: Any) -> AsyncPartialStream[T]:
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
        self.backend.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- module-level API

# Connection-level settings: they pick (and key the cache of) the Client, not the call.
_CLIENT_KEYS = ("client", "model", "base_url", "api_key", "backend", "timeout", "device", "engine",
                "supports_strict", "mode", "template", "retry_policy", "transport_retries")
_by_openai_client: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Client]] = weakref.WeakKeyDictionary()
_by_config: dict[tuple[Any, ...], Client] = {}
_lock = threading.Lock()


def _client_for(kwargs: dict[str, Any]) -> Client:
    """A cached Client for the connection settings in ``kwargs`` (popped from it)."""
    conn = {k: kwargs.pop(k) for k in _CLIENT_KEYS if k in kwargs}
    oa = conn.pop("client", None)
    key = tuple(sorted((k, repr(v) if k == "backend" else v) for k, v in conn.items() if k != "backend"))
    if conn.get("backend") is not None:
        return Client(**conn)
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


@overload
def extract(target: type[T], text: str, **kwargs: Any) -> T: ...
@overload
def extract(target: Any, text: str, **kwargs: Any) -> Any: ...
def extract(target: Any, text: str, **kwargs: Any) -> Any:
    """Extract ``target`` (a Pydantic model, ``list[Model]``, ``Literal``, ``Enum``, ``str``...)
    from ``text``. The endpoint comes from ``client=``/``base_url=``/``model=``, else
    OPENAI_BASE_URL / OPENAI_API_KEY / SCHEMAGEN_MODEL, else the embedded local model."""
    return _client_for(kwargs).extract(target, text, **kwargs)


def extract_result(target: Any, text: str, **kwargs: Any) -> Extraction[Any]:
    """Like :func:`extract`, returning an :class:`Extraction` (value, attempts, usage, trace)."""
    return _client_for(kwargs).extract_result(target, text, **kwargs)


async def aextract(target: Any, text: str, **kwargs: Any) -> Any:
    """Async twin of :func:`extract`."""
    return await _client_for(kwargs).aextract(target, text, **kwargs)


async def aextract_result(target: Any, text: str, **kwargs: Any) -> Extraction[Any]:
    """Async twin of :func:`extract_result`."""
    return await _client_for(kwargs).aextract_result(target, text, **kwargs)


def extract_stream(target: Any, text: str, **kwargs: Any) -> PartialStream[Any]:
    """Like :func:`extract`, yielding a :class:`~schemagen.engine.stream.Partial` each time a
    field changes; the last has ``.final`` (also the stream's ``.result()``)."""
    return _client_for(kwargs).stream(target, text, **kwargs)


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
