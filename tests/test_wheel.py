"""The wheel installs and works outside the source tree (.ci/wheel-check)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.llama_server import LlamaServer

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.wheel, pytest.mark.llama]


def test_wheel_builds_installs_and_runs_the_quick_start(llama_server: LlamaServer) -> None:
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    env = {**os.environ, "SCHEMAGEN_WHEEL_BASE_URL": llama_server.base_url}
    for name in ("OPENAI_BASE_URL", "SCHEMAGEN_MODEL", "PYTHONPATH"):  # the venv must see only the wheel
        env.pop(name, None)
    proc = subprocess.run([str(ROOT / ".ci" / "wheel-check")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "wheel contents ok" in proc.stdout
    assert "smoke test ok: schemagen " in proc.stdout and "quick start ok:" in proc.stdout
