"""The real llama.cpp server for tests: moved to :mod:`schemagen.testing.llama`."""

from __future__ import annotations

from schemagen.models import smollm2_gguf_path as smollm2_gguf
from schemagen.testing.llama import CONTEXT, LlamaServer, free_port, start_llama_server

__all__ = ["CONTEXT", "LlamaServer", "free_port", "smollm2_gguf", "start_llama_server"]
