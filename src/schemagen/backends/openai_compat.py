"""OpenAI-compatible HTTP backend (OpenAI, vLLM, SGLang, llama.cpp, Ollama, ...).

Sends the rendered body verbatim through the ``openai`` package and reads the JSON
back as plain data. The SDK's own retries are switched off: :mod:`schemagen.retry`
owns retrying, so attempts and waits are counted in one place.

A body with ``"stream": true`` is streamed: the deltas are put back together into
the same response a non-streamed call gets, and a :class:`~schemagen.engine.repetition.RepetitionGuard`
watches the content and every tool call's arguments as they grow. When it fires the
stream is closed (the server stops generating) and the completion comes back with
``finish_reason="repetition"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, cast

import openai

if TYPE_CHECKING:
    from openai._types import RequestOptions

try:  # the HTTP library under openai; its read errors mid-stream reach us unwrapped
    import httpx2 as _http
except ImportError:  # pragma: no cover - older openai releases use httpx
    import httpx as _http  # type: ignore[no-redef]

from schemagen.backends._twins import make_twin
from schemagen.backends.capability import capability_feature
from schemagen.backends.openai_batches import OpenAIBatchTransport
from schemagen.chunks import Delta, GuardFactory, StreamAccumulator
from schemagen.engine.repetition import RepetitionGuard
from schemagen.errors import (
    APIConnectionError,
    APITimeoutError,
    ConfigurationError,
    RateLimitError,
    RequestRejectedError,
    ServerError,
    TransportError,
    UnsupportedFeatureError,
)
from schemagen.exchange import Completion, Endpoint, Request, ToolCall, Usage
from schemagen.redact import (
    RedactedError,
    redact,
    redact_text,
    redact_url,
    register_client_secrets,
    register_mapping,
    register_secret,
    register_url,
)

_PATHS: dict[str, str] = {"chat": "/chat/completions", "completions": "/completions"}
_STREAM_ERRORS = (_http.HTTPError, _http.StreamError)
_RETRYABLE_STATUS = {408, 409}
OPENAI_HOSTS = ("api.openai.com",)
#: Extensions to /v1/completions (vLLM, SGLang) that raw mode sends so special tokens survive.
#: Servers that ignore unknown fields (llama.cpp) are fine; a server that answers 400/422 naming
#: one (OpenAI) gets the request again without it, and this backend leaves it out from then on.
OPTIONAL_FIELDS = ("add_special_tokens", "skip_special_tokens")


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return float(ms) / 1000.0
        value = headers.get("retry-after")
    except AttributeError:
        return None
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def map_openai_error(exc: Exception) -> TransportError:
    """The typed schemagen error for an ``openai`` exception (secrets scrubbed)."""
    message = redact_text(str(exc))
    if isinstance(exc, openai.APITimeoutError):
        return APITimeoutError(f"The request timed out: {message}")
    if isinstance(exc, openai.APIConnectionError):
        return APIConnectionError(f"The connection failed: {message}")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retry_after = parse_retry_after(exc.response.headers)
        body = redact(exc.body)
        feature = capability_feature(status, f"{message} {_body_text(body)}")
        if feature is not None:  # an answer about what the server can do, not a fault
            return UnsupportedFeatureError(f"The server refused `{feature}` (HTTP {status}): {message}",
                                           feature=feature, said=message, status_code=status, body=body)
        if status == 429:
            return RateLimitError(f"Rate limited (HTTP 429): {message}", status_code=status,
                                  retry_after=retry_after, body=body)
        if status in _RETRYABLE_STATUS or status >= 500:
            return ServerError(f"Server error (HTTP {status}): {message}", status_code=status,
                               retry_after=retry_after, body=body)
        hint = ""
        if status in (401, 403):
            hint = " Check the API key (OPENAI_API_KEY or api_key=)."
        elif status == 404:
            hint = " Check base_url and the model name."
        elif "context" in message.lower() and "length" in message.lower():
            hint = " The prompt is too long: pass max_context= to have it checked before sending."
        return RequestRejectedError(f"The server rejected the request (HTTP {status}): {message}.{hint}",
                                    status_code=status, body=body)
    return TransportError(f"Transport failure: {message}")


def _body_text(body: Any) -> str:
    try:
        return redact_text(json.dumps(body, default=str)) if body is not None else ""
    except (TypeError, ValueError):
        return ""


def rejected_fields(exc: Exception, body: dict[str, Any]) -> list[str]:
    """The optional fields of ``body`` that a 400/422 error names: the server refused them."""
    if not isinstance(exc, openai.APIStatusError) or exc.status_code not in (400, 422):
        return []
    try:
        said = f"{exc} {json.dumps(exc.body, default=str)}"
    except (TypeError, ValueError):
        said = str(exc)
    return [name for name in OPTIONAL_FIELDS if name in body and name in said]


def wants_max_completion_tokens(exc: Exception | str, body: dict[str, Any]) -> bool:
    """Whether a 400 says the model takes ``max_completion_tokens``, not ``max_tokens``
    (OpenAI's reasoning models, under any fine-tuned or Azure deployment name). Pure."""
    if "max_tokens" not in body:
        return False
    if isinstance(exc, str):
        said = exc
    elif isinstance(exc, openai.APIStatusError) and exc.status_code in (400, 422):
        try:
            said = f"{exc} {json.dumps(exc.body, default=str)}"
        except (TypeError, ValueError):
            said = str(exc)
    else:
        return False
    return "max_tokens" in said and ("max_completion_tokens" in said or "not supported" in said.lower())


def use_max_completion_tokens(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with ``max_tokens`` sent as ``max_completion_tokens``. Pure."""
    out = {k: v for k, v in body.items() if k != "max_tokens"}
    out["max_completion_tokens"] = body["max_tokens"]
    return out


def _arguments_text(arguments: Any) -> str:
    if arguments is None:
        return ""
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def completion_from_json(data: dict[str, Any], endpoint: Endpoint) -> Completion:
    """Normalise a chat or text completion response."""
    choices = data.get("choices") or []
    if not choices:
        raise ServerError(f"The response has no choices: {redact_text(json.dumps(data)[:300])}")
    choice = choices[0]
    usage = Usage.from_openai(data.get("usage"))
    if endpoint == "completions":
        return Completion(content=choice.get("text") or "", finish_reason=choice.get("finish_reason"),
                          usage=usage, raw=data)
    message = choice.get("message") or {}
    calls = tuple(
        ToolCall(
            name=(tc.get("function") or {}).get("name") or "",
            arguments=_arguments_text((tc.get("function") or {}).get("arguments")),
            id=tc.get("id"),
        )
        for tc in message.get("tool_calls") or ()
    )
    return Completion(
        content=message.get("content"),
        tool_calls=calls,
        finish_reason=choice.get("finish_reason"),
        refusal=message.get("refusal"),
        usage=usage,
        raw=data,
    )


class OpenAIBackend:
    """Chat and text completions over the OpenAI HTTP API, sync and async twins."""

    endpoints: frozenset[Endpoint] = frozenset({"chat", "completions"})
    max_concurrency: int | None = None  # a server takes what the batch's concurrency allows

    def __init__(
        self,
        *,
        model: str,
        client: openai.OpenAI | None = None,
        async_client: openai.AsyncOpenAI | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        supports_strict: bool | None = None,
        default_headers: dict[str, str] | None = None,
        default_query: dict[str, object] | None = None,
        organization: str | None = None,
        project: str | None = None,
        repetition_guard: GuardFactory | bool = True,
    ) -> None:
        """``repetition_guard``: for streamed requests, True = the default guard, a
        factory = custom thresholds, False = none.

        With ``client=`` and/or ``async_client=`` the caller's clients are used as they are
        (every setting reaches the wire); a missing twin is derived from the other with
        every setting (:mod:`schemagen.backends._twins`). Only clients made here are closed.
        """
        if client is None and async_client is None and not (base_url or api_key):
            raise ConfigurationError("OpenAIBackend needs a client, or a base_url/api_key")
        self.model = model
        source = client or async_client
        #: the caller's ``max_retries``: it becomes the transport retry count (SDK retries are off).
        self.max_retries: int | None = source.max_retries if source is not None else None
        if source is not None:
            base_url = str(source.base_url)
            for given in (client, async_client):
                register_client_secrets(given)
        else:
            register_secret(api_key)
            register_mapping(default_headers)
            register_mapping(default_query, query=True)
            register_url(base_url)
        self._settings: dict[str, Any] = {
            "base_url": base_url, "api_key": api_key or "not-needed", "timeout": timeout,
            "default_headers": default_headers, "default_query": default_query,
            "organization": organization, "project": project,
        }
        self._client = client
        self._async_client = async_client
        self._given_async = async_client is not None
        #: the caller's client is an Azure OpenAI one (its Batch API paths differ)
        self.azure = isinstance(source, openai.AzureOpenAI | openai.AsyncAzureOpenAI)
        self._own_sync = False  # True once self._client is one this backend made
        self._async_loop: asyncio.AbstractEventLoop | None = None  # loop of the async client we made
        self._closer: AsyncIterator[None] | None = None  # see _closed_with_loop
        host = (base_url or "https://api.openai.com/v1").split("://", 1)[-1].split("/", 1)[0]
        host = host.rsplit("@", 1)[-1]
        self.supports_strict = supports_strict if supports_strict is not None else host in OPENAI_HOSTS
        self.base_url = base_url
        self.rejected: set[str] = set()  # optional fields this server refused (OPTIONAL_FIELDS)
        self.token_param: str | None = None  # "max_completion_tokens" once the server asked for it
        guard: GuardFactory | None
        if repetition_guard is True:
            guard = RepetitionGuard
        elif repetition_guard is False:
            guard = None
        else:
            guard = repetition_guard
        self.repetition_guard = guard

    @property
    def client(self) -> openai.OpenAI:
        if self._client is None:
            if self._async_client is not None and self._given_async:
                self._client = cast(openai.OpenAI, make_twin(self._async_client))
            else:
                self._client = openai.OpenAI(max_retries=0, **self._settings)
            self._own_sync = True
        return self._client

    @property
    def async_client(self) -> openai.AsyncOpenAI:
        if self._given_async:
            assert self._async_client is not None
            return self._async_client
        # A connection pool belongs to the event loop that opened it: one made by us is
        # remade in a new loop (e.g. each asyncio.run / extract_many), or every request
        # would fail with "Event loop is closed". A client the caller passed is theirs.
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        stale = self._async_loop is not None and loop not in (None, self._async_loop)
        if stale and self._async_client is not None:
            _discard(self._async_client)  # its loop is gone: close its pool without it, drop it
            self._async_client = None
        if self._async_client is None:
            if self._client is not None and not self._own_sync:
                self._async_client = cast(openai.AsyncOpenAI, make_twin(self._client))
            else:
                self._async_client = openai.AsyncOpenAI(max_retries=0, **self._settings)
            self._async_loop = loop
            if loop is not None:  # close the pool while its loop still runs (asyncio.run's shutdown)
                self._closer = _closed_with_loop(self._async_client)
                loop.create_task(_start(self._closer))
        return self._async_client

    def batch_transport(self) -> OpenAIBatchTransport:
        """This endpoint's Files and Batches APIs, for ``mode='batch_api'``."""
        return OpenAIBatchTransport(lambda: self.async_client)

    def _body(self, request: Request) -> tuple[dict[str, Any], list[str]]:
        """The body to send: verbatim, less optional fields this server has refused before."""
        left_out = [name for name in OPTIONAL_FIELDS if name in self.rejected and name in request.body]
        body, notes = request.body, []
        if left_out:
            body = {k: v for k, v in body.items() if k not in left_out}
            notes.append(f"left out {', '.join(left_out)}: this server rejected them earlier")
        if self.token_param == "max_completion_tokens" and "max_tokens" in body:
            body = use_max_completion_tokens(body)
            notes.append("sent max_completion_tokens: this server refused max_tokens earlier")
        return body, notes

    def _drop(self, exc: Exception, body: dict[str, Any]) -> tuple[dict[str, Any], list[str]] | None:
        """The body to resend after a 400 that names a field this backend can do without."""
        if wants_max_completion_tokens(exc, body):
            self.token_param = "max_completion_tokens"
            status = getattr(exc, "status_code", "?")
            return use_max_completion_tokens(body), [
                f"the server refused max_tokens (HTTP {status}); resent as max_completion_tokens"]
        refused = rejected_fields(exc, body)
        if not refused:
            return None
        self.rejected.update(refused)
        status = getattr(exc, "status_code", "?")
        note = (f"the server rejected {', '.join(refused)} (HTTP {status}); resent without them, so "
                "special tokens may be added to the prompt or dropped from the output")
        return {k: v for k, v in body.items() if k not in refused}, [note]

    @staticmethod
    def _options(request: Request) -> RequestOptions:
        """Per-call request options: the caller's headers/query/timeout; SDK retries off
        (schemagen.retry retries, with the caller's max_retries as its count)."""
        return cast("RequestOptions", {**request.options, "max_retries": 0})

    def complete(self, request: Request) -> Completion:
        if request.body.get("stream"):
            return self._complete_streamed(request)
        body, notes = self._body(request)
        path, options = _PATHS[request.endpoint], self._options(request)
        try:
            try:
                data = self.client.post(path, body=body, cast_to=object, options=options)
            except openai.APIStatusError as exc:
                retry = self._drop(exc, body)
                if retry is None:
                    raise
                body, more = retry
                notes += more
                data = self.client.post(path, body=body, cast_to=object, options=options)
        except openai.OpenAIError as exc:
            raise map_openai_error(exc) from RedactedError.of(exc)
        return self._completion(data, request, notes)

    async def acomplete(self, request: Request) -> Completion:
        if request.body.get("stream"):
            return await self._acomplete_streamed(request)
        body, notes = self._body(request)
        path, options = _PATHS[request.endpoint], self._options(request)
        try:
            try:
                data = await self.async_client.post(path, body=body, cast_to=object, options=options)
            except openai.APIStatusError as exc:
                retry = self._drop(exc, body)
                if retry is None:
                    raise
                body, more = retry
                notes += more
                data = await self.async_client.post(path, body=body, cast_to=object, options=options)
        except openai.OpenAIError as exc:
            raise map_openai_error(exc) from RedactedError.of(exc)
        return self._completion(data, request, notes)

    @staticmethod
    def _completion(data: Any, request: Request, notes: list[str]) -> Completion:
        if not isinstance(data, dict):  # a proxy's HTML page, an empty body: retried like a 5xx
            shown = redact_text(str(data)[:200])
            raise ServerError(f"The server answered HTTP 200 with a body that is not a JSON object: "
                              f"{shown!r}. Check base_url points at an OpenAI-compatible API.",
                              status_code=200)
        completion = completion_from_json(cast(dict[str, Any], data), request.endpoint)
        return dataclasses.replace(completion, notes=tuple(notes)) if notes else completion

    # ------------------------------------------------------------ beyond the OpenAI API

    @property
    def server_root(self) -> str:
        """The server's address without the API prefix: ``http://host:8000/v1`` -> ``http://host:8000``."""
        url = str(self.client.base_url).rstrip("/")
        return url[: -len("/v1")] if url.endswith("/v1") else url

    def server_post(self, path: str, body: dict[str, Any]) -> Any:
        """POST JSON to a server-specific route outside the OpenAI API (vLLM ``/tokenize``,
        llama.cpp ``/apply-template``), relative to :attr:`server_root`. Used by ``doctor``."""
        try:
            return self.client.post(f"{self.server_root}/{path.lstrip('/')}", body=body, cast_to=object)
        except openai.OpenAIError as exc:
            raise map_openai_error(exc) from RedactedError.of(exc)

    def server_get(self, path: str) -> Any:
        """GET a server-specific route (llama.cpp ``/props``), relative to :attr:`server_root`."""
        try:
            return self.client.get(f"{self.server_root}/{path.lstrip('/')}", cast_to=object)
        except openai.OpenAIError as exc:
            raise map_openai_error(exc) from RedactedError.of(exc)

    def _complete_streamed(self, request: Request) -> Completion:
        *_, completion = self.stream(request)
        assert isinstance(completion, Completion)
        return completion

    async def _acomplete_streamed(self, request: Request) -> Completion:
        last: Delta | Completion | None = None
        async for last in self.astream(request):  # noqa: B007 - the last event is the completion
            pass
        assert isinstance(last, Completion)
        return last

    def stream(self, request: Request) -> Iterator[Delta | Completion]:
        """Stream ``request``: each delta as it arrives, then the whole :class:`Completion`
        (the one :meth:`complete` returns). The repetition guard closes a looping stream."""
        request = _streamed(request)
        body, notes = self._body(request)
        acc = StreamAccumulator(request.endpoint, self.repetition_guard)
        try:
            stream = self.client.post(_PATHS[request.endpoint], body=body, cast_to=object,
                                      options=self._options(request),
                                      stream=True, stream_cls=openai.Stream[object])
            try:
                if not _is_event_stream(stream.response):  # the server ignored stream=True
                    stream.response.read()
                    completion = self._completion(stream.response.json(), request, notes)
                    yield from _whole(completion)
                    yield completion
                    return
                for chunk in stream:
                    fired = acc.add(chunk)
                    yield from acc.take()
                    if fired:
                        break  # closing the connection stops the server generating
            finally:
                stream.close()
        except openai.OpenAIError as exc:
            raise map_openai_error(exc) from RedactedError.of(exc)
        except _STREAM_ERRORS as exc:  # read errors mid-stream are not wrapped by openai
            broke = f"The stream broke off: {redact_text(str(exc))}"
            raise APIConnectionError(broke) from RedactedError.of(exc)
        _check_finished(acc)
        yield self._completion(acc.response(request, self.model), request, notes)

    async def astream(self, request: Request) -> AsyncIterator[Delta | Completion]:
        """Async twin of :meth:`stream`."""
        request = _streamed(request)
        body, notes = self._body(request)
        acc = StreamAccumulator(request.endpoint, self.repetition_guard)
        try:
            stream = await self.async_client.post(_PATHS[request.endpoint], body=body, cast_to=object,
                                                  options=self._options(request),
                                                  stream=True, stream_cls=openai.AsyncStream[object])
            try:
                if not _is_event_stream(stream.response):
                    await stream.response.aread()
                    completion = self._completion(stream.response.json(), request, notes)
                    for delta in _whole(completion):
                        yield delta
                    yield completion
                    return
                async for chunk in stream:
                    fired = acc.add(chunk)
                    for delta in acc.take():
                        yield delta
                    if fired:
                        break
            finally:
                await stream.close()
        except openai.OpenAIError as exc:
            raise map_openai_error(exc) from RedactedError.of(exc)
        except _STREAM_ERRORS as exc:
            broke = f"The stream broke off: {redact_text(str(exc))}"
            raise APIConnectionError(broke) from RedactedError.of(exc)
        _check_finished(acc)
        yield self._completion(acc.response(request, self.model), request, notes)

    def close(self) -> None:
        """Close what this backend made; the caller's own clients stay open (they are theirs)."""
        if self._client is not None and self._own_sync:
            self._client.close()
            self._client, self._own_sync = None, False
        if self._async_client is not None and not self._given_async:
            _discard(self._async_client)
            self._async_client, self._async_loop = None, None

    def __repr__(self) -> str:  # never show the key, nor userinfo in the URL
        return f"OpenAIBackend(model={self.model!r}, base_url={redact_url(self.base_url)!r})"


async def _closed_with_loop(client: openai.AsyncOpenAI) -> AsyncIterator[None]:
    """An async generator whose ``finally`` closes ``client``: ``asyncio.run`` finalises
    every started async generator before it closes the loop, so the pool is closed in
    the loop that opened it."""
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await client.close()


async def _start(gen: AsyncIterator[None]) -> None:
    with contextlib.suppress(StopAsyncIteration):
        await gen.__anext__()


def _discard(client: openai.AsyncOpenAI) -> None:
    """Close an async client whose event loop is gone (or not running) without awaiting.

    Left to the garbage collector, its ``__del__`` would schedule the close on whatever
    loop runs then, which fails noisily; kept, every event loop ever used leaks one.
    """
    pool = client._client
    if pool.is_closed:
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop runs here: close it in a throwaway one
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(pool.aclose())
        except Exception:  # sockets bound to the dead loop: nothing left to flush
            pass
        finally:
            loop.close()
    if not pool.is_closed:  # mark it closed so __del__ doesn't try again
        with contextlib.suppress(Exception):
            pool._state = _http._client.ClientState.CLOSED


def _streamed(request: Request) -> Request:
    if request.body.get("stream"):
        return request
    return dataclasses.replace(request, body={**request.body, "stream": True})


def _is_event_stream(response: Any) -> bool:
    return "json" not in str(response.headers.get("content-type", "")).lower()


def _check_finished(acc: StreamAccumulator) -> None:
    """Every server ends a whole stream with a finish_reason; one that stops without it was cut
    short (llama-cpp-python ends a stream with [DONE] when another request arrives), so it is
    retried like a dropped connection. A stream the repetition guard closed is whole."""
    if acc.finish_reason is None and acc.repetition is None:
        raise APIConnectionError(
            "The stream ended without a finish_reason: the server stopped it mid-answer (llama-cpp-python "
            "does this when another request arrives; start it with --interrupt_requests False)")


def _whole(completion: Completion) -> Iterator[Delta]:
    """A completion that arrived in one piece, as deltas (content, then each call's arguments)."""
    if completion.content:
        yield Delta("content", completion.content)
    for index, call in enumerate(completion.tool_calls):
        if call.arguments:
            yield Delta("arguments", call.arguments, index)

