"""Per-call overhead: schemagen vs the raw openai SDK vs instructor, measured side by side.

All three call one loopback server (its own process) that answers at once with a valid
tool call, so what differs is the client-side work. Rounds are interleaved so machine
noise hits every contender alike; medians are compared.

    python benchmarks/overhead.py [--calls 300] [--rounds 5]

Targets: schemagen <= 1.15x raw openai per call; Invoice tool definition <= 0.75x
instructor's tokens (cl100k), with the same constraints.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from examples.invoice import Invoice  # noqa: E402

import schemagen  # noqa: E402
from schemagen.schema import build_tool  # noqa: E402
from schemagen.testing import free_port  # noqa: E402
from schemagen.tokens import counter_for  # noqa: E402

TEXT = "Invoice INV-7 from ACME Corp. 2 widgets at 15.25 each. Total 30.50 USD."


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "schemagen.testing", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}/v1"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{base_url}/models", timeout=1)
            break
        except OSError as exc:
            if getattr(exc, "code", None):  # any HTTP answer means it is up
                break
            time.sleep(0.1)
    return proc, base_url


def contenders(base_url: str) -> dict[str, Callable[[], object]]:
    oa = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0)
    spec = build_tool(Invoice, strict=False)
    messages = [{"role": "system", "content": "Extract the invoice."}, {"role": "user", "content": TEXT}]

    def raw_openai() -> Invoice:
        resp = oa.chat.completions.create(model="m", messages=messages,  # type: ignore[arg-type]
                                          tools=[spec.tool], tool_choice=spec.tool_choice)  # type: ignore[list-item,arg-type]
        args = resp.choices[0].message.tool_calls[0].function.arguments  # type: ignore[index,union-attr]
        return Invoice.model_validate_json(args)

    def with_schemagen() -> Invoice:
        return schemagen.extract(Invoice, TEXT, client=oa, model="m")

    runs = {"raw openai": raw_openai, "schemagen": with_schemagen}
    try:
        import instructor

        patched = instructor.from_openai(oa, mode=instructor.Mode.TOOLS)

        def with_instructor() -> Invoice:
            return patched.chat.completions.create(model="m", response_model=Invoice, messages=messages,  # type: ignore[arg-type]
                                                   max_retries=0)

        runs["instructor"] = with_instructor
    except ImportError:
        print("instructor is not installed (pip install -e '.[bench]'); skipping it")
    return runs


def tool_tokens() -> None:
    count = counter_for("gpt-4")
    ours = build_tool(Invoice, strict=False).tool
    ours_tokens = count(json.dumps(ours))
    print(f"tool definition tokens ({count.name}): schemagen {ours_tokens}", end="")
    try:
        from instructor.processing.function_calls import openai_schema

        theirs = {"type": "function", "function": openai_schema(Invoice).openai_schema}
        theirs_tokens = count(json.dumps(theirs))
        print(f", instructor {theirs_tokens}, ratio {ours_tokens / theirs_tokens:.2f}x (target <= 0.75x)")
    except ImportError:
        print()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    proc, base_url = start_server()
    try:
        runs = contenders(base_url)
        for fn in runs.values():  # warm up connections, caches, imports
            for _ in range(20):
                fn()
        per_call: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, fn in runs.items():
                started = time.perf_counter()
                for _ in range(args.calls):
                    fn()
                per_call[name].append((time.perf_counter() - started) / args.calls)
        base = statistics.median(per_call["raw openai"])
        print(f"{args.rounds} rounds x {args.calls} calls, loopback server answering at once")
        for name, times in per_call.items():
            med = statistics.median(times)
            print(f"  {name:<11} {med * 1e3:7.3f} ms/call   {med / base:5.2f}x raw openai")
        print("target: schemagen <= 1.15x raw openai")
        tool_tokens()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
