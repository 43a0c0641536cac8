"""Local constrained generation: llama.cpp (GGUF) or transformers, JSON-schema constrained.

``LocalBackend`` serves the ``completions`` endpoint: the core renders the full prompt with the
model's own chat template (:attr:`LocalBackend.chat_template_source`) and sends
``{"prompt": ..., "max_tokens": ...}`` plus a JSON schema in ``Request.constraint``; the
backend returns the generated text, which the core parses and validates.

Models come from a spec: ``None``/``"local"`` (the embedded SmolLM2-135M-Instruct GGUF), a
``.gguf`` path (llama.cpp) or a Hugging Face model directory (transformers, CUDA when present
and asked for). Loaded models are cached process-wide.

The token loop is ours, not Outlines' ``Generator``: Outlines builds the engine's vocabulary
view and (for outlines_core/xgrammar) the compiled grammar, and the loop drives the engine's
matcher directly, so that

* the vocabulary view is built once per model and each grammar once per (schema, model); a
  warm request only copies a pristine matcher (microseconds);
* tokens the grammar forces (``{"name":"`` ...) are fed as one batch (llguidance only);
* with speculation (on by default for transformers), grounded extraction drafts the input
  text's continuation of a grounded string or number, its end and the structure the grammar
  then fixes (``","email":"``), and scores it in one batch; the prefix the model itself would
  choose is kept (copy-from-input speculation: fewer forward passes; the same tokens up to
  batched-logit near ties);
* with greedy decoding the full token mask is only computed when the model's top token is
  not allowed;
* the constraint is checked, not trusted: a matcher error raises :class:`ConstraintError`.
"""

from __future__ import annotations

import asyncio
import os
import queue
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np

from schemagen.backends._grounded_grammar import Unsupported, grounded_lark
from schemagen.backends._local_engines import (
    ENGINES,
    CompiledGrammar,
    ConstraintError,
    GuideState,
    canonical_schema,
    create_engine,
)
from schemagen.backends._local_runtimes import (
    LocalStats,
    Runtime,
    RuntimeKind,
    clear_runtimes,
    hf_dir_from_gguf,
    load_runtime,
)
from schemagen.backends._lookup import draft, source_bytes
from schemagen.chunks import Delta
from schemagen.engine.repetition import REPETITION, RepeatedRun, RepetitionGuard
from schemagen.errors import ConfigurationError, ContextOverflowError, SchemaError
from schemagen.exchange import Completion, Endpoint, Request, Usage
from schemagen.grounding import has_marker
from schemagen.models import default_local_model_path

__all__ = [
    "ENGINES",
    "ConstraintError",
    "LocalBackend",
    "LocalStats",
    "clear_model_cache",
    "close_objects",
    "hf_dir_from_gguf",
    "resolve_model_spec",
]

_DEFAULT_NAMES = {"", "local", "default", "smollm2"}
GRAMMAR_CACHE_SIZE = 128


def resolve_model_spec(
    model: str | os.PathLike[str] | None, runtime: str | None = None
) -> tuple[RuntimeKind, Path]:
    """Which runtime serves ``model`` and from which path.

    ``None``, ``"local"``, ``"local:"`` and ``"local:default"`` name the embedded SmolLM2 GGUF.
    A ``.gguf`` file (or a folder holding one GGUF and no ``config.json``) runs on llama.cpp,
    a folder with ``config.json`` on transformers. ``runtime="transformers"`` with a GGUF file
    converts it once into a cached transformers folder (see :func:`hf_dir_from_gguf`).
    """
    spec = "" if model is None else os.fspath(model)
    if spec.startswith("local:"):
        spec = spec[len("local:"):]
    if runtime not in (None, "auto", "llama.cpp", "transformers"):
        raise ConfigurationError(f"Unknown runtime {runtime!r}; use 'llama.cpp' or 'transformers'")
    path = default_local_model_path() if spec.strip().lower() in _DEFAULT_NAMES else Path(spec).expanduser()
    if not path.exists():
        raise ConfigurationError(
            f"Local model not found: {path}. Pass a .gguf file or a Hugging Face model directory "
            "(model='local:/path/model.gguf'), or nothing for the embedded SmolLM2 model."
        )
    if path.is_dir() and not (path / "config.json").is_file():
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) != 1:
            raise ConfigurationError(
                f"{path} is neither a Hugging Face model directory (no config.json) nor a folder "
                f"with exactly one .gguf file ({len(ggufs)} found)"
            )
        path = ggufs[0]
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ConfigurationError(f"{path} is not a .gguf file; local models are GGUF files or HF folders")
        if runtime == "transformers":
            return "transformers", hf_dir_from_gguf(path)
        return "llama.cpp", path.resolve()
    if runtime == "llama.cpp":
        raise ConfigurationError(f"{path} is a Hugging Face directory; llama.cpp needs a .gguf file")
    return "transformers", path.resolve()


_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_VALUES = (
    "items", "additionalItems", "additionalProperties", "not", "if", "then", "else", "contains",
    "propertyNames", "unevaluatedItems", "unevaluatedProperties",
)


def close_objects(schema: Any) -> Any:
    """A copy of ``schema`` where objects that list ``properties`` but say nothing about
    ``additionalProperties`` (Pydantic's default) admit no other keys.

    The output then still matches the original schema, and the model can't spend tokens on
    invented keys (SmolLM2 adds ``"zip"`` and ``"addresses"`` when allowed). Explicit
    ``additionalProperties``, ``patternProperties`` and ``unevaluatedProperties`` are kept.
    """
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _SCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            out[key] = {name: close_objects(sub) for name, sub in schema[key].items()}
    for key in _SCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            out[key] = [close_objects(sub) for sub in schema[key]]
    for key in _SCHEMA_VALUES:
        value = schema.get(key)
        if isinstance(value, dict):
            out[key] = close_objects(value)
        elif key == "items" and isinstance(value, list):
            out[key] = [close_objects(sub) for sub in value]
    if (
        isinstance(schema.get("properties"), dict)
        and "additionalProperties" not in schema
        and "patternProperties" not in schema
        and "unevaluatedProperties" not in schema
    ):
        out["additionalProperties"] = False
    return out


_BOUNDED_STRING = {"maxLength", "enum", "const", "pattern", "format"}


def cap_strings(schema: Any, limit: int) -> Any:
    """A copy of ``schema`` where free strings (no ``maxLength``, ``enum``, ``const``, ``pattern``
    or ``format``) hold at most ``limit`` characters: a loop retry's bound on a value that runs on
    inside its quotes, which a no-repeat rule alone doesn't stop."""
    if isinstance(schema, list):
        return [cap_strings(sub, limit) for sub in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: value if key in ("enum", "const") else cap_strings(value, limit)
           for key, value in schema.items()}
    if schema.get("type") == "string" and not _BOUNDED_STRING & set(schema):
        out["maxLength"] = limit
    return out


def string_cap(text: str) -> int:
    """A free string's cap on a loop retry: the input's length, bucketed to a power of two (so
    the capped grammar is cached across texts) and at least 64 characters."""
    return max(64, 1 << max(len(text) - 1, 1).bit_length())


def clear_model_cache() -> None:
    """Forget every loaded model and its compiled grammars (process-wide)."""
    clear_runtimes()


def _sample(logits: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator) -> int:
    if temperature <= 0.0:
        return int(np.argmax(logits))
    x = logits.astype(np.float64) / temperature
    x -= np.max(x)
    p = np.exp(x)
    if 0.0 < top_p < 1.0:
        order = np.argsort(-p)
        cum = np.cumsum(p[order])
        keep = order[: int(np.searchsorted(cum, top_p * cum[-1])) + 1]
        mask = np.zeros_like(p)
        mask[keep] = 1.0
        p *= mask
    p /= p.sum()
    return int(rng.choice(p.shape[0], p=p))


def _allowed(bitmask: np.ndarray, width: int) -> np.ndarray:
    bits = np.unpackbits(bitmask.view(np.uint8), bitorder="little")
    if bits.shape[0] < width:
        bits = np.concatenate([bits, np.zeros(width - bits.shape[0], dtype=np.uint8)])
    allowed: np.ndarray = bits[:width].astype(bool)
    return allowed


def _stop_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [s for s in value if s]


class LocalBackend:
    """Constrained generation on a local model. See the module docstring.

    :param model: ``None``/``"local"`` for the embedded SmolLM2 GGUF, ``"local:/path/model.gguf"``,
        or ``"local:/path/hf_dir"`` (the ``local:`` prefix is optional).
    :param device: ``"auto"`` (CUDA when present), ``"cuda"`` (falls back to CPU without CUDA) or ``"cpu"``.
    :param engine: ``"llguidance"`` (default, fastest), ``"outlines_core"`` or ``"xgrammar"``
        (transformers only).
    :param runtime: force ``"llama.cpp"`` or ``"transformers"``; a GGUF with ``"transformers"``
        is converted once into ``~/.cache/schemagen/hf/``.
    :param n_ctx: context window (llama.cpp default 4096; transformers: the model's).
    :param n_threads: CPU threads (llama.cpp default: half the logical cores; transformers:
        torch's default).
    :param fast_forward: feed grammar-forced tokens as one batch (llguidance).
    :param speculate: in grounded extraction (llguidance, greedy), draft the input text's
        continuation of a grounded string and score it in one batch, keeping what the model
        itself would choose: fewer forward passes. ``None`` (default): on where a forward pass
        costs far more than the tokens in it (the transformers runtime: 0.54x the time on the
        accuracy set's grounded extractions, the same answers), off on llama.cpp, where a CPU
        batch costs nearly as much per token as single steps (1.0x there) and a batch's logits
        differ from one token's in the last digits, which can flip a near tie (docs/local.md).
    :param compact: ``True``: JSON with no whitespace between tokens (fewest tokens, and
        forced stretches such as ``","email":"`` can be fast-forwarded). ``False`` (default)
        allows one optional space (Outlines' default): SmolLM2-135M writes ``": "`` the way it
        was trained and gets more fields right (0.60 vs 0.54 field accuracy, docs/accuracy.md).
    :param repetition_guard: stop a generation that has entered a loop.
    :param loop_retry: when a greedy constrained answer is stopped by the loop guard or the token
        bound, retry it once with no repeated 8-gram of chosen tokens (it can't loop the same way).
    :param close_objects: forbid keys a schema object doesn't list when it says nothing
        about ``additionalProperties`` (see :func:`close_objects`).
    """

    endpoints: frozenset[Endpoint] = frozenset({"completions"})
    #: One model in this process generates one request at a time (a lock); a batch keeps
    #: this many in flight instead of parking its whole pool of threads on that lock.
    max_concurrency: int = 1
    supports_strict = False
    #: The backend enforces ``Request.constraint`` itself, so the engine asks for bare JSON.
    enforces_constraints = True

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        device: str = "auto",
        engine: str = "llguidance",
        runtime: str | None = None,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        fast_forward: bool = True,
        speculate: bool | None = None,
        close_objects: bool = True,
        compact: bool = False,
        repetition_guard: bool = True,
        loop_retry: bool = True,
    ) -> None:
        if engine not in ENGINES:
            choices = ", ".join(ENGINES)
            raise ConfigurationError(f"Unknown constraint engine {engine!r}; choose one of {choices}")
        if device not in ("auto", "cuda", "gpu", "cpu"):
            raise ConfigurationError(f"Unknown device {device!r}; use 'auto', 'cuda' or 'cpu'")
        kind, path = resolve_model_spec(model, runtime)
        self._runtime: Runtime = load_runtime(kind, path, device=device, n_ctx=n_ctx, n_threads=n_threads)
        self.engine = engine
        self.fast_forward = fast_forward
        self.speculate = speculate
        self.close_objects = close_objects
        self.compact = compact
        # Stop a generation that has entered a loop, as the streamed HTTP path does.
        self.repetition_guard = repetition_guard
        self.loop_retry = loop_retry
        self.model = f"local:{path}"
        if engine != "llguidance" or kind != "llama.cpp":
            # Fail now, not at the first request, when the engine can't serve this model type.
            self._engine()

    # ------------------------------------------------------------------ what the core reads
    @property
    def runtime(self) -> RuntimeKind:
        """``"llama.cpp"`` or ``"transformers"``."""
        return self._runtime.kind

    @property
    def device(self) -> str:
        """Where the model really runs: ``"cpu"`` or ``"cuda"``."""
        return self._runtime.device

    @property
    def model_path(self) -> Path:
        return self._runtime.path

    @property
    def chat_template_source(self) -> str | None:
        """The model's own Jinja chat template (GGUF metadata or HF tokenizer), if it has one."""
        return self._runtime.chat_template

    @property
    def bos_token(self) -> str | None:
        return self._runtime.bos_token

    @property
    def eos_token(self) -> str | None:
        return self._runtime.eos_token

    @property
    def max_context(self) -> int:
        """The context window prompts and ``max_tokens`` must fit in together."""
        return self._runtime.n_ctx

    @property
    def stats(self) -> LocalStats:
        """Counters of the loaded model (shared by every backend on the same model)."""
        return self._runtime.stats

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes as a prompt, with the model's own tokenizer (BOS included if added)."""
        with self._runtime.lock:
            return len(self._runtime.tokenize(text, prompt=True))

    # ------------------------------------------------------------------ grammar cache
    def _engine(self) -> Any:
        rt = self._runtime
        with rt.lock:
            engine = rt.engines.get(self.engine)
            if engine is None:
                engine = create_engine(self.engine, rt)
                rt.engines[self.engine] = engine
                rt.stats.engine_setups += 1
            return engine

    def compiled_grammar(self, schema: dict[str, Any]) -> tuple[CompiledGrammar, bool]:
        """The compiled grammar for ``schema`` and whether it came from the cache.

        Raises :class:`SchemaError` when the engine can't compile the schema.
        """
        if not isinstance(schema, dict):
            raise SchemaError("The constraint must be a JSON schema object", path="$")
        rt = self._runtime
        closed = "closed" if self.close_objects else "open"
        key = (f"{self.engine}/{closed}/{'compact' if self.compact else 'spaced'}", canonical_schema(schema))
        with rt.lock:
            grammar = rt.grammars.get(key)
            if grammar is not None:
                rt.grammars.move_to_end(key)
                rt.stats.grammar_cache_hits += 1
                rt.stats.last_compile_s = 0.0
                return grammar, True
            engine = self._engine()
            started = time.perf_counter()
            target = close_objects(schema) if self.close_objects else schema
            grammar = engine.compile(target, compact=self.compact)
            elapsed = time.perf_counter() - started
            rt.grammars[key] = grammar
            while len(rt.grammars) > GRAMMAR_CACHE_SIZE:
                rt.grammars.popitem(last=False)
            rt.stats.grammar_compiles += 1
            rt.stats.last_compile_s = elapsed
            rt.stats.compile_s_total += elapsed
            return grammar, False

    def prepare(self, schema: dict[str, Any]) -> bool:
        """Compile ``schema`` ahead of the first request. Returns True if it was already cached."""
        return self.compiled_grammar(schema)[1]

    # ------------------------------------------------------------------ generation
    def complete(self, request: Request, *, on_text: Callable[[str], None] | None = None) -> Completion:
        """Generate; ``on_text`` gets each new piece of text as the token loop makes it (the first
        answer's: a loop retry's text is in the Completion only)."""
        job = _Job.from_request(request)
        started = time.perf_counter()
        grammar, cache_hit, compile_s, grounded = self._grammar_for(request)
        drafter = None
        speculate = self._runtime.drafts_pay if self.speculate is None else self.speculate
        if grounded and speculate and job.temperature <= 0.0 and self._runtime.can_draft:
            drafter = _Drafter(request.source_text or "", self._engine().tokenizer, spaced=not self.compact)
        notes: list[str] = []
        # A greedy constrained answer that loops loops the same way every time: it is retried once
        # with no repeated n-gram of chosen tokens, which can't retrace that loop.
        loop_rule = grammar is not None and self.loop_retry and job.temperature <= 0.0
        if loop_rule and request.avoid_loops:  # the last answer looped: no need to see it again
            assert grammar is not None
            no_loops, how = self._no_loop_grammar(request, grammar, grounded)
            notes.append(f"the last answer looped: generated {how} from the start")
            out_ids, finish, counters, text, prompt_ids = self._run(
                job, no_loops, no_repeat=NO_REPEAT_NGRAM, on_text=on_text, drafter=drafter)
        else:
            out_ids, finish, counters, text, prompt_ids = self._run(job, grammar, on_text=on_text,
                                                                    drafter=drafter)
        if loop_rule and not request.avoid_loops and finish in (REPETITION, "length"):
            assert grammar is not None
            first_tokens = len(out_ids)
            no_loops, how = self._no_loop_grammar(request, grammar, grounded)
            notes.append(f"the first answer was stopped ({finish}, {first_tokens} tokens): "
                         f"retried once {how}")
            out_ids, finish, counters, text, prompt_ids = self._run(
                job, no_loops, no_repeat=NO_REPEAT_NGRAM, drafter=drafter)
            counters["retried_after_tokens"] = first_tokens
        raw = self._raw(counters, out_ids, finish, started=started, compile_s=compile_s,
                        cache_hit=cache_hit, constrained=grammar is not None)
        raw["grounded"] = grounded
        usage = Usage(
            prompt_tokens=len(prompt_ids), completion_tokens=len(out_ids),
            cached_tokens=counters["cached_prompt_tokens"], requests=1,
        )
        return Completion(content=text, finish_reason=finish, usage=usage, raw=raw, notes=tuple(notes))

    def _no_loop_grammar(
        self, request: Request, grammar: CompiledGrammar, grounded: bool,
    ) -> tuple[CompiledGrammar, str]:
        """The grammar of a generation that must not loop, and how it is held to that."""
        how = f"with no repeated {NO_REPEAT_NGRAM}-gram of chosen tokens"
        if grounded or not request.source_text or not isinstance(request.constraint, dict):
            return grammar, how
        # a value can run on inside its quotes too: then no free string outgrows the text
        limit = string_cap(request.source_text)
        capped = self.compiled_grammar(cap_strings(request.constraint, limit))[0]
        return capped, f"{how}, free strings capped at {limit} characters"

    def _grammar_for(self, request: Request) -> tuple[CompiledGrammar | None, bool, float, bool]:
        """(grammar, from cache?, compile seconds, grounded in the grammar?) for a request."""
        schema = request.constraint
        if schema is None:
            return None, False, 0.0, False
        if request.source_text and has_marker(schema) and self.engine == "llguidance":
            try:
                lark = grounded_lark(schema, request.source_text, compact=self.compact)
            except Unsupported:
                pass  # the plain grammar below; the engine's after-parse check still applies
            else:
                engine = self._engine()  # built once per model: not part of this grammar's cost
                started = time.perf_counter()
                grammar = engine.compile_lark(lark, schema)
                return grammar, False, time.perf_counter() - started, True
        grammar, cache_hit = self.compiled_grammar(schema)
        return grammar, cache_hit, self._runtime.stats.last_compile_s, False

    def _run(
        self, job: _Job, grammar: CompiledGrammar | None, no_repeat: int = 0,
        on_text: Callable[[str], None] | None = None, drafter: _Drafter | None = None,
    ) -> tuple[list[int], str, dict[str, Any], str, list[int]]:
        """One generation under the model's lock, counted in the model's stats."""
        rt = self._runtime
        with rt.lock:
            prompt_ids = rt.tokenize(job.prompt, prompt=True)
            if len(prompt_ids) + job.max_tokens > rt.n_ctx:
                raise ContextOverflowError(
                    "The local model's context is too small", prompt_tokens=len(prompt_ids),
                    max_tokens=job.max_tokens, max_context=rt.n_ctx,
                )
            state_started = time.perf_counter()
            state = grammar.new_state() if grammar is not None else None
            if state is not None:
                self._check_engaged(state)
            state_s = time.perf_counter() - state_started
            out_ids, finish, counters, text = self._generate(
                prompt_ids, state, max_tokens=job.max_tokens, temperature=job.temperature, top_p=job.top_p,
                rng=np.random.default_rng(job.seed), stops=job.stops, ignore_eos=job.ignore_eos,
                no_repeat=no_repeat, on_text=on_text, drafter=drafter,
            )
            counters["matcher_s"] = state_s
            stats = rt.stats
            stats.generations += 1
            stats.prompt_tokens += len(prompt_ids)
            stats.cached_prompt_tokens += counters["cached_prompt_tokens"]
            stats.completion_tokens += len(out_ids)
            stats.decode_steps += counters["decode_steps"]
            stats.forced_tokens += counters["forced_tokens"]
            stats.masks_computed += counters["masks_computed"]
            stats.drafted_tokens += counters["drafted_tokens"]
            stats.accepted_tokens += counters["accepted_tokens"]
        return out_ids, finish, counters, text, prompt_ids

    def _raw(
        self, counters: dict[str, Any], out_ids: list[int], finish: str, *, started: float,
        compile_s: float, cache_hit: bool, constrained: bool,
    ) -> dict[str, Any]:
        """The backend's own record of a generation (Completion.raw): timings and counters."""
        rt = self._runtime
        total_s = time.perf_counter() - started
        gen_s = counters["generate_s"]
        raw: dict[str, Any] = {
            "engine": self.engine if constrained else None,
            "runtime": rt.kind,
            "device": rt.device,
            "model": str(rt.path),
            "constrained": constrained,
            "grammar_cache_hit": cache_hit,
            "compile_ms": round(compile_s * 1000, 3),
            "matcher_ms": round(counters["matcher_s"] * 1000, 3),
            "prompt_ms": round(counters["prompt_s"] * 1000, 3),
            "generate_ms": round(gen_s * 1000, 3),
            # generate_ms minus the model's forward passes: sampling plus the constraint's work
            "model_ms": round(counters["model_s"] * 1000, 3),
            "loop_overhead_ms": round((gen_s - counters["model_s"]) * 1000, 3),
            "total_ms": round(total_s * 1000, 3),
            "ms_per_token": round(gen_s * 1000 / len(out_ids), 3) if out_ids else None,
            "completion_tokens": len(out_ids),
            "decode_steps": counters["decode_steps"],
            "forced_tokens": counters["forced_tokens"],
            "masks_computed": counters["masks_computed"],
            # copy-from-input speculation (grounded strings): draft tokens scored / kept
            "drafted_tokens": counters["drafted_tokens"],
            "accepted_tokens": counters["accepted_tokens"],
            "cached_prompt_tokens": counters["cached_prompt_tokens"],
            "finish_reason": finish,
        }
        if "retried_after_tokens" in counters:
            raw["retried_after_tokens"] = counters["retried_after_tokens"]
        return raw

    async def acomplete(self, request: Request) -> Completion:
        # The model's lock (taken inside complete) keeps one generation per model at a time.
        return await asyncio.to_thread(self.complete, request)

    def stream(self, request: Request) -> Generator[Delta | Completion, None, None]:
        """Text deltas from the token loop as it runs (in a worker thread), then the Completion.
        Leaving the iterator early stops the generation at its next token."""
        events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        stop = threading.Event()

        def on_text(text: str) -> None:
            if stop.is_set():
                raise _Stopped
            events.put(Delta("content", text))

        def work() -> None:
            try:
                events.put(self.complete(request, on_text=on_text))
            except BaseException as exc:  # handed to the consumer's thread
                events.put(exc)

        threading.Thread(target=work, name="schemagen-local-stream", daemon=True).start()
        try:
            while True:
                event = events.get()
                if isinstance(event, BaseException):
                    raise event
                yield event
                if isinstance(event, Completion):
                    return
        finally:
            stop.set()

    async def astream(self, request: Request) -> AsyncIterator[Delta | Completion]:
        """Async twin of :meth:`stream` (each step waits in a thread)."""
        events = self.stream(request)
        try:
            while (event := await asyncio.to_thread(next, events, None)) is not None:
                yield event
        finally:
            events.close()

    def close(self) -> None:
        """Nothing to release per backend: the model stays cached for the next one.

        :func:`clear_model_cache` forgets every loaded model.
        """

    # ------------------------------------------------------------------ internals
    def _bitmask(self) -> np.ndarray:
        return np.zeros(((self._runtime.vocab_size + 31) // 32,), dtype=np.int32)

    def _check_engaged(self, state: GuideState) -> None:
        """A fresh state must allow some tokens but not all: otherwise the engine isn't constraining."""
        bitmask = self._bitmask()
        state.fill_bitmask(bitmask)
        allowed = int(_allowed(bitmask, self._runtime.vocab_size).sum())
        if allowed == 0:
            raise ConstraintError(f"The {self.engine} engine allows no token at all: its setup failed")
        if allowed >= self._runtime.vocab_size:
            raise ConstraintError(
                f"The {self.engine} engine allows every token: the constraint is not applied"
            )

    def _generate(
        self, prompt_ids: list[int], state: GuideState | None, *, max_tokens: int, temperature: float,
        top_p: float, rng: np.random.Generator, stops: list[str], ignore_eos: bool = False,
        no_repeat: int = 0, on_text: Callable[[str], None] | None = None, drafter: _Drafter | None = None,
    ) -> tuple[list[int], str, dict[str, Any], str]:
        rt = self._runtime
        loop = _Loop(rt, self._bitmask(), self.engine, eog=frozenset() if ignore_eos else rt.eog_token_ids,
                     guard=RepetitionGuard() if self.repetition_guard else None, no_repeat=no_repeat,
                     on_text=on_text)
        t0 = time.perf_counter()
        logits, reused = rt.start(prompt_ids)
        t1 = time.perf_counter()
        loop.counters["cached_prompt_tokens"] = reused
        loop.counters["prompt_s"] = t1 - t0

        fast_forward = self.fast_forward and state is not None
        if state is None or temperature > 0.0:
            drafter = None
        out = loop.out
        finish = "length"
        text: str | None = None
        pending: int | None = None  # the model's choice already made while checking a draft
        while len(out) < max_tokens:
            if fast_forward:
                assert state is not None
                forced = state.forced_tokens()[: max_tokens - len(out)]
                if forced:
                    stop = loop.take_forced(state, forced) or loop.finish_forced(state, max_tokens)
                    if stop or len(out) >= max_tokens:
                        finish = stop or finish
                        break
                    if drafter is not None:
                        logits, pending, stop = loop.speculate(drafter, state, forced, max_tokens, True)
                        if stop:
                            finish = stop
                            break
                        continue
                    logits = loop.step(forced)
                    continue
            token = loop.choose(logits, state, temperature, top_p, rng) if pending is None else pending
            pending = None
            if token in loop.eog:
                if state is not None and not state.is_accepting():
                    raise ConstraintError("End of generation chosen before the grammar was complete")
                finish = "stop"
                break
            stop = loop.take(state, token)
            if stop:
                finish = stop
                break
            if stops:
                decoded = rt.detokenize(out)
                hits = [decoded.find(s) for s in stops if s in decoded]
                if hits:
                    text = decoded[: min(hits)]
                    finish = "stop"
                    break
            if len(out) >= max_tokens:
                break
            if fast_forward:
                assert state is not None
                stop = loop.finish_forced(state, max_tokens)
                if stop:
                    finish = stop
                    break
            if drafter is not None:
                assert state is not None
                logits, pending, stop = loop.speculate(drafter, state, [token], max_tokens, fast_forward)
                if stop:
                    finish = stop
                    break
                continue
            logits = loop.step([token])

        loop.counters["generate_s"] = time.perf_counter() - t1
        loop.counters["model_s"] = loop.model_s
        if state is not None and finish == "stop" and not state.is_accepting():
            raise ConstraintError("The constrained output stopped before the grammar was complete")
        if text is None:
            text = rt.detokenize(out)
        return out, finish, loop.counters, text


#: The loop retry bans any n-gram of chosen (not grammar-forced) tokens from repeating.
NO_REPEAT_NGRAM = 8


class _Job:
    """What a completions request asks the local backend for, checked."""

    def __init__(self, prompt: str, max_tokens: int, temperature: float, top_p: float, seed: Any,
                 stops: list[str], ignore_eos: bool) -> None:
        self.prompt, self.max_tokens, self.seed = prompt, max_tokens, seed
        self.temperature, self.top_p = temperature, top_p
        self.stops, self.ignore_eos = stops, ignore_eos

    @classmethod
    def from_request(cls, request: Request) -> _Job:
        if request.endpoint != "completions":
            raise ConfigurationError(
                f"The local backend serves the 'completions' endpoint only, not {request.endpoint!r}; "
                "render the prompt with the model's chat template first."
            )
        body = request.body
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise ConfigurationError("The local backend needs body['prompt'] as one string")
        max_tokens = request.max_tokens
        if max_tokens is None or max_tokens < 1:
            raise ConfigurationError("The local backend needs body['max_tokens'] (a positive integer)")
        free = request.constraint is None
        # stop strings apply to free text only: the grammar decides where constrained output ends
        return cls(prompt, max_tokens, float(body.get("temperature") or 0.0), float(body.get("top_p") or 1.0),
                   body.get("seed"), _stop_list(body.get("stop")) if free else [],
                   bool(body.get("ignore_eos")) and free)


class _Loop:
    """The token loop's state: output so far, counters, the loop guard and the no-repeat rule."""

    def __init__(self, rt: Runtime, bitmask: np.ndarray, engine: str, *, eog: frozenset[int],
                 guard: RepetitionGuard | None, no_repeat: int,
                 on_text: Callable[[str], None] | None = None) -> None:
        self.rt, self.bitmask, self.engine, self.eog, self.guard = rt, bitmask, engine, eog, guard
        self.repeats = RepeatedRun()  # an exact loop, about one unit in (the guard waits for four)
        self.no_repeat = no_repeat
        self.on_text = on_text
        self.shown = 0  # characters of the output already handed to on_text
        self.seen: set[tuple[int, ...]] = set()
        self.out: list[int] = []
        self.counters: dict[str, Any] = {"decode_steps": 0, "forced_tokens": 0, "masks_computed": 0,
                                         "banned_repeats": 0, "drafted_tokens": 0, "accepted_tokens": 0}
        self.model_s = 0.0  # time inside the model's forward passes; the rest is sampling + constraint

    def step(self, tokens: list[int]) -> np.ndarray:
        started = time.perf_counter()
        result = self.rt.step(tokens)
        self.model_s += time.perf_counter() - started
        self.counters["decode_steps"] += 1
        return result

    def speculate(
        self, drafter: _Drafter, state: GuideState, fed: list[int], max_tokens: int, fast_forward: bool,
    ) -> tuple[np.ndarray, int | None, str | None]:
        """Feed ``fed`` (taken already) with a draft of what follows and keep the draft's prefix
        that greedy decoding would have produced: (logits after what was kept, the model's choice
        where the draft went wrong or None, the finish reason if generation ends here)."""
        proposal = drafter.propose(state, self.out, max_tokens - len(self.out))
        n = len(proposal)
        if n == 0 or len(fed) + n > _MAX_BATCH:
            return self.step(fed), None, None
        # Logits only where the model chooses: not before a token the grammar forces (the
        # lm_head is a fifth of this model's work per row).
        forced_at = state.forced_along(proposal) if fast_forward else [False] * n
        base = len(fed) - 1
        wanted = [base + i for i in range(n) if not forced_at[i]] + [base + n]
        started = time.perf_counter()
        logits = self.rt.step_all([*fed, *proposal], wanted)
        self.model_s += time.perf_counter() - started
        rows = {pos - base: logits[r] for r, pos in enumerate(wanted)}
        self.counters["decode_steps"] += 1
        self.counters["drafted_tokens"] += n
        i, choice, stop = 0, None, None
        while i < n and choice is None and stop is None:
            forced = state.forced_tokens() if fast_forward else []
            if forced:
                if proposal[i: i + len(forced)] != forced:
                    break  # the main loop fast-forwards them from here
                stop = self.take_forced(state, forced)
                i += len(forced)
                continue
            top = self.choose(rows[i], state, 0.0, 1.0, _NO_RNG)
            if top != proposal[i]:
                choice = top
                break
            stop = self.take(state, top)
            i += 1
        self.counters["accepted_tokens"] += i
        drafter.learn(n, i)
        self.rt.rewind(n - i)
        # A row is missing only before a forced token where generation stops: nothing reads it.
        return rows.get(i, logits[-1]), choice, stop

    def _looping(self, tokens: list[int]) -> bool:
        if self.guard is None:
            return False
        repeated = any([self.repeats.feed(token) for token in tokens])  # a list: feed them all
        return self.guard.feed(self.rt.detokenize(tokens)) or repeated

    def _emit(self) -> None:
        """Streaming: the text so far, less a multi-byte character cut in half."""
        if self.on_text is None:
            return
        now = self.rt.detokenize(self.out)
        end = len(now) - 1 if now.endswith("\ufffd") else len(now)
        if end > self.shown:
            self.on_text(now[self.shown:end])
            self.shown = end

    def _remember(self) -> None:
        if self.no_repeat and len(self.out) >= self.no_repeat:
            self.seen.add(tuple(self.out[-self.no_repeat:]))

    def take_forced(self, state: GuideState, forced: list[int]) -> str | None:
        """Feed grammar-forced tokens; the finish reason if generation ends here."""
        state.consume(forced)
        for token in forced:
            self.out.append(token)
            self._remember()
        self.counters["forced_tokens"] += len(forced)
        self._emit()
        if state.is_stopped():
            return "stop"
        return REPETITION if self._looping(forced) else None

    def finish_forced(self, state: GuideState, max_tokens: int) -> str | None:
        """Where the grammar forces the rest of the output, take it with no forward pass (no
        one would read its logits): the finish reason, or None where more is to come."""
        forced = state.forced_tokens()[: max_tokens - len(self.out)]
        if forced and state.stops_after(forced):
            return self.take_forced(state, forced)
        return None

    def take(self, state: GuideState | None, token: int) -> str | None:
        """Feed one chosen token; the finish reason if generation ends here."""
        if state is not None:
            state.consume([token])
        self.out.append(token)
        self._remember()
        self._emit()
        if state is not None and state.is_stopped():
            return "stop"
        return REPETITION if self._looping([token]) else None

    def _banned(self, token: int) -> bool:
        n = self.no_repeat
        return bool(n) and len(self.out) >= n - 1 and (*self.out[len(self.out) - n + 1:], token) in self.seen

    def choose(self, logits: np.ndarray, state: GuideState | None, temperature: float, top_p: float,
               rng: np.random.Generator) -> int:
        """The next token: the model's choice among what the grammar (and no-repeat rule) allows."""
        if state is None:
            return _sample(logits, temperature, top_p, rng)
        if temperature <= 0.0:
            # Greedy: the top token is the answer whenever the grammar allows it.
            top = int(np.argmax(logits))
            ok = state.is_accepting() if top in self.eog else state.accepts(top)
            if ok and not self._banned(top):
                return top
        state.fill_bitmask(self.bitmask)
        self.counters["masks_computed"] += 1
        allowed = _allowed(self.bitmask, self.rt.vocab_size)
        if not allowed.any():
            raise ConstraintError(f"The {self.engine} engine allows no next token")
        masked = np.where(allowed, logits, -np.inf).astype(np.float32)
        token = _sample(masked, temperature, top_p, rng)
        while self._banned(token) and np.isfinite(masked).sum() > 1:
            self.counters["banned_repeats"] += 1
            masked[token] = -np.inf
            token = _sample(masked, temperature, top_p, rng)
        return token


#: greedy choices never draw from it
_NO_RNG = np.random.default_rng(0)
#: a draft goes into one llama.cpp batch (llama-cpp-python's default n_batch is 512)
_MAX_BATCH = 256


class _Drafter:
    """Drafts for one grounded request: the input text (see :func:`source_bytes`) and the
    engine's tokenizer to turn its continuations into token ids."""

    #: draft tokens scored in one batch at most
    MAX_DRAFT = 24
    #: copied tokens drafted at first; doubled after a draft kept whole, halved after a miss.
    #: On a CPU a rejected draft token costs most of a forward pass, so drafts grow with trust.
    FIRST_COPY = 4

    def __init__(self, text: str, tokenizer: Any, *, spaced: bool) -> None:
        self.source = source_bytes(text)
        self.tokenizer = tokenizer
        self.spaced = spaced
        (self.space,) = tokenizer.tokenize_bytes(b" ")
        # a string's end, else a number's
        self.closers = [(closer, tokenizer.tokenize_bytes(closer)[0]) for closer in (b'"', b",", b"}", b"]")]
        self.budget = self.FIRST_COPY

    def learn(self, drafted: int, kept: int) -> None:
        """Adapt the copy budget to how much of the last draft the model kept."""
        if kept == drafted:
            self.budget = min(self.budget * 2, self.MAX_DRAFT)
        else:
            self.budget = max(self.budget // 2, 1)

    def _pieces(self, data: bytes) -> list[int]:
        # Structure is tokenized word by word, as models write it: '", "vendor": "' is
        # '",' ' "' 'vendor' '":' ' "', where the text as a whole would be ' "' 'v' 'endor' ...
        tokenize = self.tokenizer.tokenize_bytes
        return [t for piece in re.findall(rb"\w+|\W+", data) for t in tokenize(piece)]

    def _fixed(self, state: GuideState, ids: list[int], written: bytes) -> bytes:
        """The bytes the grammar fixes after ``ids``, whatever their tokens; in spaced JSON also
        across the optional space after a ``:`` or ``,`` (the model writes it)."""
        fixed = state.forced_bytes(ids)
        for _ in range(2):
            if not self.spaced or not (written + fixed).endswith((b":", b",")):
                break
            probe = [*ids, *self._pieces(fixed), self.space]
            if state.valid_prefix(probe) < len(probe):
                break
            fixed += b" " + state.forced_bytes(probe)
        return fixed

    def propose(self, state: GuideState, out: list[int], room: int) -> list[int]:
        """The draft after ``out``: the bytes the grammar fixes (``":"`` after a key, the rest
        of a word only one span continues), then the input's continuation of the string so far,
        closed with what the grammar fixes after it where the value most likely ends. Only what
        the grammar accepts."""
        room = min(self.MAX_DRAFT, room)
        written: bytes = self.tokenizer.decode_bytes(out[-16:])
        fixed = self._fixed(state, [], written)
        ids = self._pieces(fixed)[:room]
        copied, whole = draft(self.source, written + fixed, self.tokenizer.tokenize_bytes,
                              max_tokens=min(room - len(ids), self.budget))
        copy_from = len(ids)
        ids += copied
        n = state.valid_prefix(ids) if ids else 0
        # The text goes on where the value can't (" EUR" after 29.75): past a copy of some
        # length (not one digit of "12.50" where the value is an integer) the value ends there.
        ends = n - copy_from >= 2 if n < len(ids) else whole
        ids = ids[:n]
        if ends and n < room:  # the copy most likely ends a value
            return self._closed(state, ids, room)
        return ids

    def _closed(self, state: GuideState, ids: list[int], room: int) -> list[int]:
        """``ids`` with the value closed after them: a string's quote, else (a number) the
        first of ``,`` ``}`` ``]`` the grammar takes, and what the grammar then fixes."""
        for closer, token in self.closers:
            probe = [*ids, token]
            if state.valid_prefix(probe) == len(probe):
                after = self._fixed(state, probe, closer)
                closed = ids + self._pieces(closer + after)[: room - len(ids)]
                return closed[: state.valid_prefix(closed)]
        return ids


class _Stopped(Exception):
    """The stream's consumer left: end the generation."""
