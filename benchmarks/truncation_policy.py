"""Which ``on_truncation`` default suits a local model: ``"raise"`` or ``"reask"``.

    PYTHONPATH=src python benchmarks/truncation_policy.py [--limit 14]

The runaway set (benchmarks/data/runaway_texts.jsonl: list and free-text fields, where a greedy
135M model loops) on the embedded model, both policies interleaved text by text on one loaded
model. The local backend already retries a loop once with no repeated 8-gram (``loop_retry``);
``"reask"`` adds an engine reask with a raised bound on top. Prints the valid rate, completion
tokens and wall time of each, and the ratios reask / raise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from runaway_cases import load_cases

import schemagen
from schemagen.backends.local import LocalBackend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    cases = load_cases()[: args.limit]
    backend = LocalBackend()
    clients = {policy: schemagen.Client(backend=backend, on_truncation=policy)
               for policy in ("raise", "reask")}
    stats = {p: {"ok": 0, "tokens": 0, "wall": 0.0, "truncated": 0} for p in clients}
    for case in cases:
        for policy, client in clients.items():
            started = time.perf_counter()
            try:
                result = client.extract_result(case.target, case.text)
                stats[policy]["ok"] += 1
                stats[policy]["tokens"] += result.usage.completion_tokens
                outcome = "ok"
            except schemagen.SchemagenError as exc:
                attempts = getattr(getattr(exc, "trace", None), "attempts", [])
                stats[policy]["tokens"] += sum(a.usage.completion_tokens for a in attempts)
                stats[policy]["truncated"] += isinstance(exc, schemagen.TruncatedError)
                outcome = type(exc).__name__
            stats[policy]["wall"] += time.perf_counter() - started
            print(f"{case.id:14s} {policy:6s} {outcome}", flush=True)
    n = len(cases)
    for policy, s in stats.items():
        print(f"{policy:6s} valid {s['ok']}/{n}  truncated {s['truncated']}  "
              f"completion tokens {s['tokens']}  wall {s['wall']:.1f}s")
    raise_, reask = stats["raise"], stats["reask"]
    tokens = reask["tokens"] / max(raise_["tokens"], 1)
    wall = reask["wall"] / max(raise_["wall"], 1e-9)
    print(f"reask / raise: valid {reask['ok']} vs {raise_['ok']}, tokens {tokens:.2f}x, wall {wall:.2f}x")


if __name__ == "__main__":
    main()
