"""Chat templates: load one (GGUF, Hugging Face files, plain Jinja) and render messages with it.

Rendering follows transformers' ``apply_chat_template``: an immutable Jinja sandbox with
``trim_blocks``/``lstrip_blocks``, ``loopcontrols``, a key-order-keeping ``tojson``,
``raise_exception`` and ``strftime_now``. Templates are untrusted code: any reach for Python
internals raises :class:`~schemagen.errors.TemplateSecurityError`. No network, no model.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.parser
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from schemagen.errors import MissingDependencyError, TemplateError, TemplateSecurityError
from schemagen.parse.jsonfix import NotJSON, loads_lenient, loads_strict

Message = Mapping[str, Any]

# Bounds on `*` and `**` inside templates: a template is not allowed to allocate gigabytes.
_MAX_REPEAT_LENGTH = 1_000_000
_MAX_EXPONENT = 1024


class _TemplateRaised(Exception):
    """``raise_exception(...)`` was called by the template itself."""


def _raise_exception(message: str) -> None:
    raise _TemplateRaised(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | str | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # Jinja's own tojson sorts keys and HTML-escapes; chat templates expect neither.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


class _GenerationTag(jinja2.ext.Extension):
    """``{% generation %}...{% endgeneration %}`` marks assistant text for training masks in
    transformers; for rendering it is a no-op wrapper, but templates using it must compile."""

    tags = {"generation"}  # noqa: RUF012 (jinja's Extension API declares it as a class attribute)

    def parse(self, parser: jinja2.parser.Parser) -> list[jinja2.nodes.Node]:
        next(parser.stream)
        body: list[jinja2.nodes.Node] = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return body


class _ChatSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, made loud: an unsafe attribute raises at once instead of
    becoming an Undefined that prints as nothing, and size-bombs via ``*``/``**`` are refused."""

    intercepted_binops = frozenset({"*", "**"})

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        if attribute.startswith("_"):
            what = f"Python internals ({type(obj).__name__}.{attribute})"
        else:
            what = f"a forbidden operation ({type(obj).__name__}.{attribute}: values passed in are read-only)"
        raise SecurityError(f"the template reached for {what}")

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "*":
            for seq, count in ((left, right), (right, left)):
                if (isinstance(seq, str | list | tuple) and isinstance(count, int)
                        and len(seq) * count > _MAX_REPEAT_LENGTH):
                    raise SecurityError(f"the template tried to build a sequence of {len(seq) * count} items")
            return operator.mul(left, right)
        if op == "**":
            if isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
                raise SecurityError(f"the template tried to raise to the power {right}")
            return operator.pow(left, right)
        return super().call_binop(context, op, left, right)


@functools.lru_cache(maxsize=1)
def _environment() -> _ChatSandbox:
    env = _ChatSandbox(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols, _GenerationTag]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


@functools.lru_cache(maxsize=64)
def _compile(source: str) -> jinja2.Template:
    return _environment().from_string(source)


# --------------------------------------------------------------------------- messages


def _content_to_text(content: Any, index: int) -> Any:
    if content is None:
        return ""
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                text = part
            elif isinstance(part, Mapping) and part.get("type", "text") in ("text", "input_text"):
                text = part.get("text") or ""
            else:
                kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
                raise TemplateError(
                    f"message {index} has a {kind!r} content part; only text can be rendered into a prompt"
                )
            if text:
                texts.append(text)
        return "\n".join(texts)
    return content


def _decode_arguments(arguments: Any) -> Any:
    if not isinstance(arguments, str):
        return arguments
    if not arguments.strip():
        return {}
    try:
        return loads_strict(arguments)
    except ValueError:
        pass
    try:
        return loads_lenient(arguments).value
    except NotJSON:
        return arguments  # leave it; the template prints what it was given


def _normalize_tool_call(call: Any) -> Any:
    if not isinstance(call, Mapping):
        return call
    out = dict(call)
    if isinstance(out.get("function"), Mapping):
        function = dict(out["function"])
        if "arguments" in function:
            function["arguments"] = _decode_arguments(function["arguments"])
        out["function"] = function
    if "arguments" in out:
        out["arguments"] = _decode_arguments(out["arguments"])
    return out


def normalize_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages as chat templates expect them; the input is not modified.

    * ``None``/``''`` content becomes ``''`` (so a template never prints ``None`` or ``[]``);
    * a list of text parts becomes one string (parts joined by newlines);
    * tool-call ``arguments`` given as JSON text become dicts, which templates ``tojson``.
    """
    normalized: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TemplateError(f"message {index} is a {type(message).__name__}, not a mapping")
        out = dict(message)
        out["content"] = _content_to_text(message.get("content"), index)
        tool_calls = message.get("tool_calls")
        if tool_calls is not None:
            if tool_calls:
                out["tool_calls"] = [_normalize_tool_call(call) for call in tool_calls]
            else:
                del out["tool_calls"]  # `if message.tool_calls is defined` must not see []
        normalized.append(out)
    return normalized


# --------------------------------------------------------------------------- the template


@dataclass(frozen=True)
class ChatTemplate:
    """A chat template's Jinja source and the special tokens it is rendered with.

    ``tokenizer_adds_bos`` says whether the model's tokenizer puts a BOS in front of the text
    it is given (GGUF ``tokenizer.ggml.add_bos_token``, HF ``add_bos_token``); None if unknown.
    """

    source: str
    bos_token: str = ""
    eos_token: str = ""
    name: str = "chat template"
    tokenizer_adds_bos: bool | None = None

    # ---- constructors

    @classmethod
    def from_string(
        cls, source: str, *, bos_token: str = "", eos_token: str = "", name: str = "inline template",
        tokenizer_adds_bos: bool | None = None,
    ) -> ChatTemplate:
        return cls(source, bos_token=bos_token, eos_token=eos_token, name=name,
                   tokenizer_adds_bos=tokenizer_adds_bos)

    @classmethod
    def from_file(cls, path: str | Path, *, bos_token: str = "", eos_token: str = "") -> ChatTemplate:
        """A plain Jinja file (``chat_template.jinja`` or any other name)."""
        path = Path(path)
        try:
            source = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TemplateError(f"cannot read chat template {str(path)!r}: {exc}") from exc
        return cls(source, bos_token=bos_token, eos_token=eos_token, name=path.name)

    @classmethod
    def from_hf(cls, path: str | Path, *, variant: str = "default") -> ChatTemplate:
        """A Hugging Face model folder, or its ``tokenizer_config.json``/``chat_template.json``.

        In a folder, ``chat_template.jinja`` wins over ``chat_template.json`` over the
        ``chat_template`` key of ``tokenizer_config.json``. When the config holds several named
        templates, ``variant`` picks one (``"default"``, ``"tool_use"``, ...).
        """
        path = Path(path)
        if not path.exists():
            raise TemplateError(f"no such chat template file or folder: {str(path)!r}")
        folder = path if path.is_dir() else path.parent
        # Special tokens: special_tokens_map.json < tokenizer_config.json < the file given.
        config: dict[str, Any] = {}
        for candidate in (folder / "special_tokens_map.json", folder / "tokenizer_config.json"):
            if candidate.is_file() and candidate != path:
                config.update(_read_json(candidate))
        if path.is_file():
            config.update(_read_json(path))

        source: Any = None
        name = folder.name if path.is_dir() else path.name
        if path.is_dir() and (folder / "chat_template.jinja").is_file():
            source = (folder / "chat_template.jinja").read_text(encoding="utf-8")
        elif path.is_dir() and (folder / "chat_template.json").is_file():
            source = _read_json(folder / "chat_template.json").get("chat_template")
        else:
            source = config.get("chat_template")
        if isinstance(source, list):  # named templates: [{"name": ..., "template": ...}]
            named = {item.get("name"): item.get("template") for item in source if isinstance(item, Mapping)}
            if variant not in named:
                raise TemplateError(
                    f"{name!r} has no chat template named {variant!r} (it has: {', '.join(map(str, named))})"
                )
            source = named[variant]
        if not isinstance(source, str) or not source.strip():
            raise TemplateError(f"{str(path)!r} holds no chat template")
        adds_bos = config.get("add_bos_token")
        return cls(
            source,
            bos_token=_token_text(config.get("bos_token")),
            eos_token=_token_text(config.get("eos_token")),
            name=name,
            tokenizer_adds_bos=adds_bos if isinstance(adds_bos, bool) else None,
        )

    @classmethod
    def from_gguf(cls, path: str | Path) -> ChatTemplate:
        """The ``tokenizer.chat_template`` of a GGUF model, with BOS/EOS strings from its vocab.

        Only the metadata header is read (the file is memory-mapped, tensors are not touched).
        """
        path = Path(path)
        if not path.is_file():
            raise TemplateError(f"no such GGUF file: {str(path)!r}")
        stat = path.stat()
        meta = _gguf_metadata(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        source = meta.get("chat_template")
        if not source:
            raise TemplateError(f"{path.name!r} has no tokenizer.chat_template in its metadata")
        return cls(
            source,
            bos_token=meta.get("bos_token", ""),
            eos_token=meta.get("eos_token", ""),
            name=path.name,
            tokenizer_adds_bos=meta.get("add_bos_token"),
        )

    # ---- rendering

    def compile(self) -> jinja2.Template:
        """The compiled template (compiled once per distinct source)."""
        try:
            return _compile(self.source)
        except SecurityError as exc:
            raise self._security_error(exc) from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"chat template {self.name!r} does not compile: {exc.message} (line {exc.lineno})"
            ) from exc

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = True,
        normalize: bool = True,
        **extra: Any,
    ) -> str:
        """The prompt text for ``messages``, as transformers' ``apply_chat_template`` renders it.

        ``normalize=False`` passes the messages as they are (lint uses it to see what a server
        that does not normalise them would produce). ``extra`` reaches the template as variables
        (``enable_thinking``, ``date_string``, ...).
        """
        template = self.compile()
        context: dict[str, Any] = {"bos_token": self.bos_token, "eos_token": self.eos_token, **extra}
        context["messages"] = normalize_messages(messages) if normalize else [dict(m) for m in messages]
        context["tools"] = [dict(tool) for tool in tools] if tools else None
        context["add_generation_prompt"] = add_generation_prompt
        try:
            return template.render(**context)
        except SecurityError as exc:
            raise self._security_error(exc) from None
        except _TemplateRaised as exc:
            raise TemplateError(f"chat template {self.name!r} refused the messages: {exc}") from None
        except jinja2.TemplateError as exc:
            raise TemplateError(f"chat template {self.name!r} failed to render: {exc}") from exc
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError,
                RecursionError) as exc:
            raise TemplateError(
                f"chat template {self.name!r} failed to render: {type(exc).__name__}: {exc}"
            ) from exc

    def _security_error(self, exc: SecurityError) -> TemplateSecurityError:
        return TemplateSecurityError(
            f"chat template {self.name!r} was stopped: {exc}. Chat templates are untrusted code and run "
            "sandboxed; use a template from a source you trust."
        )


def with_system_block(messages: Sequence[Message], block: str) -> list[dict[str, Any]]:
    """Normalized messages with ``block`` appended to the system (or developer) message, or in a
    new system message first when there is none; the input is not modified."""
    out = normalize_messages(messages)
    if out and out[0].get("role") in ("system", "developer"):
        system = out[0]["content"]
        out[0]["content"] = f"{system}\n\n{block}" if system else block
    else:
        out.insert(0, {"role": "system", "content": block})
    return out


_SYSTEM_PROBE = "schemagen_system_probe"
_USER_PROBE = "schemagen_user_probe"


@functools.lru_cache(maxsize=32)
def default_system_prompt(template: ChatTemplate) -> str | None:
    """The system prompt the template writes itself when a conversation has none (SmolLM2's
    "You are a helpful AI assistant named SmolLM..."), found by rendering with and without one."""
    user = {"role": "user", "content": _USER_PROBE}
    try:
        bare = template.render([user], add_generation_prompt=False)
        probed = template.render([{"role": "system", "content": _SYSTEM_PROBE}, user],
                                 add_generation_prompt=False)
    except TemplateError:
        return None
    if _SYSTEM_PROBE not in probed:
        return None
    before, after = probed.split(_SYSTEM_PROBE, 1)
    if len(bare) > len(before) + len(after) and bare.startswith(before) and bare.endswith(after):
        return bare[len(before):len(bare) - len(after)].strip() or None
    return None


def load_template(spec: str | Path | ChatTemplate) -> ChatTemplate:
    """A template from a path: ``.gguf`` file, HF folder, ``.json`` config, or a Jinja file.

    A string that is not a path but contains Jinja tags is taken as the template source.
    """
    if isinstance(spec, ChatTemplate):
        return spec
    if isinstance(spec, str) and ("{%" in spec or "{{" in spec):
        return ChatTemplate.from_string(spec)
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".gguf":
        return ChatTemplate.from_gguf(path)
    if path.is_dir():
        return ChatTemplate.from_hf(path)
    if not path.is_file():
        raise TemplateError(f"no such chat template file or folder: {str(path)!r}")
    if path.suffix.lower() == ".json":
        return ChatTemplate.from_hf(path)
    return ChatTemplate.from_file(path)


def template_from_backend(backend: Any) -> ChatTemplate | None:
    """The chat template a backend exposes, if any: ``chat_template`` (a :class:`ChatTemplate`,
    a path or Jinja source) or ``chat_template_source`` (Jinja source, with ``bos_token`` and
    ``eos_token`` attributes), as the local backend has."""
    found = getattr(backend, "chat_template", None)
    if isinstance(found, ChatTemplate | str | Path) and found:
        return load_template(found)
    source = getattr(backend, "chat_template_source", None)
    if isinstance(source, str) and source.strip():
        return ChatTemplate.from_string(
            source, bos_token=getattr(backend, "bos_token", None) or "",
            eos_token=getattr(backend, "eos_token", None) or "",
            name=f"{type(backend).__name__} chat template",
        )
    return None


# --------------------------------------------------------------------------- file readers


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TemplateError(f"cannot read {str(path)!r}: {exc}") from exc
    if not isinstance(value, dict):
        raise TemplateError(f"{str(path)!r} is not a JSON object")
    return value


def _token_text(token: Any) -> str:
    """A special token as written in tokenizer_config: a string or an AddedToken dict."""
    if isinstance(token, str):
        return token
    if isinstance(token, Mapping) and isinstance(token.get("content"), str):
        return str(token["content"])
    return ""


@functools.lru_cache(maxsize=8)
def _gguf_metadata(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """Chat template, BOS/EOS strings and add_bos flag; cached per file version."""
    del mtime_ns, size  # only part of the cache key
    try:
        from gguf import GGUFReader
    except ImportError as exc:
        raise MissingDependencyError("Reading a chat template from a GGUF file", "local", "gguf") from exc
    try:
        reader = GGUFReader(path, "r")
    except (ValueError, OSError) as exc:
        raise TemplateError(f"{Path(path).name!r} is not a readable GGUF file: {exc}") from exc
    fields = reader.fields

    def text(key: str) -> str | None:
        item = fields.get(key)
        if item is None or not item.data:
            return None
        return bytes(item.parts[item.data[0]]).decode("utf-8", errors="replace")

    def scalar(key: str) -> Any:
        item = fields.get(key)
        if item is None or not item.data:
            return None
        return item.parts[item.data[0]][0]

    meta: dict[str, Any] = {}
    template = text("tokenizer.chat_template")
    if template:
        meta["chat_template"] = template
    adds_bos = scalar("tokenizer.ggml.add_bos_token")
    if adds_bos is not None:
        meta["add_bos_token"] = bool(adds_bos)
    tokens = fields.get("tokenizer.ggml.tokens")
    for role in ("bos", "eos"):
        token_id = scalar(f"tokenizer.ggml.{role}_token_id")
        if tokens is not None and token_id is not None and 0 <= int(token_id) < len(tokens.data):
            meta[f"{role}_token"] = bytes(tokens.parts[tokens.data[int(token_id)]]).decode(
                "utf-8", errors="replace"
            )
    return meta


__all__ = [
    "ChatTemplate",
    "Message",
    "load_template",
    "normalize_messages",
    "template_from_backend",
    "with_system_block",
]
