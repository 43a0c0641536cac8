"""Typed errors. Every error says what went wrong and what to do about it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from schemagen.exchange import Usage
    from schemagen.trace import Trace


class SchemagenError(Exception):
    """Base class of every error schemagen raises."""


class SchemaError(SchemagenError, ValueError):
    """The target type can't become the requested tool schema.

    ``path`` is the JSON path inside the schema (``$.properties.items``) and
    ``keyword`` the JSON-Schema keyword at fault, when there is one.
    """

    def __init__(self, message: str, *, path: str = "$", keyword: str | None = None) -> None:
        self.path = path
        self.keyword = keyword
        where = f" at {path}" + (f" (keyword {keyword!r})" if keyword else "")
        super().__init__(f"{message}{where}")


class ConfigurationError(SchemagenError, ValueError):
    """Arguments or environment don't describe a usable endpoint or option."""


class EmptyTextError(ConfigurationError):
    """The text to extract from is empty or whitespace only: there is nothing to extract (or
    to ground a value in), and a model asked anyway would invent a value. No request is sent."""

    def __init__(self) -> None:
        super().__init__("The text to extract from is empty or whitespace only, so nothing was sent. "
                         "Pass the document's text (check how it was read).")


class MissingDependencyError(SchemagenError, ImportError):
    """An optional extra is not installed. The message carries the pip command."""

    def __init__(self, what: str, extra: str, package: str | None = None) -> None:
        self.extra = extra
        cmd = f'pip install "schemagen[{extra}]"'
        super().__init__(
            f"{what} needs the '{extra}' extra" + (f" ({package} is not importable)" if package else "")
            + f". Install it with: {cmd}"
        )


class TemplateError(SchemagenError):
    """A chat template could not be loaded or rendered."""


class TemplateSecurityError(TemplateError):
    """A chat template tried to reach Python internals; templates are untrusted code."""


class ContextOverflowError(SchemagenError):
    """The request would not fit the model's context window. Nothing was sent."""

    def __init__(self, message: str, *, prompt_tokens: int, max_tokens: int, max_context: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.max_context = max_context
        super().__init__(
            f"{message}: the prompt is about {prompt_tokens} tokens and {max_tokens} are reserved for "
            f"the output, but the context holds {max_context}. Shorten the text, lower max_tokens, "
            "or pass max_context= if the model's window is larger."
        )


class AttemptError(SchemagenError):
    """Base for errors that happen after at least one request was sent.

    Carries ``usage`` (summed over every attempt) and ``trace`` (every attempt).
    """

    usage: Usage | None = None
    trace: Trace | None = None
    #: Streaming only: the last ``Partial`` received before the error (``extract_stream``).
    received: Any = None

    def attach(self, *, usage: Usage | None, trace: Trace | None) -> AttemptError:
        self.usage = usage
        self.trace = trace
        return self


class TruncatedError(AttemptError):
    """The model stopped at its token limit (``finish_reason="length"``).

    The partial output is kept on ``partial``; it is never repaired into a value.
    """

    def __init__(
        self, max_tokens: int | None, partial: str = "", *, reason: str = "length", detail: str = "",
    ) -> None:
        self.max_tokens = max_tokens
        self.partial = partial
        self.reason = reason
        bound = f"max_tokens={max_tokens}" if max_tokens is not None else "the server's token limit"
        why = "entered a repetition loop" if reason == "repetition" else f"hit {bound}"
        super().__init__(
            f"The output was cut off: the model {why} before the tool call was complete "
            f"({len(partial)} characters received{'; ' + detail if detail else ''}). Raise max_tokens= "
            "(or set max_length on unbounded list/str fields) to allow a longer answer, or pass "
            "on_truncation='reask' to retry once with a raised bound."
        )


class RefusalError(AttemptError):
    """The model refused to answer (an explicit ``refusal`` or ``content_filter``)."""

    def __init__(self, refusal: str) -> None:
        self.refusal = refusal
        super().__init__(f"The model refused: {refusal}")


class BudgetExceeded(AttemptError):
    """A token or cost budget would be, or was, exceeded. ``usage`` holds what was spent."""

    def __init__(self, message: str, *, spent: Any = None) -> None:
        self.spent = spent
        super().__init__(message)


class ExtractionError(AttemptError):
    """Every attempt failed validation. ``attempts`` holds each one, the last one last.

    The message contains the last rendered request, the raw output and the
    validation errors, so it can be debugged without turning debug on.
    """

    def __init__(self, message: str, *, attempts: list[Any]) -> None:
        self.attempts = attempts
        super().__init__(message)


class TransportError(AttemptError):
    """The request failed at the HTTP level. ``status_code`` is None for network errors."""

    retryable = False

    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        self.status_code = status_code
        self.retry_after = retry_after
        self.body = body
        super().__init__(message)


class RateLimitError(TransportError):
    """HTTP 429. Retried with backoff, honouring Retry-After."""

    retryable = True


class ServerError(TransportError):
    """HTTP 408, 409 or 5xx. Retried with backoff."""

    retryable = True


class APITimeoutError(TransportError):
    """The server didn't answer in time. Retried with backoff."""

    retryable = True


class APIConnectionError(TransportError):
    """The connection failed or was reset. Retried with backoff."""

    retryable = True


class RequestRejectedError(TransportError):
    """A 4xx the server won't change its mind about (bad request, auth, not found). Not retried."""


class UnsupportedFeatureError(RequestRejectedError):
    """The server refused a feature of the request (``feature``: ``tool_choice``, ``tools``,
    ``strict``, ``response_format``, ``thinking`` or ``max_tokens``). Not retried: with
    ``mode="auto"`` the engine steps down to a mode that avoids it."""

    def __init__(self, message: str, *, feature: str, said: str = "", status_code: int | None = None,
                 body: Any = None) -> None:
        self.feature = feature
        self.said: str = said or message  # the server's own words (secrets scrubbed)
        super().__init__(message, status_code=status_code, body=body)


class ModeUnsupportedError(UnsupportedFeatureError):
    """The mode picked by hand needs a feature this server refuses. ``mode`` and ``said``
    (the server's words) are kept; use ``mode="auto"`` or another mode."""

    def __init__(self, mode: str, feature: str, said: str, *, status_code: int | None = None,
                 body: Any = None, suggestion: str | None = None) -> None:
        self.mode = mode
        hint = " Use mode='auto' to step down automatically" + (
            f", or mode={suggestion!r}." if suggestion else ".")
        super().__init__(
            f"The server does not support mode={mode!r}: it refused `{feature}` "
            f"(HTTP {status_code}): {said}.{hint}",
            feature=feature, said=said, status_code=status_code, body=body,
        )
