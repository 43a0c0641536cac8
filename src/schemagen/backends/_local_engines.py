"""Constraint engines for local generation: a JSON schema in, a per-generation token guide out.

Each engine has two costs kept apart:

* per loaded model: the engine's view of the vocabulary (llguidance ``LLTokenizer``,
  outlines_core ``Vocabulary``, xgrammar ``TokenizerInfo``), built once;
* per (schema, model): the compiled grammar, built once and cached by the backend.

A generation then asks the compiled grammar for a fresh :class:`GuideState` - a cheap copy of
a pristine matcher - so a warm request compiles nothing.

Every engine emits compact JSON (no optional whitespace), and none is trusted: setup failures
raise, and the generation loop checks the state after every token.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from schemagen.errors import ConfigurationError, MissingDependencyError, SchemaError, SchemagenError

if TYPE_CHECKING:
    from llguidance._lib import JsonCompileOptions

    from schemagen.backends._local_runtimes import Runtime

ENGINES = ("llguidance", "outlines_core", "xgrammar")


class ConstraintError(SchemagenError, RuntimeError):
    """The constraint engine failed while generating (its state went bad, or it never engaged).

    Raised instead of returning text the grammar did not check.
    """


class GuideState(Protocol):
    """One generation's position in a compiled grammar."""

    def forced_tokens(self) -> list[int]: ...

    def accepts(self, token: int) -> bool: ...

    def valid_prefix(self, tokens: list[int]) -> int:
        """How many of ``tokens``, in order, the grammar would accept (0 where unsupported)."""
        ...

    def forced_bytes(self, after: list[int]) -> bytes:
        """The bytes the grammar forces once ``after`` is consumed, whatever their tokenization
        (``b""`` where unsupported); the state is left as it was."""
        ...

    def forced_along(self, tokens: list[int]) -> list[bool]:
        """For each of ``tokens``, whether the grammar forces it there (as a run of
        :meth:`forced_tokens` that ``tokens`` follows); the state is left as it was."""
        ...

    def stops_after(self, tokens: list[int]) -> bool:
        """Whether consuming ``tokens`` ends the grammar (False where unsupported); the state is
        left as it was."""
        ...

    def fill_bitmask(self, bitmask: np.ndarray) -> None: ...

    def consume(self, tokens: list[int]) -> None: ...

    def is_stopped(self) -> bool: ...

    def is_accepting(self) -> bool: ...


class CompiledGrammar(Protocol):
    engine: str

    def new_state(self) -> GuideState: ...


class Engine(Protocol):
    """An engine bound to one loaded model (its vocabulary view is built in ``__init__``).

    ``compact=True`` allows no whitespace between JSON tokens; ``False`` allows one optional
    space where JSON allows whitespace (Outlines' default, ``[ ]?``).
    """

    name: str

    def compile(self, schema: dict[str, Any], *, compact: bool = True) -> CompiledGrammar: ...


# --------------------------------------------------------------------------- schema errors

_KEYWORDS = (
    "$ref", "$defs", "definitions", "format", "pattern", "patternProperties", "additionalProperties",
    "propertyNames", "unevaluatedProperties", "unevaluatedItems", "dependentSchemas",
    "dependentRequired", "if", "then", "else", "not", "allOf", "anyOf", "oneOf", "uniqueItems",
    "contains", "minContains", "maxContains", "multipleOf", "minLength", "maxLength", "minItems",
    "maxItems", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minProperties",
    "maxProperties", "prefixItems", "items", "enum", "const", "required", "type",
)
_HINTS = (
    (re.compile(r"regex|look-?around|look-?behind|look-?ahead|\bNFA\b|\bDFA\b", re.I), "pattern"),
    (re.compile(r"\bformat\b", re.I), "format"),
    (re.compile(r"pointer|reference|\$ref|definition", re.I), "$ref"),
)
#: keywords that are also English words: only recognised when quoted in the message
_WORDY = {"if", "then", "else", "not", "type", "items", "required", "const", "enum", "contains", "pattern"}


def _find_keyword_path(node: Any, keyword: str, path: str = "$") -> str | None:
    """The JSON path of the first schema object that uses ``keyword``."""
    if isinstance(node, dict):
        if keyword in node:
            return path
        for key, value in node.items():
            found = _find_keyword_path(value, keyword, f"{path}.{key}")
            if found:
                return found
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found = _find_keyword_path(value, keyword, f"{path}[{i}]")
            if found:
                return found
    return None


def _guess_keyword(message: str, schema: dict[str, Any]) -> tuple[str | None, str | None]:
    """The keyword an engine's message points at, and where the schema uses it.

    A guess only counts when the schema really uses that keyword.
    """
    candidates: list[tuple[int, str]] = []
    for kw in _KEYWORDS:
        quoted = re.search(rf"[\"'`]{re.escape(kw)}[\"'`]", message)
        if quoted:
            candidates.append((quoted.start(), kw))
        elif kw not in _WORDY:
            bare = re.search(rf"(?<![\w$]){re.escape(kw)}(?!\w)", message)
            if bare:
                candidates.append((bare.start() + len(message), kw))  # after every quoted one
    ordered = [kw for _, kw in sorted(candidates)]
    ordered[:0] = [kw for pattern, kw in _HINTS if pattern.search(message)]
    for kw in ordered:
        path = _find_keyword_path(schema, kw)
        if path:
            return kw, path
    return None, None


def schema_error(engine: str, message: str, schema: dict[str, Any]) -> SchemaError:
    """A :class:`SchemaError` naming the JSON-Schema keyword at fault when the message shows it."""
    keyword, path = _guess_keyword(message, schema)
    first_line = message.strip().splitlines()[0] if message.strip() else "unknown error"
    detail = " ".join(line.strip() for line in message.strip().splitlines()[1:] if line.strip())
    text = f"The {engine} engine can't compile this schema: {first_line}"
    if detail:
        text += f" ({detail})"
    return SchemaError(text, path=path or "$", keyword=keyword)


def canonical_schema(schema: dict[str, Any]) -> str:
    """The cache key of a schema: its JSON with sorted keys."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------- llguidance


class _LLGState:
    def __init__(self, matcher: Any) -> None:
        self.m = matcher
        self._forced: list[int] | None = None  # forced_tokens() until the next consume()

    def _check(self) -> None:
        if self.m.is_error():
            raise ConstraintError(f"llguidance matcher failed: {self.m.get_error()}")

    def forced_tokens(self) -> list[int]:
        # asked twice per chosen token (may the output end here? then at the loop's top);
        # the peeks below roll back, so only consume() moves the state
        if self._forced is None:
            self._forced = list(self.m.compute_ff_tokens())
            self._check()
        return self._forced

    def accepts(self, token: int) -> bool:
        return bool(self.m.validate_tokens([token]) == 1)

    def valid_prefix(self, tokens: list[int]) -> int:
        return int(self.m.validate_tokens(tokens))

    def forced_along(self, tokens: list[int]) -> list[bool]:
        marks: list[bool] = []
        taken = 0
        while taken < len(tokens):
            run: list[int] = self.m.compute_ff_tokens()
            forced = bool(run) and tokens[taken: taken + len(run)] == run
            step = run if forced else tokens[taken: taken + 1]
            if int(self.m.try_consume_tokens(step)) != len(step):
                self.m.rollback(taken)  # (a partial consume is rolled back by llguidance itself)
                raise ConstraintError(f"llguidance rejected draft tokens {step}: {self.m.get_error()}")
            marks += [forced] * len(step)
            taken += len(step)
        if taken:
            self.m.rollback(taken)
        self._check()
        return marks

    def forced_bytes(self, after: list[int]) -> bytes:
        taken = int(self.m.try_consume_tokens(after)) if after else 0
        forced: bytes = self.m.compute_ff_bytes() if taken == len(after) else b""
        if taken:
            self.m.rollback(taken)
        self._check()
        return forced

    def stops_after(self, tokens: list[int]) -> bool:
        taken = int(self.m.try_consume_tokens(tokens))
        stopped = taken == len(tokens) and bool(self.m.is_stopped())
        if taken:
            self.m.rollback(taken)
        self._check()
        return stopped

    def fill_bitmask(self, bitmask: np.ndarray) -> None:
        self.m.unsafe_compute_mask_ptr(bitmask.ctypes.data, bitmask.size * bitmask.itemsize)
        self._check()

    def consume(self, tokens: list[int]) -> None:
        self._forced = None
        if not self.m.consume_tokens(tokens):
            raise ConstraintError(f"llguidance rejected tokens {tokens}: {self.m.get_error()}")

    def is_stopped(self) -> bool:
        return bool(self.m.is_stopped())

    def is_accepting(self) -> bool:
        return bool(self.m.is_accepting())


class _LLGGrammar:
    engine = "llguidance"

    def __init__(self, matcher: Any) -> None:
        self._pristine = matcher

    def new_state(self) -> GuideState:
        # deep_copy shares the compiled grammar: microseconds, nothing is recompiled.
        return _LLGState(self._pristine.deep_copy())


class LLGuidanceEngine:
    """llguidance driven directly: one ``LLTokenizer`` per model, one ``LLMatcher`` per schema."""

    name = "llguidance"

    def __init__(self, runtime: Runtime) -> None:
        try:
            import llguidance
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingDependencyError("The llguidance engine", "local", package="llguidance") from exc
        self._llg = llguidance
        self.tokenizer = runtime.llguidance_tokenizer()

    def compile(self, schema: dict[str, Any], *, compact: bool = True) -> CompiledGrammar:
        matcher_cls = self._llg.LLMatcher
        options: JsonCompileOptions = {
            "whitespace_flexible": False, "item_separator": ",", "key_separator": ":"}
        if not compact:
            options["whitespace_pattern"] = "[ ]?"
        try:
            grammar = matcher_cls.grammar_from_json_schema(schema, overrides=options)
        except (ValueError, TypeError) as exc:
            raise schema_error(self.name, str(exc), schema) from exc
        is_error, messages = matcher_cls.validate_grammar_with_warnings(grammar, self.tokenizer)
        if is_error:
            raise schema_error(self.name, messages[0] if messages else "invalid grammar", schema)
        matcher = matcher_cls(self.tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise schema_error(self.name, matcher.get_error(), schema)
        return _LLGGrammar(matcher)

    def compile_lark(self, lark: str, schema: dict[str, Any]) -> CompiledGrammar:
        """A Lark grammar (grounded strings: see ``_grounded_grammar``); errors name ``schema``'s fault."""
        matcher_cls = self._llg.LLMatcher
        grammar = matcher_cls.grammar_from_lark(lark)
        is_error, messages = matcher_cls.validate_grammar_with_warnings(grammar, self.tokenizer)
        if is_error:
            raise schema_error(self.name, messages[0] if messages else "invalid grammar", schema)
        matcher = matcher_cls(self.tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise schema_error(self.name, matcher.get_error(), schema)
        return _LLGGrammar(matcher)


# --------------------------------------------------------------------------- outlines_core


class _NoDrafts:
    """The draft checks of engines that can't make them: speculation is llguidance-only."""

    def valid_prefix(self, tokens: list[int]) -> int:
        return 0

    def forced_bytes(self, after: list[int]) -> bytes:
        return b""

    def forced_along(self, tokens: list[int]) -> list[bool]:
        return [False] * len(tokens)

    def stops_after(self, tokens: list[int]) -> bool:
        return False


class _OCState(_NoDrafts):
    def __init__(self, guide: Any) -> None:
        self.g = guide

    def forced_tokens(self) -> list[int]:
        return []

    def accepts(self, token: int) -> bool:
        return bool(self.g.accepts_tokens([token]))

    def fill_bitmask(self, bitmask: np.ndarray) -> None:
        self.g.write_mask_into(bitmask.ctypes.data, bitmask.size, bitmask.itemsize)

    def consume(self, tokens: list[int]) -> None:
        for token in tokens:
            try:
                self.g.advance(token_id=token, return_tokens=False)
            except Exception as exc:
                raise ConstraintError(f"outlines_core rejected token {token}: {exc}") from exc

    def is_stopped(self) -> bool:
        # The guide is finished when the regex can't be extended; EOS is then the only option.
        return bool(self.g.is_finished()) and not self._extendable()

    def _extendable(self) -> bool:
        tokens = self.g.get_tokens()
        return any(t != self._eos for t in tokens)

    def is_accepting(self) -> bool:
        return bool(self.g.is_finished())

    _eos: int = -1


class _OCGrammar:
    engine = "outlines_core"

    def __init__(self, index: Any, eos: int) -> None:
        self._index = index
        self._eos = eos

    def new_state(self) -> GuideState:
        from outlines_core import Guide

        state = _OCState(Guide(self._index))
        state._eos = self._eos
        return state


class OutlinesCoreEngine:
    """outlines_core through Outlines' backend (vocabulary built once per model), compact JSON."""

    name = "outlines_core"

    def __init__(self, runtime: Runtime) -> None:
        try:
            from outlines.backends.outlines_core import OutlinesCoreBackend
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingDependencyError("The outlines_core engine", "local", package="outlines") from exc
        self._backend = OutlinesCoreBackend(runtime.outlines_model())
        self._eos = int(self._backend.eos_token_id)

    def compile(self, schema: dict[str, Any], *, compact: bool = True) -> CompiledGrammar:
        from outlines_core import Index
        from outlines_core.json_schema import build_regex_from_schema

        try:
            # "" = no whitespace between JSON tokens; Outlines' default is "[ ]?".
            regex = build_regex_from_schema(json.dumps(schema), "" if compact else "[ ]?")
            index = Index(regex, self._backend.vocabulary)
        except Exception as exc:
            raise schema_error(self.name, str(exc), schema) from exc
        return _OCGrammar(index, self._eos)


# --------------------------------------------------------------------------- xgrammar


class _XGRState(_NoDrafts):
    def __init__(self, matcher: Any, vocab_size: int, eos: int) -> None:
        import torch

        self.m = matcher
        self._eos = eos
        self._buf = torch.zeros(((vocab_size + 31) // 32,), dtype=torch.int32)

    def forced_tokens(self) -> list[int]:
        return []

    def accepts(self, token: int) -> bool:
        if self.m.accept_token(token):
            self.m.rollback(1)
            return True
        return False

    def fill_bitmask(self, bitmask: np.ndarray) -> None:
        self.m.fill_next_token_bitmask(self._buf.view(1, -1))
        bitmask[: self._buf.shape[0]] = self._buf.numpy()

    def consume(self, tokens: list[int]) -> None:
        for token in tokens:
            if not self.m.accept_token(token):
                raise ConstraintError(f"xgrammar rejected token {token}")

    def is_stopped(self) -> bool:
        return bool(self.m.is_terminated())

    def is_accepting(self) -> bool:
        return bool(self.m.is_terminated()) or self.accepts(self._eos)


class _XGRGrammar:
    engine = "xgrammar"

    def __init__(self, compiled: Any, vocab_size: int, eos: int) -> None:
        self._compiled = compiled
        self._vocab_size = vocab_size
        self._eos = eos

    def new_state(self) -> GuideState:
        import xgrammar as xgr

        matcher = xgr.GrammarMatcher(self._compiled, terminate_without_stop_token=True)
        return _XGRState(matcher, self._vocab_size, self._eos)


class XGrammarEngine:
    """xgrammar through Outlines' backend; Outlines supports it for transformers models only."""

    name = "xgrammar"

    def __init__(self, runtime: Runtime) -> None:
        if runtime.kind != "transformers":
            raise ConfigurationError(
                "engine='xgrammar' works with transformers models only (Outlines supports xgrammar "
                "for Transformers and MLX); use engine='llguidance' or 'outlines_core' with a GGUF file."
            )
        try:
            from outlines.backends.xgrammar import XGrammarBackend
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingDependencyError("The xgrammar engine", "transformers", package="xgrammar") from exc
        try:
            self._backend = XGrammarBackend(runtime.outlines_model())
        except ImportError as exc:
            raise MissingDependencyError("The xgrammar engine", "transformers", package="xgrammar") from exc
        self._vocab_size = runtime.vocab_size
        self._eos = runtime.eos_token_id

    def compile(self, schema: dict[str, Any], *, compact: bool = True) -> CompiledGrammar:
        separators = (",", ":") if compact else (", ", ": ")
        try:
            compiled = self._backend.grammar_compiler.compile_json_schema(
                json.dumps(schema), any_whitespace=False, separators=separators
            )
        except Exception as exc:
            raise schema_error(self.name, str(exc), schema) from exc
        return _XGRGrammar(compiled, self._vocab_size, self._eos)


def create_engine(name: str, runtime: Runtime) -> Engine:
    if name == "llguidance":
        return LLGuidanceEngine(runtime)
    if name == "outlines_core":
        return OutlinesCoreEngine(runtime)
    if name == "xgrammar":
        return XGrammarEngine(runtime)
    raise ConfigurationError(f"Unknown constraint engine {name!r}; choose one of {', '.join(ENGINES)}")
