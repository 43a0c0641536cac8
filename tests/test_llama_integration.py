"""End to end against the real llama.cpp server serving SmolLM2-135M-Instruct."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest
from examples.invoice_plain import Invoice, Item

import schemagen
from schemagen.testing.llama import LlamaServer

pytestmark = pytest.mark.llama

ROOT = Path(__file__).resolve().parents[1]
TEXT = "Invoice INV-7 from ACME Corp. 2 widgets at 15.25 each. Total 30.50 USD."
SAMPLING = {"temperature": 0.0, "seed": 7, "max_tokens": 400}


def test_extract_invoice_sync(llama_server: LlamaServer) -> None:
    client = openai.OpenAI(base_url=llama_server.base_url, api_key="sk-local-test-key-123456")
    result = schemagen.extract_result(Invoice, TEXT, client=client, model="smollm2", **SAMPLING)
    assert isinstance(result.value, Invoice)
    assert result.attempts >= 1
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
    first = result.trace.attempts[0]
    assert first.source == "tool_calls"
    assert first.request.body["tool_choice"]["function"]["name"] == "Invoice"


def test_extract_list_sync(llama_server: LlamaServer) -> None:
    client = openai.OpenAI(base_url=llama_server.base_url, api_key="x")
    items = schemagen.extract(list[Item], TEXT, client=client, model="smollm2", **SAMPLING)
    assert isinstance(items, list)
    assert all(isinstance(i, Item) for i in items)


async def test_extract_invoice_and_list_async(llama_server: LlamaServer) -> None:
    client = openai.AsyncOpenAI(base_url=llama_server.base_url, api_key="x")
    invoice = await schemagen.aextract(Invoice, TEXT, client=client, model="smollm2", **SAMPLING)
    assert isinstance(invoice, Invoice)
    items = await schemagen.aextract(list[Item], TEXT, client=client, model="smollm2", **SAMPLING)
    assert isinstance(items, list)


async def test_client_reused_sync_and_async_give_the_same_answer(llama_server: LlamaServer) -> None:
    with schemagen.Client(base_url=llama_server.base_url, api_key="x", model="smollm2", retries=2,
                          **SAMPLING) as sg:
        sync_value = sg.extract(Invoice, TEXT)
        async_value = await sg.aextract(Invoice, TEXT)
    assert sync_value == async_value  # temperature 0 and one core: the twins agree


def test_env_configured_endpoint_and_classification(
    llama_server: LlamaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", llama_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "x")
    monkeypatch.setenv("SCHEMAGEN_MODEL", "smollm2")
    from typing import Literal

    label = schemagen.extract(Literal["invoice", "poem"], TEXT, **SAMPLING)
    assert label in ("invoice", "poem")
    assert isinstance(schemagen.extract(int, "There are 3 apples.", **SAMPLING), int)


def test_debug_prints_request_and_response_without_the_key(
    llama_server: LlamaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "sk-debug-secret-abcdefgh123"
    client = openai.OpenAI(base_url=llama_server.base_url, api_key=key)
    schemagen.extract(Invoice, TEXT, client=client, model="smollm2", debug=True, **SAMPLING)
    err = capsys.readouterr().err
    assert "tool_choice" in err and "raw response" in err
    assert key not in err


def test_cli_extract_prints_json(llama_server: LlamaServer) -> None:
    env = {**os.environ, "OPENAI_BASE_URL": llama_server.base_url, "OPENAI_API_KEY": "x",
           "SCHEMAGEN_MODEL": "smollm2"}
    proc = subprocess.run(
        [sys.executable, "-m", "schemagen", "extract", str(ROOT / "examples/invoice.txt"),
         "--schema", str(ROOT / "examples/invoice_plain.py") + ":Invoice", "--max-tokens", "400"],
        capture_output=True, text=True, env=env, timeout=180, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == {"invoice_number", "vendor", "total", "items"}


def test_cli_errors_are_clear_and_nonzero(tmp_path: Path) -> None:
    bad_schema = subprocess.run(
        [sys.executable, "-m", "schemagen", "extract", str(ROOT / "examples/invoice.txt"),
         "--schema", str(ROOT / "examples/invoice.py") + ":Missing", "--base-url", "http://127.0.0.1:9/v1"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert bad_schema.returncode == 2
    assert "has no attribute 'Missing'" in bad_schema.stderr
    unreachable = subprocess.run(
        [sys.executable, "-m", "schemagen", "extract", str(ROOT / "examples/invoice.txt"),
         "--schema", str(ROOT / "examples/invoice.py") + ":Invoice", "--base-url", "http://127.0.0.1:9/v1"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, "OPENAI_API_KEY": "x"},
    )
    assert unreachable.returncode == 1
    assert "APIConnectionError" in unreachable.stderr
