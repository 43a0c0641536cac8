"""The public API is typed: pyright's type completeness stays at or above 95%, and ``mypy`` (strict)
is clean for all of src/schemagen."""

from __future__ import annotations

import os
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


def test_mypy_is_strict_and_clean_for_the_whole_package() -> None:
    pytest.importorskip("mypy")
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True and config["files"] == ["src/schemagen"]
    for override in config.get("overrides", []):  # only third-party modules may be relaxed
        modules = override["module"] if isinstance(override["module"], list) else [override["module"]]
        assert not [m for m in modules if m.split(".")[0] == "schemagen"], override
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}  # this tree, not another install
    for args in ([], ["tests/typing_public_api.py"]):  # the package; what its public API's types say
        proc = subprocess.run([sys.executable, "-m", "mypy", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=280)
        assert proc.returncode == 0 and "Success: no issues found" in proc.stdout, proc.stdout + proc.stderr
