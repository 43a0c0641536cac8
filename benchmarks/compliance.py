"""JSON Schema compliance on the official JSON Schema Test Suite (draft 2020-12, vendored).

    PYTHONPATH=src python benchmarks/compliance.py [--e2e 30] [--plot docs/compliance.png]
        [--json results.json]

1. Grammar fidelity, no model, every case of every keyword file: does schemagen's local
   constraint (llguidance, as ``LocalBackend`` compiles it) accept the instance's JSON text
   exactly when the case is valid, and does validation catch what the grammar lets through?
   Outlines' default JSON-schema backend (outlines_core's regex) runs on the same cases in
   the same run; the totals are printed side by side with ratios.
2. End to end, with the embedded default model (SmolLM2-135M via llama.cpp, constrained):
   for a sample of accepted schemas, extract from a text stating a valid instance; every
   value returned must pass ``jsonschema``. Typed errors are fine and counted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import jsonschema
import jsonschema.validators
from benchmarks.jsonschema_suite import Case, Tally, compact, fidelity, grammar_for, load_cases, totals

from schemagen.errors import SchemagenError
from schemagen.schema import build_tool

COLUMNS = (
    "cases",
    "refused",
    "correct",
    "wrongly_accepted",
    "caught",
    "returned_invalid",
    "wrongly_rejected",
)


def _row(name: str, ours: Tally, theirs: Tally | None) -> str:
    left = (
        f"{name:24} {ours.cases:5} | {ours.refused:5} {ours.correct:5} {ours.wrongly_accepted:5} "
        f"{ours.wrongly_accepted_enforced:5} {ours.caught:6} {ours.returned_invalid:5} "
        f"{ours.wrongly_rejected:5}"
    )
    if theirs is None:
        return left
    return (
        left + f" | {theirs.refused:5} {theirs.correct:5} {theirs.returned_invalid:5} "
        f"{theirs.wrongly_rejected:5}"
    )


def print_table(table: dict[str, tuple[Tally, Tally | None]]) -> tuple[Tally, Tally]:
    print("Grammar fidelity per keyword file (draft2020-12). schemagen = llguidance grammar + jsonschema")
    print("validation; Outlines = its default JSON-schema backend (outlines_core regex), no validation.")
    print("WA = wrongly accepted by the grammar; WA-e = ... where the enforcement report claims the grammar")
    print("enforces every keyword; caught = WA rejected by validation; RET = invalid value returned;")
    print("WR = valid instance rejected; refused = schema refused up front (typed SchemaError).\n")
    print(f"{'':24} {'':5} | {'schemagen':^42} | {'Outlines':^23}")
    print(
        f"{'keyword file':24} {'cases':>5} | {'refus':>5} {'ok':>5} {'WA':>5} {'WA-e':>5} {'caught':>6} "
        f"{'RET':>5} "
        f"{'WR':>5} | {'refus':>5} {'ok':>5} {'RET':>5} {'WR':>5}"
    )
    for name, (ours, theirs) in sorted(table.items()):
        print(_row(name, ours, theirs))
    ours, theirs = totals(table)
    print(_row("TOTAL", ours, theirs))
    return ours, theirs


def print_ratios(ours: Tally, theirs: Tally) -> dict[str, Any]:
    def rate(n: int, d: int) -> float:
        return n / d if d else 0.0

    accepted_ours, accepted_theirs = ours.cases - ours.refused, theirs.cases - theirs.refused
    figures = {
        "coverage_schemagen": rate(accepted_ours, ours.cases),
        "coverage_outlines": rate(accepted_theirs, theirs.cases),
        "coverage_ratio": rate(accepted_ours, accepted_theirs),
        "invalid_returned_schemagen": ours.returned_invalid,
        "invalid_returned_outlines": theirs.returned_invalid,
        "grammar_misses_where_claimed": ours.wrongly_accepted_enforced,
        "wrongly_rejected_rate_schemagen": rate(ours.wrongly_rejected, accepted_ours),
        "wrongly_rejected_rate_outlines": rate(theirs.wrongly_rejected, accepted_theirs),
        "seconds_schemagen": ours.seconds,
        "seconds_outlines": theirs.seconds,
    }
    print("\nTotals, side by side (same cases, same run):")
    print(
        f"  cases constrained (not refused): schemagen {accepted_ours}/{ours.cases} "
        f"({figures['coverage_schemagen']:.1%}), Outlines {accepted_theirs}/{theirs.cases} "
        f"({figures['coverage_outlines']:.1%}): {figures['coverage_ratio']:.2f}x"
    )
    print(
        f"  invalid instances that get through: schemagen {ours.returned_invalid}, Outlines "
        f"{theirs.returned_invalid} (of {accepted_theirs} constrained cases)"
    )
    print(
        f"  grammar slips where the enforcement report claims the grammar: {ours.wrongly_accepted_enforced}"
    )
    print(f"  grammar slips caught by validation (+ reask): {ours.caught}")
    print(
        f"  valid instances rejected: schemagen {ours.wrongly_rejected} "
        f"({figures['wrongly_rejected_rate_schemagen']:.1%} of constrained), "
        f"Outlines {theirs.wrongly_rejected} "
        f"({figures['wrongly_rejected_rate_outlines']:.1%})"
    )
    print(
        f"  time: schemagen {ours.seconds:.1f} s, Outlines {theirs.seconds:.1f} s "
        f"({rate(int(ours.seconds * 1000), int(theirs.seconds * 1000)):.2f}x)"
    )
    return figures


# ---------------------------------------------------------------- end to end


def e2e_sample(cases: list[Case], n: int) -> list[Case]:
    """One valid instance per accepted schema, spread over the keyword files."""
    picked: dict[str, Case] = {}
    for case in cases:
        key = compact(case.schema)
        if not case.valid or key in picked:
            continue
        try:
            grammar_for(build_tool(case.schema, strict=False))
        except SchemagenError:
            continue
        picked[key] = case
    pool = list(picked.values())
    step = max(1, len(pool) // n) if n else 1
    return pool[::step][:n]


def run_e2e(sample: list[Case], retries: int) -> dict[str, Any]:
    import schemagen

    client = schemagen.Client(retries=retries, max_tokens=300, temperature=0.0)  # the embedded default
    outcomes: Counter[str] = Counter()
    invalid: list[str] = []
    start = time.perf_counter()
    for case in sample:
        text = f"Record this JSON value exactly as written: {json.dumps(case.data, ensure_ascii=False)}"
        try:
            value = client.extract(case.schema, text)
        except SchemagenError as exc:
            outcomes[type(exc).__name__] += 1
            continue
        cls = jsonschema.validators.validator_for(case.schema, default=jsonschema.Draft202012Validator)
        if cls(case.schema, format_checker=cls.FORMAT_CHECKER).is_valid(value):
            outcomes["valid value"] += 1
            outcomes["same as stated"] += value == case.data
        else:
            outcomes["INVALID value"] += 1
            invalid.append(f"{case.file}: {case.group} -> {value!r}")
    seconds = time.perf_counter() - start
    print(
        f"\nEnd to end, embedded default model, {len(sample)} schemas (retries={retries}), {seconds:.0f} s:"
    )
    for name, count in outcomes.most_common():
        print(f"  {name}: {count}")
    print(f"  invalid values returned: {outcomes['INVALID value']} (target 0)")
    for line in invalid:
        print(f"    {line}")
    return {"n": len(sample), "outcomes": dict(outcomes), "invalid": invalid, "seconds": seconds}


# ---------------------------------------------------------------- chart


def plot(table: dict[str, tuple[Tally, Tally | None]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(table)
    parts = [
        ("correct", "#2a9d8f", lambda t: t.correct),
        ("grammar slip, caught by validation", "#e9c46a", lambda t: t.caught),
        ("invalid value returned", "#d62828", lambda t: t.returned_invalid),
        ("valid rejected", "#8d99ae", lambda t: t.wrongly_rejected),
        ("refused up front", "#d9d9d9", lambda t: t.refused),
    ]
    fig, ax = plt.subplots(figsize=(9, 12))
    height = 0.38
    for offset, who in ((-height / 2, 0), (height / 2, 1)):
        left = [0.0] * len(names)
        for label, color, get in parts:
            widths = []
            for name in names:
                tally = table[name][who]
                widths.append(get(tally) / tally.cases if tally is not None and tally.cases else 0.0)
            ys = [i + offset for i in range(len(names))]
            ax.barh(
                ys,
                widths,
                height=height * 0.95,
                left=left,
                color=color,
                label=label if who == 0 else None,
                edgecolor="white" if who == 0 else "black",
                linewidth=0.3,
            )
            left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("share of the keyword file's test cases")
    title = "JSON Schema Test Suite, draft 2020-12\nupper bar: schemagen; lower: Outlines' default backend"
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, -0.08), ncol=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nchart written to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--e2e", type=int, default=30, help="schemas to extract end to end (0: skip)")
    parser.add_argument("--retries", type=int, default=2)
    parser.add_argument("--plot", help="write the chart (PNG) here")
    parser.add_argument("--json", help="write every figure here")
    args = parser.parse_args()

    cases = load_cases()
    table = fidelity(cases)
    ours, theirs = print_table(table)
    figures = print_ratios(ours, theirs)
    e2e = run_e2e(e2e_sample(cases, args.e2e), args.retries) if args.e2e else None
    if args.plot:
        plot(table, args.plot)
    if args.json:
        data = {
            "per_file": {
                n: {
                    "schemagen": {c: getattr(a, c) for c in COLUMNS},
                    "outlines": {c: getattr(b, c) for c in COLUMNS} if b else None,
                }
                for n, (a, b) in table.items()
            },
            "totals": figures,
            "e2e": e2e,
        }
        Path(args.json).write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
