"""benchmarks/plots.py renders what the benchmarks have measured, and says what they have not."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("matplotlib", reason="pip install -e '.[docs]'")


def load_plots() -> object:
    spec = importlib.util.spec_from_file_location("bench_plots", ROOT / "benchmarks" / "plots.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_plots"] = module
    spec.loader.exec_module(module)
    return module


def test_renders_measured_results_and_placeholders(tmp_path: Path) -> None:
    plots = load_plots()
    results = tmp_path / "results"
    results.mkdir()
    empty = plots.render(results, tmp_path / "empty.png")  # type: ignore[attr-defined]
    (results / "overhead.json").write_text(json.dumps({
        "x_raw_openai": {"raw openai": 1.0, "schemagen": 0.7},
        "telemetry_x_absent": {"otel api only": 1.01, "otel in-memory": 1.05}}))
    (results / "accuracy.json").write_text(json.dumps({
        "metric": "field accuracy", "results": [{"label": "SmolLM2-135M", "accuracy": 0.5}]}))
    full = plots.render(results, tmp_path / "full.png")  # type: ignore[attr-defined]
    assert empty.read_bytes()[:8] == full.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert empty.read_bytes() != full.read_bytes()  # the measured figures changed the picture
