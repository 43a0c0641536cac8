"""Batch throughput and memory: schemagen vs raw AsyncOpenAI + gather vs instructor + gather.

One loopback fault server in its own process answers every request after ``--latency``
(50 ms) with a valid tool call. Each contender extracts ``--items`` (1,000) invoices at
concurrency 64 with its own fresh client; rounds are interleaved so machine noise hits
all alike, and medians are compared. Then peak RSS of a streaming schemagen batch
(JSONL in, checkpoint JSONL out) is measured for 1k and 10k items, each in a fresh
subprocess so the runs don't pollute each other.

    python benchmarks/batch.py [--items 1000] [--rounds 3] [--latency 0.05] [--rss 1000 10000]

Targets: schemagen >= 0.9x raw AsyncOpenAI; peak RSS at 10k <= 1.2x at 1k.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from examples.invoice import Invoice  # noqa: E402

import schemagen  # noqa: E402
from schemagen.batch.run import aextract_many  # noqa: E402
from schemagen.schema import build_tool  # noqa: E402
from schemagen.testing import free_port  # noqa: E402

CONCURRENCY = 64


def text(i: int) -> str:
    return f"Invoice INV-{i} from ACME Corp. {i % 7 + 1} widgets at 15.25 each. Total {i}.50 USD."


def start_server(latency: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "schemagen.testing", "--port", str(port),
                             "--latency", str(latency)], cwd=ROOT,
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


# ---------------------------------------------------------------- contenders: n items -> valid results

Contender = Callable[[str, int], Awaitable[int]]


async def gather_bounded(n: int, one: Callable[[int], Awaitable[object]]) -> int:
    """The usual hand-written batch: a semaphore of 64 around asyncio.gather."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def bounded(i: int) -> object:
        async with gate:
            return await one(i)

    results = await asyncio.gather(*(bounded(i) for i in range(n)), return_exceptions=True)
    return sum(isinstance(r, Invoice) for r in results)


async def raw_openai(base_url: str, n: int) -> int:
    oa = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    spec = build_tool(Invoice, strict=False)

    async def one(i: int) -> Invoice:
        resp = await oa.chat.completions.create(
            model="m", messages=[{"role": "system", "content": "Extract the invoice."},
                                 {"role": "user", "content": text(i)}],
            tools=[spec.tool], tool_choice=spec.tool_choice)  # type: ignore[list-item,arg-type]
        args = resp.choices[0].message.tool_calls[0].function.arguments  # type: ignore[index,union-attr]
        return Invoice.model_validate_json(args)

    try:
        return await gather_bounded(n, one)
    finally:
        await oa.close()


async def with_schemagen(base_url: str, n: int, checkpoint: str | None = None) -> int:
    client = schemagen.Client(base_url=base_url, api_key="bench", model="m")
    try:
        run = aextract_many(Invoice, (text(i) for i in range(n)), client=client, concurrency=CONCURRENCY,
                            checkpoint=checkpoint, overwrite=checkpoint is not None)
        return sum([r.ok async for r in run])
    finally:
        await client.backend.aclose()  # type: ignore[attr-defined]


async def with_schemagen_checkpoint(base_url: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        return await with_schemagen(base_url, n, str(Path(tmp) / "out.jsonl"))


async def with_instructor(base_url: str, n: int) -> int:
    import instructor

    oa = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    patched = instructor.from_openai(oa, mode=instructor.Mode.TOOLS)

    async def one(i: int) -> Invoice:
        return await patched.chat.completions.create(  # type: ignore[no-any-return]
            model="m", response_model=Invoice, max_retries=0,
            messages=[{"role": "system", "content": "Extract the invoice."},
                      {"role": "user", "content": text(i)}])

    try:
        return await gather_bounded(n, one)
    finally:
        await oa.close()


def contenders() -> dict[str, Contender]:
    runs: dict[str, Contender] = {
        "raw AsyncOpenAI": raw_openai,
        "schemagen": with_schemagen,
        "schemagen+ckpt": with_schemagen_checkpoint,
    }
    try:
        import instructor  # noqa: F401

        runs["instructor"] = with_instructor
    except ImportError:
        print("instructor is not installed (pip install -e '.[bench]'); skipping it")
    return runs


def throughput(args: argparse.Namespace, base_url: str) -> None:
    runs = contenders()
    for fn in runs.values():  # warm up imports, caches and the server
        asyncio.run(fn(base_url, CONCURRENCY))
    rates: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}  # client CPU per item: steadier than wall time
    for _ in range(args.rounds):
        for name, fn in runs.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            ok = asyncio.run(fn(base_url, args.items))
            elapsed = time.perf_counter() - started
            cpu[name].append((time.process_time() - cpu_started) / args.items)
            if ok != args.items:
                raise SystemExit(f"{name}: only {ok}/{args.items} valid results")
            rates[name].append(args.items / elapsed)
    base = statistics.median(rates["raw AsyncOpenAI"])
    base_cpu = statistics.median(cpu["raw AsyncOpenAI"])
    print(f"{args.rounds} rounds x {args.items} items, concurrency {CONCURRENCY}, "
          f"server latency {args.latency * 1e3:.0f} ms (ceiling {CONCURRENCY / args.latency:.0f} req/s)")
    for name, values in rates.items():
        med = statistics.median(values)
        spread = f"{min(values):.0f}-{max(values):.0f}"
        ms = statistics.median(cpu[name])
        print(f"  {name:<16} {med:7.1f} items/s ({spread})  {med / base:5.2f}x raw AsyncOpenAI   "
              f"client CPU {ms * 1e3:.2f} ms/item ({ms / base_cpu:.2f}x)")
    print("target: schemagen >= 0.9x raw AsyncOpenAI")


# ---------------------------------------------------------------- memory


def rss_child(n: int, base_url: str) -> None:
    """In a fresh process: stream n records from a JSONL file to a checkpoint; print peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "in.jsonl"
        with inputs.open("w") as handle:
            for i in range(n):
                handle.write(json.dumps({"id": f"doc-{i}", "text": text(i)}) + "\n")

        async def main() -> int:
            client = schemagen.Client(base_url=base_url, api_key="bench", model="m")
            run = aextract_many(Invoice, str(inputs), client=client, concurrency=CONCURRENCY,
                                checkpoint=str(Path(tmp) / "out.jsonl"))
            done = 0
            async for _ in run:
                done += 1
            return done

        import_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        # Importing briefly peaks above what a batch needs; reset the high-water mark so the
        # figure is the run's own peak (Linux: writing 5 to clear_refs resets VmHWM).
        try:
            Path("/proc/self/clear_refs").write_text("5")
            reset = True
        except OSError:
            reset = False
        done = asyncio.run(main())
    peak = _vm_hwm_mib() if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"items": n, "done": done, "peak_rss_mib": peak, "import_peak_mib": import_peak,
                      "run_only": reset}))


def _vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def memory(sizes: list[int], base_url: str) -> None:
    peaks = {}
    for n in sizes:
        out = subprocess.run([sys.executable, __file__, "--rss-child", str(n), "--base-url", base_url],
                             capture_output=True, text=True, check=True, cwd=ROOT)
        data = json.loads(out.stdout.strip().splitlines()[-1])
        assert data["done"] == n, data
        peaks[n] = data["peak_rss_mib"]
        what = "during the run" if data["run_only"] else "process peak"
        print(f"  peak RSS {what}, {n:>6} items streamed JSONL -> checkpoint: {peaks[n]:7.1f} MiB "
              f"(import-time peak {data['import_peak_mib']:.1f} MiB)")
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        print(f"  ratio {large} / {small}: {peaks[large] / peaks[small]:.3f}x (target <= 1.2x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rss", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.base_url)
        return
    proc, base_url = start_server(args.latency)
    try:
        throughput(args, base_url)
        if args.rss:
            memory(args.rss, base_url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
