"""Grounded constrained extraction vs unconstrained generation of as many tokens, side by side.

    PYTHONPATH=src python benchmarks/grounded_speed.py [--runs 3] [--runtime transformers] [--threads N]

On the quick-start invoice (examples/invoice.py, its Quote fields and worked example): the
local backend's generation time (``raw["generate_ms"]``, prompt evaluation excluded) for

* grounded + constrained (the substring grammar; forced tokens fast-forwarded; copy-from-input
  speculation, ``speculate=True``),
* the same without speculation (the default),
* plain constrained (the same schema, no grounding),
* unconstrained decoding of the same number of tokens (``ignore_eos``, no grammar),

medians over interleaved runs, and the ratios to unconstrained (issue target for grounded:
<= 0.6x). Also the grounded grammar's compile time per request (it depends on the text).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
from pathlib import Path
from typing import Any

import schemagen
from schemagen.backends.local import LocalBackend
from schemagen.exchange import Request
from schemagen.grounding import mark

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--runtime", choices=["llama.cpp", "transformers"], default="llama.cpp")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: the backend's)")
    args = parser.parse_args()
    spec_ = importlib.util.spec_from_file_location("invoice", ROOT / "examples" / "invoice.py")
    assert spec_ is not None and spec_.loader is not None
    example: Any = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(example)
    text = (ROOT / "examples" / "invoice.txt").read_text()
    opts: dict[str, Any] = {"runtime": args.runtime, "device": "cpu", "n_threads": args.threads}
    backend = LocalBackend(**opts, speculate=True)
    nospec = LocalBackend(**opts, speculate=False)
    print(f"{args.runtime}, {backend.device}, threads: {args.threads or 'default'}")
    run = schemagen.Client(backend=backend, examples=example.EXAMPLES).start(example.Invoice, text)
    prompt = run.next_request().body["prompt"]
    spec = run.spec
    grounded = Request("completions", {"prompt": prompt, "max_tokens": 300},
                       constraint=mark(spec.parameters, spec.grounded), source_text=text)
    plain = Request("completions", {"prompt": prompt, "max_tokens": 300}, constraint=spec.parameters)
    times: dict[str, list[float]] = {"grounded": [], "grounded, no spec": [], "constrained": [],
                                     "unconstrained": []}
    compile_ms: list[float] = []
    for _ in range(args.runs):
        g = backend.complete(grounded)
        times["grounded"].append(g.raw["generate_ms"])
        compile_ms.append(g.raw["compile_ms"])
        n = nospec.complete(grounded)
        times["grounded, no spec"].append(n.raw["generate_ms"])
        times["constrained"].append(backend.complete(plain).raw["generate_ms"])
        free = Request("completions", {"prompt": prompt, "max_tokens": g.usage.completion_tokens,
                                       "ignore_eos": True})
        times["unconstrained"].append(backend.complete(free).raw["generate_ms"])
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"grounded output ({g.usage.completion_tokens} tokens, {g.raw['forced_tokens']} forced, "
          f"{g.raw['decode_steps']} forward passes, {n.raw['decode_steps']} without speculation; "
          f"draft tokens kept {g.raw['accepted_tokens']} of {g.raw['drafted_tokens']}; "
          f"same output without speculation: {g.text == n.text}): {g.text}")
    for name, value in med.items():
        print(f"  {name:18s} generate {value:8.1f} ms  ({value / med['unconstrained']:.2f}x unconstrained)")
    print(f"  grounded grammar compile per request: median {statistics.median(compile_ms):.1f} ms")
    print("  target: grounded <= 0.6x unconstrained")


if __name__ == "__main__":
    main()
