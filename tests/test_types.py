"""The public API is typed: pyright's type completeness stays at or above 95%."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_public_api_type_completeness_meets_the_bar(capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("pyright") is None:
        pytest.skip("pyright is not installed (pip install -e '.[dev]')")
    proc = subprocess.run([sys.executable, str(ROOT / ".ci" / "verifytypes")], capture_output=True, text=True,
                          timeout=240)
    with capsys.disabled():  # the figure goes to the CI log, pass or fail
        print("\n" + proc.stdout.splitlines()[0] if proc.stdout else "")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "type completeness of the public API:" in proc.stdout


def test_py_typed_ships_with_the_package() -> None:
    assert (ROOT / "src" / "schemagen" / "py.typed").exists()
