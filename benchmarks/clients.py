"""Costs of the client-fidelity and secret-hygiene work, measured side by side in one run.

1. The batch's tool-token cache: ``BatchRun.estimate`` for 500 requests whose tool list is
   rebuilt per request (as the engine does), with the cache (keyed by content) vs with it
   cleared before every request (what keying on ``id()`` amounted to).
2. Redaction: ``redact_text`` on a 2 KB server error with 0 vs 50 registered secrets.

    python benchmarks/clients.py [--requests 500]

Targets: the cached estimate is faster (ratio < 1); 50 registered secrets cost < 5x none.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from pydantic import BaseModel

import schemagen
from schemagen.batch.run import BatchRun
from schemagen.redact import _known_secrets, _ordered, redact_text, register_secret


class LineItem(BaseModel):
    description: str
    quantity: int
    unit_price: float


class Invoice(BaseModel):
    number: str
    customer: str
    items: list[LineItem]
    total: float


def _median(fn: Callable[[], None], rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_tool_cache(n: int) -> tuple[float, float]:
    client = schemagen.Client(base_url="http://127.0.0.1:9/v1", api_key="unused-key", model="gpt-4o-mini")
    texts = [f"Invoice INV-{i} for ACME, total {i}.50" for i in range(n)]
    requests = [client.start(Invoice, text).next_request() for text in texts]
    run = BatchRun(Invoice, [], client=client, overrides={}, tpm=1e9)

    def cached() -> None:
        run._tool_tokens.clear()
        for request in requests:
            run.estimate(request)

    def uncached() -> None:
        for request in requests:
            run._tool_tokens.clear()
            run.estimate(request)

    return _median(cached), _median(uncached)


def bench_redact() -> tuple[float, float]:
    text = ("Error code: 400 - {'error': {'message': 'We received Authorization: Bearer [hidden] and "
            "these headers: x-team: blue, accept: application/json. ") * 20
    saved = (set(_known_secrets), list(_ordered))
    _known_secrets.clear()
    _ordered.clear()
    none = _median(lambda: [redact_text(text) for _ in range(200)] and None)
    for i in range(50):
        register_secret(f"sk-bench-{i:04d}-abcdefghijklmnop")
    fifty = _median(lambda: [redact_text(text) for _ in range(200)] and None)
    _known_secrets.clear()
    _known_secrets.update(saved[0])
    _ordered[:] = saved[1]
    return none, fifty


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    cached, uncached = bench_tool_cache(args.requests)
    print(f"tool-token estimate, {args.requests} requests: cached {cached * 1e3:.1f} ms, "
          f"uncached {uncached * 1e3:.1f} ms, ratio {cached / uncached:.2f}x")
    none, fifty = bench_redact()
    print(f"redact_text x200 on a 2 KB error: 0 secrets {none * 1e3:.1f} ms, 50 secrets "
          f"{fifty * 1e3:.1f} ms, ratio {fifty / none:.2f}x")


if __name__ == "__main__":
    main()
