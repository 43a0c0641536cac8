"""The sync twin of an async ``openai`` client and the async twin of a sync one.

schemagen's sync calls need an ``OpenAI`` and its async calls (``aextract``, batches)
an ``AsyncOpenAI``. A user who passes one gets the other derived here with *every*
setting the SDK exposes, Azure included, so nothing they configured is lost on the
other path. What can't be carried (a custom ``http_client``, an async key provider
for a sync client) raises :class:`~schemagen.errors.ConfigurationError` instead of
being dropped silently. Part of ``backends/``: only builds clients, sends nothing.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import openai
from openai._base_client import AsyncHttpxClientWrapper, SyncHttpxClientWrapper

from schemagen.errors import ConfigurationError

AnyClient = openai.OpenAI | openai.AsyncOpenAI
_AZURE = (openai.AzureOpenAI, openai.AsyncAzureOpenAI)
_SENTINEL = "<missing API key>"  # what the Azure classes store when only a token is given


def is_async_client(client: Any) -> bool:
    return isinstance(client, openai.AsyncOpenAI)


def _cannot(client: AnyClient, what: str) -> ConfigurationError:
    want = "OpenAI (sync)" if is_async_client(client) else "AsyncOpenAI (async)"
    kind = type(client).__name__
    return ConfigurationError(
        f"schemagen needs an {want} client next to your {kind}, and can't copy its {what} to a new "
        f"one. Pass both clients, configured alike: client=<sync client>, async_client=<async client>."
    )


def _sync_provider(provider: Callable[[], Any], client: AnyClient, what: str) -> Callable[[], Any]:
    if inspect.iscoroutinefunction(provider):
        raise _cannot(client, what)
    return provider


def _async_provider(provider: Callable[[], Any]) -> Callable[[], Any]:
    async def key() -> Any:  # the SDK's async client awaits the key provider
        return await asyncio.to_thread(provider)

    return key


def twin_settings(client: AnyClient) -> dict[str, Any]:
    """Keyword arguments that build the twin of ``client`` (``max_retries`` left to the caller)."""
    to_async = not is_async_client(client)
    if not isinstance(client._client, SyncHttpxClientWrapper | AsyncHttpxClientWrapper):
        raise _cannot(client, "http_client (proxies, certificates, transports)")
    if getattr(client, "_provider", None) is not None:
        raise _cannot(client, "provider")
    if getattr(client, "workload_identity", None) is not None:
        raise _cannot(client, "workload_identity")
    azure = isinstance(client, _AZURE)
    query = dict(client._custom_query)
    if azure:
        query.pop("api-version", None)  # the Azure classes add it from api_version
    kwargs: dict[str, Any] = {
        "organization": client.organization,
        "project": client.project,
        "webhook_secret": client.webhook_secret,
        "websocket_base_url": client.websocket_base_url,
        "timeout": client.timeout,
        "default_headers": dict(client._custom_headers) or None,
        "default_query": query or None,
        "_strict_response_validation": client._strict_response_validation,
    }
    if getattr(client, "admin_api_key", None):
        kwargs["admin_api_key"] = client.admin_api_key
    provider = getattr(client, "_api_key_provider", None)
    if provider is not None:
        kwargs["api_key"] = (_async_provider(provider) if to_async
                             else _sync_provider(provider, client, "api_key"))
    elif client.api_key and client.api_key != _SENTINEL:
        kwargs["api_key"] = client.api_key
    if isinstance(client, _AZURE):  # narrows the type, unlike ``azure``
        kwargs["api_version"] = client._api_version
        kwargs["azure_ad_token"] = client._azure_ad_token
        token_provider = client._azure_ad_token_provider
        if token_provider is not None and not to_async:
            token_provider = _sync_provider(token_provider, client, "azure_ad_token_provider")
        kwargs["azure_ad_token_provider"] = token_provider
        endpoint = client._azure_endpoint
        if endpoint is not None:
            kwargs["azure_endpoint"] = str(endpoint)
            kwargs["azure_deployment"] = client._azure_deployment
        else:
            kwargs["base_url"] = str(client.base_url)
    else:
        kwargs["base_url"] = str(client.base_url)
    return kwargs


def twin_class(client: AnyClient) -> type[AnyClient]:
    if isinstance(client, openai.AsyncAzureOpenAI):
        return openai.AzureOpenAI
    if isinstance(client, openai.AzureOpenAI):
        return openai.AsyncAzureOpenAI
    return openai.OpenAI if is_async_client(client) else openai.AsyncOpenAI


def make_twin(client: AnyClient) -> AnyClient:
    """A new client of the other kind, configured like ``client``, with SDK retries off
    (:mod:`schemagen.retry` retries; ``client.max_retries`` is honoured there)."""
    settings = twin_settings(client)
    twin: AnyClient = twin_class(client)(max_retries=0, **settings)
    return twin


__all__ = ["is_async_client", "make_twin", "twin_class", "twin_settings"]
