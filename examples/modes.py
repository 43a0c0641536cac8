"""Output modes against any OpenAI-compatible server: what mode="auto" picks, and each mode by hand.

    export OPENAI_BASE_URL=http://127.0.0.1:8080/v1 OPENAI_API_KEY=x SCHEMAGEN_MODEL=m
    python examples/modes.py

Prints, for mode="auto", the mode it ended in and every step down with the server's words;
then each mode picked by hand, with its value or the typed error the server's refusal became.
See docs/modes.md.
"""

from __future__ import annotations

from pydantic import BaseModel

import schemagen


class Person(BaseModel):
    name: str
    age: int


TEXT = "Bob is 42 years old."
OPTIONS = {"temperature": 0, "max_tokens": 200, "retries": 1}

result = schemagen.extract_result(Person, TEXT, **OPTIONS)
print(f"auto ended in {result.trace.mode!r} after {result.attempts} request(s): {result.value!r}")
for step in result.trace.steps:
    print(f"  {step['from']} -> {step['to']} ({step['refused']}): {step['said'][:160]}")
for attempt in result.trace.attempts:
    if attempt.reasoning:
        print(f"  reasoning kept in the trace: {attempt.reasoning[:160]!r}")

for mode in ("tools", "tools_required", "tools_auto", "json_schema", "json_object", "prompt"):
    try:
        value = schemagen.extract(Person, TEXT, mode=mode, **OPTIONS)
        print(f"{mode:>15}: {value!r}")
    except schemagen.ModeUnsupportedError as exc:
        print(f"{mode:>15}: the server refused `{exc.feature}` (HTTP {exc.status_code})")
    except schemagen.SchemagenError as exc:
        print(f"{mode:>15}: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
