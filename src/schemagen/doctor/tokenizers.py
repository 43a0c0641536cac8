"""Token counters for local renders: a GGUF vocabulary, a tokenizer.json, the backend's, the server's.

Only ``server_tokenizer`` does I/O, and only through the backend's ``server_post``.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemagen.errors import MissingDependencyError, TransportError


@dataclass(frozen=True)
class Tokenizer:
    """Counts the tokens of a prompt text, special-token markers parsed as special tokens.

    ``adds_bos``: whether counts include a BOS the tokenizer puts in front (None: unknown).
    """

    count: Callable[[str], int]
    name: str
    adds_bos: bool | None = None


_VOCABS: dict[str, Any] = {}


def _close_vocabs() -> None:
    # Closed before interpreter teardown: llama-cpp-python's __del__ fails once its module is gone.
    while _VOCABS:
        _VOCABS.popitem()[1].close()


def _gguf_vocab(path: str) -> Any:
    if path not in _VOCABS:
        import llama_cpp

        if not _VOCABS:
            atexit.register(_close_vocabs)
        _VOCABS[path] = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    return _VOCABS[path]


def gguf_tokenizer(path: str | Path) -> Tokenizer:
    """The tokenizer of a GGUF file, read with llama-cpp-python's ``vocab_only`` (no weights)."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            "Counting tokens with a GGUF tokenizer", "local", "llama-cpp-python"
        ) from exc
    vocab = _gguf_vocab(str(Path(path).resolve()))

    def count(text: str) -> int:
        return len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    return Tokenizer(count, f"gguf:{Path(path).name}", adds_bos=False)


def hf_tokenizer(path: str | Path) -> Tokenizer:
    """A Hugging Face ``tokenizer.json`` (or a model folder holding one), read with ``tokenizers``."""
    path = Path(path)
    file = path / "tokenizer.json" if path.is_dir() else path
    try:
        from tokenizers import Tokenizer as HFTokenizer
    except ImportError as exc:
        raise MissingDependencyError(
            "Counting tokens with a tokenizer.json", "transformers", "tokenizers"
        ) from exc
    try:
        tokenizer = HFTokenizer.from_file(str(file))
    except Exception as exc:  # tokenizers raises its own exception type for unreadable files
        raise ValueError(f"cannot read a tokenizer from {str(file)!r}: {exc}") from exc

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return Tokenizer(count, f"tokenizers:{file.parent.name}/{file.name}", adds_bos=False)


def tokenizer_from_path(path: str | Path) -> Tokenizer:
    """A ``.gguf`` file's tokenizer, else a Hugging Face ``tokenizer.json`` (file or folder)."""
    return gguf_tokenizer(path) if str(path).lower().endswith(".gguf") else hf_tokenizer(path)


def backend_tokenizer(backend: Any) -> Tokenizer | None:
    """The backend's own counter (the local backend has ``count_tokens``)."""
    counter = getattr(backend, "count_tokens", None)
    return Tokenizer(counter, f"{type(backend).__name__}.count_tokens") if callable(counter) else None


def server_tokenizer(backend: Any) -> Tokenizer | None:
    """The server's tokenizer through its tokenize route: llama-cpp-python ``/extras/tokenize``,
    vLLM ``/tokenize`` (``prompt``), llama.cpp ``/tokenize`` (``content``). None if none answers."""
    post = getattr(backend, "server_post", None)
    if post is None:
        return None
    model = getattr(backend, "model", "")
    forms: list[tuple[str, str, Callable[[str], dict[str, Any]]]] = [
        ("/extras/tokenize", "llama-cpp-python /extras/tokenize", lambda t: {"input": t, "model": model}),
        ("/tokenize", "vLLM /tokenize", lambda t: {"model": model, "prompt": t, "add_special_tokens": False}),
        (
            "/tokenize",
            "llama.cpp /tokenize",
            lambda t: {"content": t, "add_special": False, "parse_special": True},
        ),
    ]
    for path, name, make in forms:

        def count(text: str, path: str = path, make: Callable[[str], dict[str, Any]] = make) -> int:
            return _token_count(post(path, make(text)))

        try:
            if count("hello world") > 0:
                return Tokenizer(count, f"server {name}", adds_bos=None)
        except (TransportError, ValueError):
            continue
    return None


def _token_count(data: Any) -> int:
    if isinstance(data, Mapping):
        if isinstance(data.get("count"), int):
            return int(data["count"])
        if isinstance(data.get("tokens"), list):
            return len(data["tokens"])
    raise ValueError(f"not a tokenize response: {str(data)[:100]}")


__all__ = [
    "Tokenizer",
    "backend_tokenizer",
    "gguf_tokenizer",
    "hf_tokenizer",
    "server_tokenizer",
    "tokenizer_from_path",
]
