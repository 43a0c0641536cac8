"""Is an HTTP error the server saying "I can't do that"? Pure functions over the status and text.

A capability rejection names the feature it refuses (``tool_choice``, ``tools``, ``strict``,
``response_format``, thinking, ``max_tokens``). Those are answers, not faults: they are never
retried, and ``mode="auto"`` steps down on them (see ``schemagen.engine.negotiate``). Anything
else (401, 429, an unexplained 5xx) stays a transport error.

llama-cpp-python answers an unsupported ``response_format`` with HTTP 500 and a pydantic
validation error naming the field, so a 5xx counts too, but only when its text reads as a
validation or "not supported" error that names a feature.
"""

from __future__ import annotations

import re

#: Feature names, in the order they are looked for: the most specific first.
FEATURES = ("max_tokens", "thinking", "strict", "response_format", "tool_choice", "tools")

_5XX_SAYS_UNSUPPORTED = re.compile(
    r"validation error|literal_error|not supported|unsupported|not implemented|extra_forbidden|"
    r"is not allowed|does not support|invalid value|only .{0,60}(?:is|are) supported", re.I)
_NOT_CAPABILITY = re.compile(r"context length|context_length|maximum context|too many tokens|api key|"
                             r"rate limit", re.I)
_PATTERNS: dict[str, re.Pattern[str]] = {
    "thinking": re.compile(r"\bthinking\b|\breasoning\b", re.I),
    "strict": re.compile(r"\bstrict\b|invalid schema", re.I),
    "response_format": re.compile(r"response_format|json_schema|\bjson_object\b", re.I),
    "tool_choice": re.compile(r"tool_choice|tool choice|forc\w* tool", re.I),
    "tools": re.compile(r"\btools\b|\btool use\b|tool call|function call", re.I),
}
_TOOLS_TOO = re.compile(r"tool", re.I)
#: Where a pydantic-style validation error points: ('body', 'response_format', 'type').
_LOC = re.compile(r"""['"]loc['"]:\s*[(\[]\s*['"]body['"],\s*['"](\w+)['"]""")


def needs_max_completion_tokens(error: BaseException | int | None, text: str = "") -> bool:
    """The server wants ``max_completion_tokens`` instead of ``max_tokens`` (OpenAI's reasoning
    models: "Unsupported parameter: 'max_tokens' is not supported with this model. Use
    'max_completion_tokens' instead."). ``error``: an HTTP error (``status_code``, its text and
    ``body``), or the status with ``text``."""
    if isinstance(error, BaseException):
        text = f"{error} {getattr(error, 'body', '') or ''} {text}"
        error = getattr(error, "status_code", None)
    return error in (400, 422) and "max_completion_tokens" in text and "max_tokens" in text


def capability_feature(status: int | None, text: str) -> str | None:
    """The feature an HTTP error refuses, or None when it is not a capability rejection."""
    if status is None or status in (401, 403, 404, 408, 409, 429):
        return None
    if status >= 500 and not _5XX_SAYS_UNSUPPORTED.search(text):
        return None
    if not (status in (400, 422) or status >= 500):
        return None
    if needs_max_completion_tokens(400 if status >= 500 else status, text):
        return "max_tokens"
    if _NOT_CAPABILITY.search(text):
        return None
    fields = set(_LOC.findall(text))
    if fields:  # a validation error says exactly which fields it refused: judge those only
        text = " ".join(sorted(fields))
    # Thinking only matters here when it conflicts with tools ("Thinking may not be enabled
    # when tool_choice forces tool use").
    if _PATTERNS["thinking"].search(text) and _TOOLS_TOO.search(text):
        return "thinking"
    for feature in ("strict", "response_format", "tool_choice", "tools"):
        if _PATTERNS[feature].search(text):
            return feature
    return None


__all__ = ["FEATURES", "capability_feature", "needs_max_completion_tokens"]
