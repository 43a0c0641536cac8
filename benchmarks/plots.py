"""Plots for the docs home page, from the JSON files the benchmarks write.

    python benchmarks/plots.py [--results benchmarks/results] [--out docs/img/benchmarks.png]

Reads what exists and renders that; a benchmark not run yet gets a "not measured yet" panel.

- ``overhead.json`` (benchmarks/overhead.py): ``x_raw_openai`` {contender: ratio} and
  ``telemetry_x_absent`` {case: ratio}.
- ``accuracy.json`` (the accuracy benchmark): ``{"metric": "field accuracy",
  "results": [{"label": "schemagen, SmolLM2-135M", "accuracy": 0.62}, ...]}``, accuracy in 0..1.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

ROOT = Path(__file__).resolve().parent.parent
TELEMETRY_TARGETS = {"otel api only": 1.02, "otel in-memory": 1.10}


def load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def not_yet(ax: Axes, title: str, how: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, f"not measured yet\n({how})", ha="center", va="center", transform=ax.transAxes,
            color="gray")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_overhead(ax: Axes, data: dict[str, Any] | None) -> None:
    if not data:
        not_yet(ax, "Per-call overhead", "python benchmarks/overhead.py")
        return
    ratios: dict[str, float] = data.get("x_raw_openai", {})
    names = list(ratios)
    bars = ax.barh(names, [ratios[n] for n in names], color=["#3f51b5" if n != "raw openai" else "#9e9e9e"
                                                             for n in names])
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.bar_label(bars, labels=[f"{ratios[n]:.2f}x" for n in names], padding=3, fontsize=8)
    telemetry: dict[str, float] = data.get("telemetry_x_absent", {})
    lines = [f"{k}: {v:.2f}x absent (target {TELEMETRY_TARGETS.get(k, 0):.2f}x)"
             for k, v in telemetry.items()]
    ax.set_title("Per-call time vs the raw openai SDK (loopback server)")
    ax.set_xlabel("x raw openai (lower is better)" + ("\n" + "\n".join(lines) if lines else ""))
    ax.invert_yaxis()
    ax.margins(x=0.2)


def plot_accuracy(ax: Axes, data: dict[str, Any] | None) -> None:
    results = (data or {}).get("results") or []
    if not results:
        not_yet(ax, "Accuracy", "the accuracy benchmark writes benchmarks/results/accuracy.json")
        return
    labels = [str(r["label"]) for r in results]
    values = [float(r["accuracy"]) for r in results]
    bars = ax.barh(labels, values, color="#009688")
    ax.bar_label(bars, labels=[f"{v:.0%}" for v in values], padding=3, fontsize=8)
    ax.set_xlim(0, 1.1)
    ax.set_title(f"Accuracy ({(data or {}).get('metric', 'share correct')})")
    ax.invert_yaxis()


def render(results: Path, out: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    plot_accuracy(left, load(results, "accuracy"))
    plot_overhead(right, load(results, "overhead"))
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "benchmarks.png")
    args = parser.parse_args()
    print(f"wrote {render(args.results, args.out)}")


if __name__ == "__main__":
    main()
