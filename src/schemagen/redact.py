"""Secrets never leave through debug output, traces, logs, reprs or errors.

Two layers. Every secret a client is configured with (API key, secret-looking header
and query values, URL userinfo, Azure tokens) is *registered* when the backend is
built and replaced wherever it appears, at least :data:`MIN_SECRET_CHARS` long so a
placeholder key such as ``EMPTY`` doesn't erase a word everywhere. Secrets nobody
registered (a server echoing a header it got) are caught by their *shape*: an
``Authorization`` scheme (``Bearer``/``Basic``/``Token``) followed by a credential,
``sk-...`` keys, JWTs, secret-named query parameters and URL userinfo. Shapes are
anchored on word boundaries and need a random-looking credential, so prose such as
"the Bearer of bad news" is left alone.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any, TypeVar, overload

_K = TypeVar("_K")
_T = TypeVar("_T")

REDACTED = "[REDACTED]"
#: Shorter registered values are not scrubbed: they are placeholders ("EMPTY", "none"), not keys.
MIN_SECRET_CHARS = 8
#: A header or query name whose value is a secret.
SECRET_NAME = re.compile(r"(?i)key|token|secret|auth|password|passwd|cookie|signature|credential")
#: Dict keys whose values :func:`redact` blanks whatever they hold (headers, settings dumps).
_SECRET_KEYS = {"authorization", "api_key", "api-key", "x-api-key", "apikey", "openai-api-key",
                "proxy-authorization", "cookie", "set-cookie", "ocp-apim-subscription-key",
                "x-goog-api-key", "x-auth-token", "azure_ad_token", "password"}
_CRED = r"[A-Za-z0-9._~+/=-]{8,}"
_SHAPES = [
    # An Authorization scheme and its credential: "Bearer abc123...", "Basic dXNlcjpw...".
    re.compile(rf"(?i:\b(?:bearer|basic|token))[ \t]+({_CRED})"),
    re.compile(r"\b(sk-[A-Za-z0-9_-]{8,})"),
    re.compile(r"\b(eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,})"),
]
#: ``?api_key=...`` / ``&sig=...`` in a URL or a query string.
_QUERY = re.compile(r"(?i)([?&;](?:[\w.-]*(?:key|token|secret|auth|password|signature|sig|code)[\w.-]*)=)"
                    r"([^&\s\"'#<>]+)")
#: ``scheme://user:password@host``
_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)([^/\s@:]+:[^/\s@]+|[^/\s@:]{8,})@")

_known_secrets: set[str] = set()
_ordered: list[str] = []  # longest first, so a key is replaced before a prefix of it
_lock = threading.Lock()


def _random_looking(value: str) -> bool:
    """A credential, not a word: it has a digit, or a capital letter after the first character."""
    return any(c.isdigit() for c in value) or any(c.isupper() for c in value[1:])


def register_secret(value: Any) -> None:
    """Remember a secret (an API key, a header value) so it is scrubbed wherever it appears.

    Values shorter than :data:`MIN_SECRET_CHARS` are ignored. ``"Bearer xyz..."`` also
    registers ``xyz...`` alone, since servers often echo only the credential.
    """
    if not isinstance(value, str):
        return
    value = value.strip()
    candidates = {value}
    scheme, _, rest = value.partition(" ")
    if rest and scheme.lower() in ("bearer", "basic", "token", "apikey", "key"):
        candidates.add(rest.strip())
    added = False
    with _lock:
        for secret in candidates:
            if len(secret) >= MIN_SECRET_CHARS and secret not in _known_secrets:
                _known_secrets.add(secret)
                added = True
        if added:
            _ordered[:] = sorted(_known_secrets, key=len, reverse=True)


def register_mapping(values: Mapping[str, Any] | None, *, query: bool = False) -> None:
    """Register the values of secret-named headers (or query parameters)."""
    for name, value in (values or {}).items():
        if SECRET_NAME.search(str(name)) or (query and str(name).lower() in ("sig", "code")):
            register_secret(str(value))


def register_url(url: Any) -> None:
    """Register the userinfo and secret-named query values of a URL."""
    if not url:
        return
    try:
        parts = urllib.parse.urlsplit(str(url))
    except ValueError:
        return
    if parts.password:
        register_secret(parts.password)
        register_secret(urllib.parse.unquote(parts.password))
    if parts.username and parts.password is None:
        register_secret(parts.username)  # a token as the whole userinfo
    register_mapping(dict(urllib.parse.parse_qsl(parts.query)), query=True)


def register_client_secrets(client: Any) -> None:
    """Register every secret an ``openai`` client (OpenAI, Azure, sync or async) holds."""
    for name in ("api_key", "admin_api_key", "webhook_secret", "_azure_ad_token"):
        register_secret(getattr(client, name, None))
    register_mapping(getattr(client, "_custom_headers", None))
    register_mapping(getattr(client, "_custom_query", None), query=True)
    register_url(getattr(client, "base_url", None))
    register_url(getattr(client, "_azure_endpoint", None))


def redact_url(url: Any) -> Any:
    """A URL without userinfo or secret query values (None stays None)."""
    return None if url is None else redact_text(str(url))


def _shape(match: re.Match[str]) -> str:
    secret = match.group(1)
    if not _random_looking(secret.removeprefix("sk-")):
        return match.group(0)
    start, end = match.span(1)
    whole = match.group(0)
    return whole[: start - match.start()] + REDACTED + whole[end - match.start():]


def redact_text(text: str) -> str:
    """``text`` with every registered secret and secret-shaped string replaced."""
    if not isinstance(text, str):
        text = str(text)
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _SHAPES:
        text = pattern.sub(_shape, text)
    text = _QUERY.sub(lambda m: m.group(1) + REDACTED, text)
    return _USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", text)


@overload
def redact(value: dict[_K, Any]) -> dict[_K, Any]: ...
@overload
def redact(value: list[Any] | tuple[Any, ...]) -> list[Any]: ...
@overload
def redact(value: str) -> str: ...
@overload
def redact(value: _T) -> _T: ...  # anything else comes back as it is
def redact(value: object) -> Any:
    """A copy of ``value`` with secret-named keys and secret-looking strings scrubbed."""
    if isinstance(value, dict):
        return {k: (REDACTED if str(k).lower() in _SECRET_KEYS else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


class RedactedError(Exception):
    """Stands in for a third-party exception (an ``openai`` error) in a traceback.

    The original's text may echo a key; this one carries its type name and a scrubbed
    message, so ``raise typed from RedactedError.of(exc)`` prints a clean chain.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name

    @classmethod
    def of(cls, exc: BaseException) -> RedactedError:
        return cls(f"{type(exc).__module__}.{type(exc).__qualname__}", redact_text(str(exc)))


__all__ = [
    "MIN_SECRET_CHARS",
    "REDACTED",
    "RedactedError",
    "redact",
    "redact_text",
    "redact_url",
    "register_client_secrets",
    "register_mapping",
    "register_secret",
    "register_url",
]
