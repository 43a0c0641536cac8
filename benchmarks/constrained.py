"""Constrained vs unconstrained local generation on SmolLM2-135M-Instruct, and vs Outlines.

    PYTHONPATH=src python benchmarks/constrained.py [--runs 3] [--no-transformers]
        [--plot docs/local_per_token.png] [--json results.json] [--grounded-only]

For each runtime (llama.cpp on the embedded GGUF; transformers on CPU with the same weights
converted once into ~/.cache/schemagen) it prints, from one run:

* grammar compile time: engine setup (once per model), cold compile (once per schema), and
  the warm per-request cost (cache lookup + fresh matcher), next to a new Outlines
  ``Generator`` per request, which is what Outlines users pay;
* per-token time of constrained generation against unconstrained decoding of the same tokens
  (teacher-forced: exactly the forward passes and argmax an unconstrained generation of that
  JSON costs) and against free-running unconstrained generation of as many tokens;
* the same extraction through Outlines (default backend, and llguidance), and the number of
  tokens each produces for the same object;
* grounded extraction (every string a span of the text, the substring grammar) with
  copy-from-input speculation, and without it, against unconstrained decoding of the same
  JSON (teacher-forced, one forward pass per token), on each runtime;
* ratios against the targets: warm compile <= 1 ms, per-token overhead <= 5 %, tokens per
  extraction <= 0.8x Outlines' default, grounded extraction <= 0.6x unconstrained.

Timings are medians over --runs interleaved repetitions (the machine may be shared).
Outlines' own per-token time is (T(n tokens) - T(1 token)) / (n - 1), which removes its prompt
evaluation (Outlines resets the llama.cpp context every call).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel

from schemagen.backends.local import LocalBackend
from schemagen.exchange import Request
from schemagen.grounding import all_strings, mark


class Address(BaseModel):
    street: str
    city: str
    country: str


class Contact(BaseModel):
    name: str
    email: str
    phone: str
    company: str
    age: int
    address: Address


TEXT = (
    "Maria Garcia (maria.garcia@example.com, +34 612 345 678) is 42 and works at Acme Robotics. "
    "Her office is at 12 Calle Mayor, Madrid, Spain."
)
# SmolLM2-135M follows the output format far better when the prompt shows it: with no
# example it tends not to close strings under a compact grammar (see docs/local.md).
SYSTEM = (
    "Extract the contact described by the user as compact JSON, for example: "
    '{"name":"John Doe","email":"john@doe.org","phone":"+1 555 0100","company":"Doe Inc","age":30,'
    '"address":{"street":"1 Main St","city":"Boston","country":"USA"}}'
)
SCHEMA = Contact.model_json_schema()
GROUNDED = mark(SCHEMA, all_strings(SCHEMA))  # every string must be a span of TEXT
MAX_TOKENS = 160


def render(backend: LocalBackend) -> str:
    # The core renders prompts with schemagen's template renderer; a sandboxed Jinja render of
    # the model's own template is the same string for this template.
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    template = ImmutableSandboxedEnvironment().from_string(backend.chat_template_source or "")
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": TEXT}]
    return str(template.render(messages=messages, add_generation_prompt=True,
                               bos_token=backend.bos_token, eos_token=backend.eos_token))


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def best(values: list[float]) -> float:
    """The minimum: on a shared machine, the run least disturbed by other processes."""
    return min(values) if values else float("nan")


def same_object_tokens(backend: LocalBackend, text: str) -> tuple[int, int] | None:
    """(tokens, tokens sampled) our loop needs to emit the compact form of the JSON in ``text``.

    Walks the compiled grammar along the compact serialization: grammar-forced stretches are
    fast-forwarded, the rest is tokenized as the model would most likely emit it.
    """
    try:
        value = json.loads(text)
    except ValueError:
        return None
    target = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    grammar, _ = backend.compiled_grammar(SCHEMA)
    state = grammar.new_state()
    tok = backend._engine().tokenizer
    pos = total = sampled = 0
    while pos < len(target):
        forced = state.forced_tokens()
        if forced:
            piece = tok.decode_bytes(forced)
            if not target.startswith(piece, pos):
                return None
            state.consume(forced)
            pos += len(piece)
            total += len(forced)
            continue
        token = tok.tokenize_bytes(target[pos:])[0]
        if not state.accepts(token):
            return None
        state.consume([token])
        pos += len(tok.decode_bytes([token]))
        total += 1
        sampled += 1
    return total, sampled


def teacher_forced_s(backend: LocalBackend, prompt: str, tokens: list[int]) -> float:
    """Seconds to decode ``tokens`` one at a time after the prompt, with an argmax per step:
    what unconstrained generation of exactly that text costs."""
    rt = backend._runtime
    with rt.lock:
        logits, _ = rt.start(rt.tokenize(prompt))
        started = time.perf_counter()
        for token in tokens:
            int(np.argmax(logits))
            logits = rt.step([token])
        return time.perf_counter() - started


def one_pass_s(backend: LocalBackend, prompt: str, tokens: list[int]) -> float:
    """Seconds to feed ``tokens`` after the prompt as one batch with logits after each."""
    rt = backend._runtime
    with rt.lock:
        rt.start(rt.tokenize(prompt))
        started = time.perf_counter()
        rt.step_all(tokens, list(range(len(tokens))))
        elapsed = time.perf_counter() - started
        rt.rewind(len(tokens))
        return elapsed


def outlines_model_for(backend: LocalBackend) -> Any:
    import outlines

    rt = backend._runtime
    if rt.kind == "llama.cpp":
        return outlines.from_llamacpp(rt.llm, chat_mode=False)  # type: ignore[attr-defined]
    model = outlines.from_transformers(rt.model, rt.tokenizer)  # type: ignore[attr-defined]
    model.type_adapter.has_chat_template = False  # the prompt is already rendered
    return model


class ModelTimer:
    """Times every forward pass of the runtime's model while active (llama.cpp ``decode`` or
    the transformers ``forward``), so time outside the model can be told apart in one run."""

    def __init__(self, backend: LocalBackend) -> None:
        rt = backend._runtime
        self.owner: Any = rt.llm._ctx if rt.kind == "llama.cpp" else rt.model  # type: ignore[attr-defined]
        self.name = "decode" if rt.kind == "llama.cpp" else "forward"
        self.calls: list[float] = []

    def __enter__(self) -> ModelTimer:
        original = getattr(self.owner, self.name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.calls.append(time.perf_counter() - started)

        setattr(self.owner, self.name, timed)
        return self

    def __exit__(self, *exc: object) -> None:
        delattr(self.owner, self.name)  # back to the class's method


def outlines_call(
    backend: LocalBackend, generator: Any, prompt: str, n: int
) -> tuple[str, float, list[float]]:
    """Outlines' output, its wall time, and the time of each forward pass (the first is the prompt)."""
    rt = backend._runtime
    kwargs: dict[str, Any] = (
        {"max_tokens": n, "temperature": 0.0} if rt.kind == "llama.cpp"
        else {"max_new_tokens": n, "do_sample": False}
    )
    with rt.lock:
        if rt.kind == "llama.cpp":
            rt.llm.reset()  # type: ignore[attr-defined]
        with ModelTimer(backend) as timer:
            started = time.perf_counter()
            text = generator(prompt, **kwargs)
            elapsed = time.perf_counter() - started
        if rt.kind == "llama.cpp":
            rt.llm.reset()  # type: ignore[attr-defined]
        else:
            rt._cache, rt._tokens = None, []  # type: ignore[attr-defined]
    return str(text), elapsed, timer.calls


def valid(text: str) -> bool:
    try:
        Contact.model_validate_json(text)
    except ValueError:
        return False
    return True


@dataclass
class Bench:
    """One runtime's run: the backends compared, the prompt, and the samples gathered."""

    runtime: str
    runs: int
    ours: LocalBackend  # llguidance with fast-forward (the default)
    noff: LocalBackend  # llguidance without fast-forward
    oc: LocalBackend  # outlines_core through our loop
    prompt: str
    res: dict[str, Any]
    omodel: Any = None
    generators: dict[str, Any] = field(default_factory=dict)
    gen_times: dict[str, list[float]] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    keep: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.samples.setdefault(name, []).append(value)

    def extract(self, backend: LocalBackend, label: str) -> Any:
        """One constrained extraction, its per-token wall, loop and model times recorded."""
        c = backend.complete(Request("completions", {"prompt": self.prompt, "max_tokens": MAX_TOKENS},
                                     constraint=SCHEMA))
        n = c.usage.completion_tokens
        self.add(label, c.raw["generate_ms"] / n)
        self.add(f"_loop/{label}", c.raw["loop_overhead_ms"] / n)
        self.add(f"_model/{label}", c.raw["model_ms"] / max(c.raw["decode_steps"], 1))
        return c


def measure_grounded(b: Bench) -> None:
    """Grounded extraction with and without speculation vs unconstrained decoding of the same
    JSON, interleaved. Totals (generation only, prompt excluded), not per token: speculation
    changes the number of forward passes, not of tokens."""
    spec_backend = LocalBackend(runtime=b.runtime, device="cpu", n_threads=b.res["threads"], compact=True,
                                speculate=True)
    nospec = LocalBackend(runtime=b.runtime, device="cpu", n_threads=b.res["threads"], compact=True,
                          speculate=False)
    rt = b.ours._runtime
    req = Request("completions", {"prompt": b.prompt, "max_tokens": MAX_TOKENS}, constraint=GROUNDED,
                  source_text=TEXT)
    spec_backend.complete(req)  # warm: the grounded grammar's lexer, the drafter's tokenizer
    for _ in range(b.runs):
        spec = spec_backend.complete(req)
        plain = nospec.complete(req)
        tokens = rt.tokenize(spec.text, prompt=False)
        b.add("_g/unconstrained, same JSON", teacher_forced_s(b.ours, b.prompt, tokens) * 1000)
        b.add("_g/grounded, speculation", spec.raw["generate_ms"])
        b.add("_g/grounded, no speculation", plain.raw["generate_ms"])
        b.add("_g/one pass, logits at every token", one_pass_s(b.ours, b.prompt, tokens) * 1000)
        b.keep["grounded"] = (spec, plain)


def print_grounded(b: Bench) -> None:
    spec, plain = b.keep["grounded"]
    names = ("unconstrained, same JSON", "grounded, speculation", "grounded, no speculation",
             "one pass, logits at every token")
    runs = {name: b.samples[f"_g/{name}"] for name in names}
    base = runs["unconstrained, same JSON"]
    print(f"\ngrounded extraction, {spec.usage.completion_tokens} tokens, generation time "
          f"(best of {b.runs} interleaved runs; median in parentheses); ratio: the median over runs of "
          f"each run's ratio (neighbours in time share the machine's load), best/best in parentheses")
    ratios: dict[str, float] = {}
    for name, values in runs.items():
        ratios[name] = med([v / u for v, u in zip(values, base, strict=True)])
        print(f"  {name:31s} {best(values):8.0f} ms ({med(values):6.0f})  {ratios[name]:5.2f}x unconstrained"
              f" ({best(values) / best(base):.2f}x)")
    with_spec, without = runs["grounded, speculation"], runs["grounded, no speculation"]
    spec_vs_plain = [s / p for s, p in zip(with_spec, without, strict=True)]
    print(f"  speculation vs none: {med(spec_vs_plain):.2f}x the time "
          f"({best(with_spec) / best(without):.2f}x); forward passes {spec.raw['decode_steps']} vs "
          f"{plain.raw['decode_steps']}; draft tokens kept {spec.raw['accepted_tokens']} of "
          f"{spec.raw['drafted_tokens']}; same output: {spec.text == plain.text}")
    target = ratios["grounded, speculation"]
    print(f"  grounded with speculation vs unconstrained generation of the same JSON: {target:.2f}x"
          f"  target <= 0.6x: {'OK' if target <= 0.6 else 'MISSED'}")
    print("  (one pass: the whole JSON fed as one batch with logits at every token, what checking a "
          "perfect draft costs: the floor for any drafting on this machine)")
    print(f"  output: {spec.text}")
    b.res["grounded"] = {
        "ratios_vs_unconstrained_same_json": ratios, "speculation_vs_none": med(spec_vs_plain),
        "tokens": spec.usage.completion_tokens, "decode_steps": spec.raw["decode_steps"],
        "decode_steps_no_speculation": plain.raw["decode_steps"], "drafted": spec.raw["drafted_tokens"],
        "accepted": spec.raw["accepted_tokens"], "same_output": spec.text == plain.text,
    }


def load(runtime: str, runs: int, threads: int | None) -> Bench:
    started = time.perf_counter()
    opts: dict[str, Any] = {"runtime": runtime, "device": "cpu", "n_threads": threads, "compact": True}
    ours = LocalBackend(**opts)
    print(f"model load {time.perf_counter() - started:.2f}s  device={ours.device}  path={ours.model_path}")
    return Bench(runtime, runs, ours, LocalBackend(**opts, fast_forward=False),
                 LocalBackend(**opts, engine="outlines_core"), render(ours),
                 {"runtime": runtime, "device": ours.device, "threads": threads})


def measure_compile(b: Bench) -> None:
    """Grammar setup and compile: ours cold and warm, outlines_core through us, Outlines Generators."""
    import outlines

    ours, res = b.ours, b.res
    t = time.perf_counter()
    ours._engine()
    res["engine_setup_s"] = time.perf_counter() - t
    t = time.perf_counter()
    ours.compiled_grammar(SCHEMA)
    res["compile_cold_s"] = time.perf_counter() - t
    warm = []
    for _ in range(200):
        t = time.perf_counter()
        grammar, hit = ours.compiled_grammar(SCHEMA)
        ours._check_engaged(grammar.new_state())  # what complete() does before generating
        warm.append(time.perf_counter() - t)
        assert hit
    res["compile_warm_s"] = med(warm)
    t = time.perf_counter()
    b.oc.compiled_grammar(SCHEMA)
    res["oc_compile_cold_s"] = time.perf_counter() - t  # engine setup + index

    # Outlines: a new Generator per request
    b.omodel = outlines_model_for(ours)
    b.gen_times = {"outlines_core": [], "llguidance": []}
    for _ in range(3):
        for name in b.gen_times:
            t = time.perf_counter()
            b.generators[name] = outlines.Generator(b.omodel, Contact, backend=name)
            b.gen_times[name].append(time.perf_counter() - t)
    res["outlines_generator_s"] = dict(b.gen_times)


def warm_up(b: Bench) -> None:
    """numba JIT for Outlines' numpy kernels, lazy lexers, caches."""
    outlines_call(b.ours, b.generators["outlines_core"], b.prompt, 2)
    outlines_call(b.ours, b.generators["llguidance"], b.prompt, 2)
    b.ours.complete(Request("completions", {"prompt": b.prompt, "max_tokens": 4}, constraint=SCHEMA))


def measure_per_token(b: Bench) -> None:
    """Per-token time of every contender, interleaved repetitions so drift hits all alike."""
    import outlines

    ours, rt, prompt = b.ours, b.ours._runtime, b.prompt
    for _ in range(b.runs):
        c_noff = b.keep["noff"] = b.extract(b.noff, "llguidance (ours, no fast-forward)")
        c_ff = b.keep["ff"] = b.extract(ours, "llguidance (ours, fast-forward)")
        b.keep["oc"] = b.extract(b.oc, "outlines_core (ours)")

        tokens = rt.tokenize(c_noff.text, prompt=False)
        b.add("unconstrained, same JSON", teacher_forced_s(ours, prompt, tokens) * 1000 / len(tokens))
        ff_tokens = rt.tokenize(c_ff.text, prompt=False)
        b.add("_ff_same_json_total_ms", teacher_forced_s(ours, prompt, ff_tokens) * 1000)
        b.add("_ff_total_ms", c_ff.raw["generate_ms"])

        n = c_noff.usage.completion_tokens
        free = ours.complete(Request("completions", {"prompt": prompt, "max_tokens": n, "ignore_eos": True}))
        m = free.usage.completion_tokens
        b.add("unconstrained, free-running", free.raw["generate_ms"] / m)
        b.add("_loop/unconstrained, free-running", free.raw["loop_overhead_ms"] / m)
        b.add("_model/unconstrained, free-running", free.raw["model_ms"] / max(free.raw["decode_steps"], 1))

        for name in ("outlines_core", "llguidance"):
            label = "Outlines default (outlines_core)" if name == "outlines_core" else "Outlines + llguidance"
            # a new Generator per request is how Outlines is used for a new schema/request
            g = outlines.Generator(b.omodel, Contact, backend=name)
            text, elapsed, calls = outlines_call(ours, g, prompt, MAX_TOKENS)
            n_out = len(rt.tokenize(text, prompt=False))
            b.add(label, (elapsed - calls[0]) * 1000 / n_out)  # without the prompt's forward pass
            b.add(f"_loop/{label}", (elapsed - sum(calls)) * 1000 / n_out)
            b.keep[name] = (text, n_out)

    b.res["per_token_ms"] = {k: best(v) for k, v in b.samples.items() if not k.startswith("_")}
    b.res["per_token_ms_median"] = {k: med(v) for k, v in b.samples.items() if not k.startswith("_")}
    b.res["outside_model_us_per_token"] = {
        k.split("/", 1)[1]: best(v) * 1000 for k, v in b.samples.items() if k.startswith("_loop/")
    }


def print_compile(b: Bench) -> None:
    res = b.res
    print("\ngrammar compile")
    print(f"  ours: engine setup (once per model)      {res['engine_setup_s'] * 1000:9.1f} ms")
    print(f"  ours: compile cold (once per schema)     {res['compile_cold_s'] * 1000:9.2f} ms")
    print(f"  ours: warm, per request                  {res['compile_warm_s'] * 1000:9.4f} ms"
          f"   target <= 1 ms: {'OK' if res['compile_warm_s'] <= 0.001 else 'MISSED'}")
    print(f"  ours outlines_core: setup + compile cold  {res['oc_compile_cold_s'] * 1000:9.1f} ms")
    for name, values in b.gen_times.items():
        shown = ", ".join(f"{v * 1000:.0f}" for v in values)
        print(f"  Outlines Generator({name}), each new one: {shown} ms")
    print(f"  a new Outlines Generator / our warm path: "
          f"{med(b.gen_times['outlines_core']) / res['compile_warm_s']:.0f}x")


def print_per_token(b: Bench) -> None:
    """Per-token ratios against unconstrained decoding of the same JSON; records the overheads."""
    per_token, samples = b.res["per_token_ms"], b.samples
    base = per_token["unconstrained, same JSON"]
    print(f"\nper-token time (best of {b.runs} interleaved runs; median in parentheses; greedy)")
    for name, value in per_token.items():
        median = b.res["per_token_ms_median"][name]
        print(f"  {name:36s} {value:7.2f} ms/token ({median:6.2f})  {value / base:5.2f}x")
    overhead = per_token["llguidance (ours, no fast-forward)"] / base - 1
    print(f"  constrained overhead, llguidance without fast-forward, wall clock: {overhead * 100:+.1f}%"
          f"  target <= 5%: {'OK' if overhead <= 0.05 else 'MISSED'}")
    # The same figure from inside one run: time outside the model's forward passes, per token,
    # against the model's own time per pass. Immune to other processes slowing the model.
    label = "llguidance (ours, no fast-forward)"
    loop_c = best(samples[f"_loop/{label}"])
    loop_u = best(samples["_loop/unconstrained, free-running"])
    model_pass = best(samples["_model/unconstrained, free-running"])
    in_run = (loop_c - loop_u) / model_pass
    print(f"  constrained overhead, in-run accounting: {loop_c * 1000:.0f} us/token in the loop vs "
          f"{loop_u * 1000:.0f} us unconstrained, model {model_pass:.2f} ms/pass -> {in_run * 100:+.2f}%")
    print("  time outside the model's forward passes (sampling, constraint, Python), best run:")
    for name, value in b.res["outside_model_us_per_token"].items():
        print(f"    {name:36s} {value:8.0f} us/token")
    ff_ratio = best(samples["_ff_total_ms"]) / best(samples["_ff_same_json_total_ms"])
    print(f"  constrained extraction with fast-forward vs unconstrained generation of the same JSON: "
          f"{ff_ratio:.2f}x the time")
    b.res.update(overhead_wall=overhead, overhead_in_run=in_run, ff_vs_unconstrained_same_json=ff_ratio)


def print_tokens(b: Bench) -> None:
    """Tokens per extraction: ours (compact, fast-forwarded) against Outlines' outputs."""
    ff = b.keep["ff"]
    out_text, out_n = b.keep["outlines_core"]
    lg_text, lg_n = b.keep["llguidance"]
    print("\ntokens per extraction")
    print(f"  ours (compact, llguidance):  {ff.usage.completion_tokens:4d} tokens, "
          f"{ff.usage.completion_tokens - ff.raw['forced_tokens']} sampled "
          f"({ff.raw['forced_tokens']} fast-forwarded), valid={valid(ff.text)}")
    print(f"  Outlines default:            {out_n:4d} tokens, valid={valid(out_text)}")
    print(f"  Outlines + llguidance:       {lg_n:4d} tokens, valid={valid(lg_text)}")
    same = same_object_tokens(b.ours, out_text)
    ratio_actual = ff.usage.completion_tokens / out_n
    print(f"  actual outputs: ours / Outlines default = {ratio_actual:.2f}x")
    if same is not None:
        total, sampled = same
        print(f"  same object as Outlines' output, written compact by ours: {total} tokens "
              f"({sampled} sampled) vs {out_n}: {total / out_n:.2f}x tokens, {sampled / out_n:.2f}x sampled"
              f"  target <= 0.8x: {'OK' if total / out_n <= 0.8 else 'MISSED'}")
    print(f"  ours:     {ff.text}")
    print(f"  Outlines: {out_text}")
    b.res.update(
        tokens={"ours": ff.usage.completion_tokens, "ours_forced": ff.raw["forced_tokens"],
                "outlines_default": out_n, "outlines_llguidance": lg_n,
                "same_object_ours": same},
        outputs={"ours": ff.text, "outlines_default": out_text, "outlines_llguidance": lg_text},
    )


def bench_runtime(
    runtime: str, runs: int, threads: int | None, grounded_only: bool = False
) -> dict[str, Any]:
    print(f"\n=== {runtime} (SmolLM2-135M-Instruct) ===")
    b = load(runtime, runs, threads)
    measure_grounded(b)
    print_grounded(b)
    if grounded_only:
        return b.res
    measure_compile(b)
    warm_up(b)
    measure_per_token(b)
    print_compile(b)
    print_per_token(b)
    print_tokens(b)
    return b.res


def plot(results: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = len(results)
    fig, axes = plt.subplots(2, cols, figsize=(7.0 * cols, 7.5), squeeze=False)

    def color(name: str) -> str:
        return "#888888" if name.startswith("unconstrained") else "#2b7bba" if "ours" in name else "#d9822b"

    for col, res in enumerate(results):
        for row, (data, unit, title) in enumerate((
            (res["per_token_ms"], "ms per output token, wall clock (best run)", "per token"),
            (res["outside_model_us_per_token"], "us per output token outside the model's forward passes",
             "outside the model"),
        )):
            ax = axes[row][col]
            names = list(data)[::-1]
            values = [data[k] for k in names]
            ax.barh(names, values, color=[color(k) for k in names])
            for y, v in enumerate(values):
                ax.text(v, y, f" {v:.1f}" if row == 0 else f" {v:.0f}", va="center", fontsize=8)
            ax.set_xlabel(unit)
            ax.set_title(f"SmolLM2-135M, {res['runtime']}, {res['device']}, "
                         f"{res['threads']} thread: {title}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"\nplot written to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--runs-transformers", type=int, default=2)
    parser.add_argument("--no-transformers", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="CPU threads (default 1, llama-cpp-python's own default on 2 cores; several threads "
        "spin-wait on each other and lose badly when other processes share the cores)",
    )
    parser.add_argument("--plot", default=None, help="write a PNG of per-token time by engine")
    parser.add_argument("--json", default=None, help="write the figures as JSON")
    parser.add_argument("--replot", default=None, help="only redraw --plot from a --json file")
    parser.add_argument("--grounded-only", action="store_true",
                        help="only the grounded extraction figures, a short run")
    args = parser.parse_args()
    if args.replot:
        with open(args.replot) as fh:
            plot(json.load(fh), args.plot or "local_per_token.png")
        return
    results = [bench_runtime("llama.cpp", args.runs, args.threads, args.grounded_only)]
    if not args.no_transformers:
        results.append(
            bench_runtime("transformers", args.runs_transformers, args.threads, args.grounded_only))
    if args.plot:
        plot(results, args.plot)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2, default=str)


if __name__ == "__main__":
    main()
