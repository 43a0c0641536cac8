"""Throughput of the scripted loopback server (:mod:`schemagen.testing`), which the
benchmarks use for faults and load. Run it to measure the server itself::

    python benchmarks/_loopback.py                      # in-process, 64 clients, 0 and 50 ms
    python benchmarks/_loopback.py --subprocess         # server in its own process

The in-process numbers share one GIL between the clients and the server, as a benchmark
that starts ``FaultServer()`` itself does; ``--subprocess`` puts the server in its own process.

Measured on a shared 2-core box: the openai client is the bottleneck (about 1.7 ms of CPU
per request in openai + httpx2), giving 340-570 req/s at 64 workers with 0 or 50 ms of
latency. With a bare asyncio HTTP client the server itself does 4,400-9,900 req/s at 0 ms
and about 1,100 req/s at 50 ms (the ceiling for 64 x 50 ms is 1,280).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from schemagen.testing import FaultServer

ROOT = Path(__file__).resolve().parent.parent

TOOLS = [{"type": "function", "function": {"name": "Person", "parameters": {
    "type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"]}}}]


async def throughput(base_url: str, *, concurrency: int = 64, total: int = 3000) -> float:
    """Requests per second: ``concurrency`` keep-alive workers on one AsyncOpenAI client."""
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0, timeout=30)
    per_worker = total // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "Ada is 36."}], tools=TOOLS,
                tool_choice={"type": "function", "function": {"name": "Person"}})

    await asyncio.gather(*(worker() for _ in range(concurrency)))  # warm-up: opens the connections
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    await client.close()
    return per_worker * concurrency / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--requests", type=int, default=3200)
    parser.add_argument("--latency", type=float, nargs="*", default=[0.0, 0.05])
    parser.add_argument("--subprocess", action="store_true", help="run the server in its own process")
    args = parser.parse_args()
    for latency in args.latency:
        if args.subprocess:
            port = 18000 + os.getpid() % 1000
            proc = subprocess.Popen(
                [sys.executable, "-m", "schemagen.testing", "--port", str(port), "--latency", str(latency)],
                cwd=ROOT, stdout=subprocess.PIPE, text=True)
            try:
                base_url = proc.stdout.readline().strip()  # printed once it listens
                rate = asyncio.run(throughput(base_url, concurrency=args.concurrency, total=args.requests))
            finally:
                proc.terminate()
                proc.wait()
        else:
            with FaultServer(latency=latency, record=False) as srv:
                rate = asyncio.run(throughput(srv.base_url, concurrency=args.concurrency,
                                              total=args.requests))
        where = "subprocess" if args.subprocess else "in-process"
        print(f"{where} latency={latency * 1000:.0f}ms concurrency={args.concurrency}: {rate:,.0f} req/s")


if __name__ == "__main__":
    main()
