"""The documentation site builds with --strict: no broken link, no missing page or reference."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def build(tmp_path: Path, config: Path) -> subprocess.CompletedProcess[str]:
    site = str(tmp_path / "site")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", site]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT / "src")})


def test_site_builds_strict_with_api_reference(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="pip install -e '.[docs]'")
    proc = build(tmp_path, ROOT / "mkdocs.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    site = tmp_path / "site"
    api = (site / "api" / "index.html").read_text()
    assert "schemagen.extract" in api and "HookEvent" in api  # mkdocstrings rendered the reference
    assert (site / "img" / "benchmarks.png").exists()
    assert "Keep a Changelog" in (site / "changelog" / "index.html").read_text()


def test_strict_build_fails_on_a_broken_link(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="pip install -e '.[docs]'")
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    (docs / "quickstart.md").write_text("# Quick start\n\nSee [nowhere](no-such-page.md).\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text((ROOT / "mkdocs.yml").read_text() + f"\ndocs_dir: {docs}\n")
    # Keep the API page out: this test is about links, and it runs faster without griffe.
    (docs / "api.md").write_text("# API reference\n")
    proc = build(tmp_path, config)
    assert proc.returncode != 0
    assert "no-such-page.md" in proc.stdout + proc.stderr
