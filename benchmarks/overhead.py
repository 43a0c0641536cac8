"""Per-call overhead: schemagen vs the raw openai SDK vs instructor, and schemagen with
OpenTelemetry absent / installed without an SDK / exporting to memory, measured side by side.

All three call one loopback server (its own process) that answers at once with a valid
tool call, so what differs is the client-side work. Rounds are interleaved so machine
noise hits every contender alike; medians are compared.

    python benchmarks/overhead.py [--calls 300] [--rounds 5]

Targets: schemagen <= 1.15x raw openai per call; Invoice tool definition <= 0.75x
instructor's tokens (cl100k), with the same constraints. Telemetry, against schemagen with
opentelemetry absent (its import blocked): API installed but no SDK <= 1.02x, spans
exported to an in-memory exporter <= 1.10x.

Writes the figures to benchmarks/results/overhead.json (read by benchmarks/plots.py).
"""

from __future__ import annotations

import argparse
import json
import platform
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

    runs = {"raw openai": raw_openai, "schemagen": with_schemagen, **telemetry_contenders(oa)}
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


OTEL_ABSENT, OTEL_API, OTEL_MEMORY = "otel absent", "otel api only", "otel in-memory"


def telemetry_contenders(oa: openai.OpenAI) -> dict[str, Callable[[], object]]:
    """Three Clients over one connection: opentelemetry blocked, API without SDK, SDK in memory."""
    blocked = {name: sys.modules.pop(name) for name in list(sys.modules)
               if name == "opentelemetry" or name.startswith("opentelemetry.")}
    sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # import now raises ImportError
    try:
        absent = schemagen.Client(client=oa, model="m")
    finally:
        del sys.modules["opentelemetry"]
        sys.modules.update(blocked)
    assert len(absent.observers) == 1, "opentelemetry was not blocked"
    runs: dict[str, Callable[[], object]] = {OTEL_ABSENT: lambda: absent.extract(Invoice, TEXT)}
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError:
        print("opentelemetry-sdk is not installed (pip install -e '.[otel]'); skipping telemetry")
        return {}
    api_only = schemagen.Client(client=oa, model="m")  # the global provider: a no-op without an SDK
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    exported = schemagen.Client(client=oa, model="m", telemetry=schemagen.Telemetry(tracer_provider=provider))

    calls = iter(range(1, 1 << 62))

    def in_memory() -> object:
        value = exported.extract(Invoice, TEXT)
        if next(calls) % 500 == 0:  # keep memory flat; get_finished_spans() would copy them all
            exporter.clear()
        return value

    runs[OTEL_API] = lambda: api_only.extract(Invoice, TEXT)
    runs[OTEL_MEMORY] = in_memory
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


def write_results(args: argparse.Namespace, per_call: dict[str, list[float]], base: float,
                  telemetry: dict[str, float]) -> None:
    out = ROOT / "benchmarks" / "results" / "overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "overhead",
        "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
        "rounds": args.rounds,
        "calls": args.calls,
        "ms_per_call": {name: statistics.median(times) * 1e3 for name, times in per_call.items()},
        "x_raw_openai": {name: statistics.median(times) / base for name, times in per_call.items()},
        "telemetry_x_absent": telemetry,
    }, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


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
            print(f"  {name:<15} {med * 1e3:7.3f} ms/call   {med / base:5.2f}x raw openai")
        print("target: schemagen <= 1.15x raw openai")
        telemetry = {}
        if OTEL_API in per_call:
            # Per round, each against the same round's absent run: pairs share the machine's noise.
            for name, target in ((OTEL_API, 1.02), (OTEL_MEMORY, 1.10)):
                pairs = zip(per_call[name], per_call[OTEL_ABSENT], strict=True)
                ratio = statistics.median(t / a for t, a in pairs)
                telemetry[name] = ratio
                diffs = zip(per_call[name], per_call[OTEL_ABSENT], strict=True)
                added = statistics.median(t - a for t, a in diffs)
                print(f"telemetry: {name} {ratio:.3f}x otel absent (target <= {target:.2f}x), "
                      f"{added * 1e6:+.0f} us/call")
        tool_tokens()
        write_results(args, per_call, base, telemetry)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
