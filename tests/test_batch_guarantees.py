"""Batch guarantees that hold: atomic rewrites, no double submit, budgets charged once.

Crashes are real: a child process is SIGKILLed at a chosen point and the parent checks
what is left on disk and on the scripted Batch API server.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import schemagen
from schemagen import Budget
from schemagen.backends.local import LocalBackend
from schemagen.backends.openai_compat import OpenAIBackend
from schemagen.batch import openai_batch as ob
from schemagen.batch.checkpoint import Checkpoint
from schemagen.batch.run import aextract_many, extract_many
from tests.fault_server import FaultServer


class Invoice(BaseModel):
    number: str
    total: float


def texts(n: int) -> list[str]:
    return [f"Invoice INV-{i} total {i}.50 USD" for i in range(n)]


def conn(srv: FaultServer, **kw: Any) -> dict[str, Any]:
    return {"base_url": srv.base_url, "api_key": "test-key-123456", "model": "m", **kw}


def in_child(fn: Callable[[], None]) -> int:
    """Run ``fn`` in a forked child (already imported: fast); its exit status, -9 when killed."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            fn()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def kill_at(step: int) -> None:
    """SIGKILL this process at its ``step``-th write, fsync, rename or truncate."""
    calls = [0]

    def killing(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*a: Any, **k: Any) -> Any:
            calls[0] += 1
            if calls[0] == step:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*a, **k)
        return wrapped

    for name in ("write", "fsync", "replace", "ftruncate", "rename"):
        setattr(os, name, killing(getattr(os, name)))


def test_retry_errors_rewrite_survives_sigkill_at_every_step(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    good = [{"id": f"g{i}", "ok": True, "value": {"n": i}, "attempts": 1, "usage": {}} for i in range(300)]
    bad = [{"id": f"e{i}", "ok": False, "error": {"type": "X", "message": "m"}, "attempts": 1, "usage": {}}
           for i in range(100)]
    original = "".join(json.dumps(r) + "\n" for pair in zip(good[:100], bad, strict=True) for r in pair)
    original += "".join(json.dumps(r) + "\n" for r in good[100:])
    killed = 0

    def rewrite(step: int) -> None:
        kill_at(step)
        Checkpoint(out).open(resume=True, retry_errors=True)

    for step in range(1, 12):
        out.write_text(original)
        code = in_child(lambda step=step: rewrite(step))  # type: ignore[misc]
        if code == 0:
            break
        assert code == -signal.SIGKILL
        killed += 1
        text = out.read_text()  # the old file or the new one, never a mix
        assert text in (original, "".join(json.dumps(r) + "\n" for r in good[:100]) + "".join(
            json.dumps(r) + "\n" for r in good[100:])), f"torn at step {step}"
    assert killed >= 3  # killed while writing, syncing and renaming
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == [r["id"] for r in good]


def test_batch_api_resume_reattaches_after_a_crash_between_create_and_save(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with FaultServer() as server:
        server.batch_polls = 1
        def create_then_die() -> None:
            save = ob._Job.save

            def dying_save(job: Any) -> None:
                if any(c.get("batch_id") for c in job.chunks):  # created: die before saving its id
                    os.kill(os.getpid(), signal.SIGKILL)
                save(job)

            ob._Job.save = dying_save  # type: ignore[method-assign]
            extract_many(Invoice, texts(6), mode="batch_api", poll_interval=0.01, checkpoint=out,
                         **conn(server))

        assert in_child(create_then_die) == -signal.SIGKILL
        [created] = server.batches.values()
        assert created["metadata"]["schemagen_run"]  # the unique id the resume looks for
        results = extract_many(Invoice, texts(6), mode="batch_api", poll_interval=0.01, checkpoint=out,
                               resume=True, **conn(server))
        assert len(server.batches) == 1  # re-attached: not submitted (nor paid for) twice
        assert all(r.ok for r in results) and len(results) == 6
        assert results.summary.batch_ids == [created["id"]]


def test_a_cost_budget_trips_and_the_summary_prints_cost() -> None:
    schemagen.register_price("priced-model", input=1_000.0, output=1_000.0)  # $ per million tokens
    with FaultServer() as server:
        budget = Budget(max_cost=0.5)
        results = extract_many(Invoice, texts(40), concurrency=2, budget=budget,
                               **conn(server, model="priced-model"))
        summary = results.summary
        assert summary.stopped == "budget" and len(results) < 40
        assert summary.usage.cost is not None and budget.spent.cost is not None
        assert budget.spent.cost == pytest.approx(summary.usage.cost)
        assert "cost $" in summary.describe()


def test_the_same_budget_on_batch_and_client_is_charged_once() -> None:
    with FaultServer() as server:
        budget = Budget(max_tokens=10_000_000)
        sg = schemagen.Client(budget=budget, **conn(server))
        results = extract_many(Invoice, texts(10), client=sg, budget=budget, concurrency=4)
        assert all(r.ok for r in results)
        assert budget.spent.total_tokens == results.summary.usage.total_tokens > 0
        assert sg.settings.budget is budget  # the caller's Client is left as it was


def test_tool_token_count_is_cached_across_requests() -> None:
    with FaultServer() as server:
        import asyncio

        async def go() -> Any:
            run = aextract_many(Invoice, texts(20), tpm=10_000_000, concurrency=4, **conn(server))
            async for _ in run:
                pass
            return run

        run = asyncio.run(go())
        assert run.summary.succeeded == 20
        assert run.tool_cache_misses == 1  # the tool list is rebuilt per request, counted once


class OneAtATime(OpenAIBackend):
    max_concurrency = 1


def test_backends_that_serve_one_request_at_a_time_get_one_in_flight() -> None:
    assert LocalBackend.max_concurrency == 1 and OpenAIBackend.max_concurrency is None
    with FaultServer(latency=0.05) as server:
        backend = OneAtATime(model="m", base_url=server.base_url, api_key="test-key-123456")
        results = extract_many(Invoice, texts(6), backend=backend, concurrency=8)
        assert all(r.ok for r in results)
        spans = sorted((r.time, r.finished or 0.0) for r in server.model_requests)
        assert all(later[0] >= earlier[1] - 0.005 for earlier, later in itertools.pairwise(spans))
