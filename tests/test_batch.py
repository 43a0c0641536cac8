"""Batch extraction: inputs, checkpoint/resume, rate limits, faults, Batch API, budget, CLI.

Fault and load behaviour runs against the scripted loopback server (tests/fault_server.py);
end to end runs against the real llama.cpp server too.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

import schemagen
from schemagen.batch.checkpoint import Checkpoint
from schemagen.batch.ratelimit import Pacer, RateLimiter
from schemagen.batch.records import Record, count_records, iter_records
from schemagen.batch.run import BatchResult, aextract_many, extract_many
from schemagen.errors import BudgetExceeded, ConfigurationError, RequestRejectedError
from schemagen.testing import (
    FaultServer,
    malformed_arguments,
    rate_limit,
    reset,
    status,
    tool_call,
)
from tests.llama_server import LlamaServer

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILE = '''
from pydantic import BaseModel


class Invoice(BaseModel):
    number: str
    total: float
'''


class Invoice(BaseModel):
    number: str
    total: float


def texts(n: int) -> list[str]:
    return [f"Invoice INV-{i} total {i}.50 USD" for i in range(n)]


def conn(srv: FaultServer, **kw: Any) -> dict[str, Any]:
    return {"base_url": srv.base_url, "api_key": "test", "model": "m", **kw}


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_each_once(path: Path, ids: list[str]) -> list[dict[str, Any]]:
    """Every line is valid JSON, and every id appears exactly once, as a result or an error record."""
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    records = lines(path)
    counts = Counter(r["id"] for r in records)
    assert sorted(counts) == sorted(ids), set(counts) ^ set(ids)
    assert all(n == 1 for n in counts.values()), [k for k, n in counts.items() if n > 1]
    for r in records:
        assert ("value" in r) == r["ok"] and ("error" in r) != r["ok"]
        assert {"attempts", "usage"} <= set(r)
    return records


def default_sigint() -> None:
    """In a child: SIGINT back to its default. A parent that ignores it (nohup, a background
    runner) passes the ignore on, and the CLI rightly keeps ignoring it then."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def env_with_src(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "OPENAI_API_KEY": "test", **extra}


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def schema_file(tmp_path: Path) -> str:
    path = tmp_path / "invoice_schema.py"
    path.write_text(SCHEMA_FILE)
    return f"{path}:Invoice"


# ---------------------------------------------------------------- inputs


def test_records_from_python_objects() -> None:
    records = list(iter_records(["a", ("k", "b"), {"id": 7, "text": "c"}, {"text": "d"}, {"id": "x"}, 5]))
    assert [(r.id, r.text) for r in records] == [
        ("0", "a"), ("k", "b"), ("7", "c"), ("3", "d"), ("x", None), ("5", None)]
    assert "missing text field" in (records[4].error or "")
    assert "unsupported record type int" in (records[5].error or "")


def test_jsonl_bad_lines_become_error_records_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"id": "a", "text": "one"}\n\nnot json\n{"body": "x"}\n"plain"\n'
                     b'{"id": "a", "text": "dup"}\n{"text": 3}\n\xff\xfe\n[1]\n')
    records = list(iter_records(path))
    assert [(r.id, r.line, r.text is not None) for r in records] == [
        ("a", 1, True), ("3", 3, False), ("4", 4, False), ("5", 5, True), ("a#6", 6, False), ("7", 7, False),
        ("8", 8, False), ("9", 9, False)]
    assert "not valid JSON" in (records[1].error or "")
    assert "missing text field 'text'" in (records[2].error or "")
    assert records[4].error_type == "DuplicateIdError"
    assert "not a string" in (records[5].error or "")
    assert count_records(path) == 8


def test_jsonl_custom_fields_and_csv_and_folder(tmp_path: Path) -> None:
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text('{"key": "k1", "body": "hello"}\n')
    assert list(iter_records(jsonl, text_field="body", id_field="key")) == [Record("k1", "hello", 1)]

    csv_path = tmp_path / "in.csv"
    csv_path.write_bytes(b'id,text\nr1,"multi\nline"\n,second\nr3,\xff\n')
    records = list(iter_records(csv_path))
    assert [(r.id, r.text, r.line) for r in records] == [
        ("r1", "multi\nline", 2), ("4", "second", 4), ("5", None, 5)]
    assert count_records(csv_path) == 3
    with pytest.raises(ConfigurationError, match="no 'body' column"):
        list(iter_records(csv_path, text_field="body"))

    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("bee")
    (folder / "a.md").write_text("ay")
    (folder / "sub" / "c.txt").write_text("sea")
    (folder / "skip.pdf").write_bytes(b"%PDF")
    (folder / "bad.txt").write_bytes(b"\xff\xfe")
    records = list(iter_records(folder))
    assert [(r.id, r.text) for r in records] == [
        ("a.md", "ay"), ("b.txt", "bee"), ("bad.txt", None), ("sub/c.txt", "sea")]
    assert count_records(folder) == 4
    (tmp_path / "x.xml").write_text("<x/>")
    with pytest.raises(ConfigurationError, match="unknown input format"):
        iter_records(tmp_path / "x.xml")


# ---------------------------------------------------------------- checkpoint


def test_checkpoint_truncates_a_torn_last_line_and_refuses_a_bad_middle_one(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    good = b'{"id":"a","ok":true,"value":1}\n{"id":"b","ok":false,"error":{}}\n'
    path.write_bytes(good + b'{"id":"c","ok":tr')
    cp = Checkpoint(path)
    assert cp.open(resume=True) == {"a", "b"}
    assert cp.truncated_bytes == len(b'{"id":"c","ok":tr') and cp.prior_errors == 1
    cp.write({"id": "c", "ok": True, "value": 2})
    cp.close()
    assert [r["id"] for r in lines(path)] == ["a", "b", "c"]

    path.write_bytes(b'{"id":"a","ok":true}\ngarbage\n{"id":"b","ok":true}\n')
    with pytest.raises(ConfigurationError, match="line 2 is not valid JSON"):
        Checkpoint(path).open(resume=True)
    assert path.read_bytes().count(b"\n") == 3  # nothing deleted

    path.write_bytes(good)
    with pytest.raises(ConfigurationError, match="already holds results"):
        Checkpoint(path).open()
    cp = Checkpoint(path)
    assert cp.open(resume=True, retry_errors=True) == {"a"} and cp.dropped_errors == 1
    with pytest.raises(ConfigurationError, match="another process"):
        Checkpoint(path).open(resume=True)
    cp.close()
    assert [r["id"] for r in lines(path)] == ["a"]
    cp = Checkpoint(path)
    assert cp.open(overwrite=True) == set()
    cp.close()
    assert path.read_bytes() == b""


# ---------------------------------------------------------------- rate limiter


def test_pacer_spaces_requests_evenly_and_a_429_voids_bookings() -> None:
    now = [100.0]
    pacer = Pacer(600, clock=lambda: now[0])  # one per 0.1 s, no burst
    assert [round(pacer.reserve() - 100, 3) for _ in range(4)] == [0.0, 0.1, 0.2, 0.3]
    now[0] = 100.15  # bookings at 100.2 and 100.3 haven't started yet
    pacer.reset(at=101.0)
    assert pacer.reserve() == 101.0

    tokens = Pacer(6000, clock=lambda: now[0])  # 100 tokens/s
    assert tokens.reserve(50) == now[0]
    assert tokens.reserve(10) == pytest.approx(now[0] + 0.5)


async def test_limiter_halves_in_flight_cap_on_429_and_recovers() -> None:
    limiter = RateLimiter(concurrency=8)
    await limiter.acquire()
    assert limiter.throttle(0.0) == 0.0 and limiter.cap == 4
    limiter.throttle(0.0)  # a second 429 of the same burst: cool-down already over (0 s), new episode
    assert limiter.cap == 2
    limiter.release(ok=True)
    assert 2 < limiter.cap < 3
    assert limiter.in_flight == 0


# ---------------------------------------------------------------- online mode, fault server


def test_extract_many_in_input_order_twice_in_a_row(server: FaultServer) -> None:
    first = extract_many(Invoice, texts(40), concurrency=8, **conn(server))
    second = extract_many(Invoice, texts(5), concurrency=8, **conn(server))  # a new event loop: still works
    assert [r.id for r in first] == [str(i) for i in range(40)]
    assert all(r.ok and isinstance(r.value, Invoice) and r.attempts == 1 for r in first)
    assert first.summary.succeeded == 40 and first.summary.usage.requests == 40
    assert first.summary.exit_code == 0 and len(second) == 5


async def test_extract_many_works_inside_a_running_loop(server: FaultServer) -> None:
    results = extract_many(Invoice, texts(3), **conn(server))  # e.g. from a notebook
    assert [r.ok for r in results] == [True, True, True]


def test_faults_become_retries_or_error_records_never_lost_items(server: FaultServer, tmp_path: Path) -> None:
    def faults(index: int) -> Any:
        kind = index % 10
        if kind == 1:
            return rate_limit(retry_after=0.1)
        if kind == 3:
            return status(500)
        if kind == 5:
            return reset()
        if kind == 7:
            return malformed_arguments('{"number": "X", ')
        return None

    server.faults = faults
    server.latency = 0.005
    out = tmp_path / "out.jsonl"
    ids = [str(i) for i in range(120)]
    results = extract_many(Invoice, texts(120), concurrency=16, checkpoint=out, **conn(server, retries=1))
    records = assert_each_once(out, ids)
    assert len(results) == 120 and sum(r.ok for r in results) == sum(r["ok"] for r in records)
    assert results.summary.throttled > 0
    assert any(r["attempts"] > 1 for r in records)  # malformed arguments were reasked
    assert results.summary.succeeded > 100


def test_rpm_is_respected_at_the_server(server: FaultServer) -> None:
    results = extract_many(Invoice, texts(25), concurrency=16, rpm=600, **conn(server))  # 10/s
    assert all(r.ok for r in results)
    times = sorted(r.time for r in server.model_requests)
    assert len(times) == 25
    # No burst: in any window of W seconds, at most 10*W + 1 requests, plus two for delivery
    # jitter (the first request also opens the connection; a loaded CI box stalls the loop).
    for i, start in enumerate(times):
        for j in range(i, len(times)):
            window = times[j] - start
            assert j - i + 1 <= 10 * window + 3, (i, j, window)
    assert times[-1] - times[0] >= 2.3  # 25 requests at 10/s span at least 2.4 s


def test_tpm_paces_by_estimated_tokens(server: FaultServer) -> None:
    # Each request is estimated at ~120 prompt tokens (tiktoken) + max_tokens 50: at 12,000 TPM
    # (200 tokens/s) that is one request every ~0.8 s, though all 4 workers are free at once.
    results = extract_many(Invoice, texts(4), concurrency=4, tpm=12_000, max_tokens=50, **conn(server))
    assert all(r.ok for r in results)
    times = sorted(r.time for r in server.model_requests)
    assert times[-1] - times[0] >= 3 * 150 / 200


def test_429_cool_down_is_shared_by_all_workers(server: FaultServer) -> None:
    server.latency = 0.01
    server.faults = lambda i: rate_limit(retry_after=0.6) if i == 10 else None
    results = extract_many(Invoice, texts(60), concurrency=8, **conn(server))
    assert all(r.ok for r in results) and results.summary.throttled == 1
    throttled = next(r for r in server.model_requests if r.status == 429)
    assert throttled.finished is not None
    quiet = [r for r in server.model_requests
             if throttled.finished + 0.1 < r.time < throttled.finished + 0.5]
    assert quiet == []  # nobody sent anything during the cool-down


def test_concurrency_bounds_requests_in_flight_and_input_is_pulled_lazily(server: FaultServer) -> None:
    server.latency = 0.02
    pulled = 0

    def source() -> Iterator[str]:
        nonlocal pulled
        for text in texts(200):
            pulled += 1
            yield text

    async def main() -> int:
        run = aextract_many(Invoice, source(), concurrency=5, **conn(server))
        seen = 0
        async for _ in run:
            seen += 1
            if seen == 10:
                assert pulled <= 10 + 5 + 5 + 1  # done + in flight + queued results, not all 200
        return seen

    assert asyncio.run(main()) == 200
    events = sorted([(r.time, 1) for r in server.model_requests] +
                    [(r.finished or 0.0, -1) for r in server.model_requests])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    assert peak <= 5


def test_a_rejected_key_stops_the_batch_instead_of_writing_n_errors(
    server: FaultServer, tmp_path: Path
) -> None:
    server.default = status(401)
    out = tmp_path / "out.jsonl"
    with pytest.raises(RequestRejectedError, match="401"):
        extract_many(Invoice, texts(50), concurrency=4, checkpoint=out, **conn(server))
    assert out.read_text() == ""  # nothing written: --resume will do every item


def test_an_unreachable_server_stops_the_batch_and_retry_errors_redoes_them(
    server: FaultServer, tmp_path: Path
) -> None:
    server.default = reset()
    out = tmp_path / "out.jsonl"
    first = extract_many(Invoice, texts(100), concurrency=4, checkpoint=out, max_retries=0,
                         **conn(server))
    assert first.summary.stopped == "unreachable" and first.summary.exit_code == 1
    assert 20 <= len(first) <= 30 and not any(r.ok for r in first)
    assert {r.error.type for r in first if r.error} == {"APIConnectionError"}
    server.default = tool_call({"number": "A-1", "total": 1.5})
    second = extract_many(Invoice, texts(100), concurrency=4, checkpoint=out, resume=True, retry_errors=True,
                          **conn(server))
    assert second.summary.dropped_errors == len(first) and all(r.ok for r in second)
    assert_each_once(out, [str(i) for i in range(100)])


def test_schema_errors_fail_before_any_request(server: FaultServer) -> None:
    class Opaque:
        pass

    class Bad(BaseModel):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        thing: Opaque

    with pytest.raises(schemagen.SchemaError):
        extract_many(Bad, texts(3), **conn(server))
    assert server.model_requests == []


# ---------------------------------------------------------------- budget


def test_budget_stops_cleanly_keeps_finished_items_and_resumes(server: FaultServer, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    ids = [str(i) for i in range(30)]
    budget = schemagen.Budget(max_tokens=2_000)
    first = extract_many(Invoice, texts(30), concurrency=4, checkpoint=out, budget=budget, max_tokens=40,
                         **conn(server))
    assert first.summary.stopped == "budget" and first.summary.exit_code == 3
    assert 0 < len(first) < 30 and all(r.ok for r in first)  # no error records for items not attempted
    assert budget.spent.total_tokens <= 2_000
    assert sorted(r["id"] for r in lines(out)) == sorted(r.id for r in first)
    assert first.summary.remaining == 30 - len(first)

    second = extract_many(Invoice, texts(30), concurrency=4, checkpoint=out, resume=True, budget=100_000,
                          max_tokens=40, **conn(server))
    assert second.summary.stopped is None and second.summary.skipped == len(first)
    assert_each_once(out, ids)


async def test_budget_exceeded_mid_item_is_not_written(server: FaultServer, tmp_path: Path) -> None:
    # Every first answer is invalid, so each item needs a reask the budget may refuse.
    server.faults = lambda i: malformed_arguments('{"nope": 1}') if i % 2 == 0 else None
    out = tmp_path / "out.jsonl"
    run = aextract_many(Invoice, texts(10), concurrency=1, checkpoint=out, budget=700, max_tokens=40,
                        **conn(server))
    results = [r async for r in run]
    assert run.summary.stopped == "budget"
    assert all(r.ok for r in results)
    assert [r["id"] for r in lines(out)] == [r.id for r in results]
    with pytest.raises(BudgetExceeded):
        schemagen.Budget(max_tokens=1).check(schemagen.Usage(prompt_tokens=2))


# ---------------------------------------------------------------- Batch API mode


def test_batch_api_mode_parses_reasks_online_and_reports(server: FaultServer, tmp_path: Path) -> None:
    server.batch_output_order = "reversed"
    # The batch answers, in input order: bad arguments (reasked online), a wrong type (reasked),
    # a 500 (retried online), a 400 (reported); the rest are valid.
    server.enqueue(malformed_arguments('{"number": "A"'), tool_call({"number": 5, "total": "x"}),
                   status(500), status(400))
    out = tmp_path / "out.jsonl"
    records = [*texts(12), {"id": "no-text"}]
    results = extract_many(Invoice, records, mode="batch_api", poll_interval=0.01, checkpoint=out,
                           concurrency=4, **conn(server))
    got = {r.id: r for r in results}
    assert got["0"].ok and got["0"].attempts == 2
    assert got["1"].ok and got["1"].attempts == 2
    assert got["2"].ok
    assert not got["3"].ok and got["3"].error is not None and got["3"].error.type == "RequestRejectedError"
    assert got["no-text"].error is not None and got["no-text"].error.type == "InputError"
    assert_each_once(out, [*map(str, range(12)), "no-text"])
    (batch,) = server.batches.values()
    assert batch["status"] == "completed" and results.summary.batch_ids == [batch["id"]]
    uploaded = next(iter(server.files.values())).decode().splitlines()
    first = json.loads(uploaded[0])
    assert first["url"] == "/v1/chat/completions"
    assert first["body"]["tool_choice"]["function"]["name"] == "Invoice"
    assert not (tmp_path / "out.jsonl.batch").exists()  # cleaned up once every item is written


def test_batch_api_expired_job_falls_back_online(server: FaultServer, tmp_path: Path) -> None:
    server.batch_final = "expired"
    results = extract_many(Invoice, texts(6), mode="batch_api", poll_interval=0.01,
                           checkpoint=tmp_path / "o.jsonl", **conn(server))
    assert all(r.ok for r in results)
    online = [r for r in server.model_requests if r.batch_id is None]
    assert len(online) == 6


def test_batch_api_resume_reattaches_to_the_submitted_job(server: FaultServer, tmp_path: Path) -> None:
    server.batch_polls = 10_000  # never finishes while the first run polls
    out = tmp_path / "out.jsonl"

    async def interrupted() -> None:
        run = aextract_many(Invoice, texts(8), mode="batch_api", poll_interval=0.01, checkpoint=out,
                            **conn(server))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(_drain(run), timeout=1.0)

    asyncio.run(interrupted())
    state = json.loads((tmp_path / "out.jsonl.batch" / "state.json").read_text())
    assert state["chunks"][0]["batch_id"]
    with pytest.raises(ConfigurationError, match="records a batch job"):
        extract_many(Invoice, texts(8), mode="batch_api", checkpoint=tmp_path / "out.jsonl", **conn(server))
    server.batch_polls = 1
    results = extract_many(Invoice, texts(8), mode="batch_api", poll_interval=0.01, checkpoint=out,
                           resume=True, **conn(server))
    assert len(server.batches) == 1  # not submitted (nor paid for) twice
    assert all(r.ok for r in results) and [r.id for r in results] == [str(i) for i in range(8)]
    assert results.summary.skipped == 0
    assert_each_once(out, [str(i) for i in range(8)])


def test_batch_api_budget_submits_what_fits_and_resume_submits_the_rest(
    server: FaultServer, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    kw: dict[str, Any] = {"mode": "batch_api", "poll_interval": 0.01, "checkpoint": out, "max_tokens": 40}
    first = extract_many(Invoice, texts(10), budget=1_000, **kw, **conn(server))  # ~190 tokens per item
    assert first.summary.stopped == "budget" and 0 < len(first) < 10 and all(r.ok for r in first)
    second = extract_many(Invoice, texts(10), budget=100_000, resume=True, **kw, **conn(server))
    assert second.summary.skipped == len(first) and len(server.batches) == 2
    assert_each_once(out, [str(i) for i in range(10)])


async def _drain(run: Any) -> None:
    async for _ in run:
        pass


# ---------------------------------------------------------------- CLI


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "schemagen", "batch", *args], capture_output=True, text=True,
                          env=env_with_src(), timeout=timeout, cwd=ROOT)


def test_cli_exit_codes_and_summary(server: FaultServer, tmp_path: Path, schema_file: str) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"id": f"r{i}", "text": t}) + "\n" for i, t in enumerate(texts(6))))
    out = tmp_path / "out.jsonl"
    base = [str(inputs), "--schema", schema_file, "--out", str(out), "--base-url", server.base_url,
            "--model", "m", "--max-tokens", "40"]
    ok = run_cli(*base)
    assert ok.returncode == 0, ok.stderr
    assert "6 results, 0 errors" in ok.stderr and "tokens:" in ok.stderr
    again = run_cli(*base)
    assert again.returncode == 2 and "--resume" in again.stderr
    with inputs.open("a") as handle:
        handle.write("{broken\n")
    resumed = run_cli(*base, "--resume", "--quiet")
    assert resumed.returncode == 1 and resumed.stderr == ""
    records = assert_each_once(out, [*(f"r{i}" for i in range(6)), "7"])
    assert records[-1]["line"] == 7 and records[-1]["error"]["type"] == "InputError"
    budget = run_cli(*base, "--overwrite", "--budget", "300")
    assert budget.returncode == 3 and "stopped (budget)" in budget.stderr
    assert run_cli(*base, "--schema", schema_file + "x").returncode == 2


def test_cli_ctrl_c_exits_130_and_keeps_finished_items(tmp_path: Path, schema_file: str) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps(t) + "\n" for t in texts(400)))
    out = tmp_path / "out.jsonl"
    # 400 items, 2 at a time, 0.1 s each: at least 20 s, so the interrupt lands mid-run
    # even when a loaded machine is slow to notice the first 20 lines.
    with FaultServer(latency=0.1, record=False) as srv:
        proc = subprocess.Popen(
            [sys.executable, "-m", "schemagen", "batch", str(inputs), "--schema", schema_file,
             "--out", str(out), "--base-url", srv.base_url, "--model", "m", "--concurrency", "2"],
            env=env_with_src(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            preexec_fn=default_sigint)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < 20):
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "--resume" in err
    records = lines(out)  # every line whole
    assert 20 <= len(records) < 400 and len({r["id"] for r in records}) == len(records)


def test_cli_sigkill_mid_run_then_resume_loses_and_duplicates_nothing(
    tmp_path: Path, schema_file: str
) -> None:
    n = 1000
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"id": f"doc-{i}", "text": f"Invoice {i}"}) + "\n"
                              for i in range(n)))
    out = tmp_path / "out.jsonl"
    faults = lambda i: status(500) if i % 37 == 5 else None  # noqa: E731
    with FaultServer(latency=0.02, faults=faults, record=False) as srv:
        args = [sys.executable, "-m", "schemagen", "batch", str(inputs), "--schema", schema_file,
                "--out", str(out), "--base-url", srv.base_url, "--model", "m", "--concurrency", "32"]
        proc = subprocess.Popen(args, env=env_with_src(), cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < 150):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()
        done_before = out.read_bytes().count(b"\n")
        assert 150 <= done_before < n
        # A crash can also cut a line short; resume must drop it, not keep or duplicate it.
        with out.open("ab") as handle:
            handle.write(b'{"id":"doc-999","ok":true,"val')
        resumed = subprocess.run([*args, "--resume"], env=env_with_src(), cwd=ROOT, capture_output=True,
                                 text=True, timeout=120)
    assert resumed.returncode in (0, 1), resumed.stderr
    assert "removed a torn last line" in resumed.stderr
    records = assert_each_once(out, [f"doc-{i}" for i in range(n)])
    assert sum(r["ok"] for r in records) >= n - 5


# ---------------------------------------------------------------- the real llama.cpp server


@pytest.mark.llama
def test_small_batch_end_to_end_against_llama_cpp(llama_server: LlamaServer, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    records = [{"id": f"inv-{i}", "text": f"Invoice INV-{i} from ACME. Total {10 * i}.00 USD."}
               for i in range(4)]
    results = extract_many(Invoice, records, concurrency=2, checkpoint=out, base_url=llama_server.base_url,
                           api_key="x", model="smollm2", max_tokens=200, temperature=0.0, retries=1)
    assert len(results) == 4
    assert all(isinstance(r, BatchResult) and (r.ok or r.error is not None) for r in results)
    for r in results:
        if r.ok:
            assert isinstance(r.value, Invoice)
        assert r.usage.requests >= 1 or not r.ok
    records_out = assert_each_once(out, [f"inv-{i}" for i in range(4)])
    assert sum(r["usage"]["total_tokens"] for r in records_out) > 0


@pytest.mark.llama
def test_cli_batch_against_llama_cpp(llama_server: LlamaServer, tmp_path: Path, schema_file: str) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(3):
        (folder / f"invoice-{i}.txt").write_text(f"Invoice INV-{i} from ACME. Total {i}5.00 USD.")
    out = tmp_path / "out.jsonl"
    proc = run_cli(str(folder), "--schema", schema_file, "--out", str(out),
                   "--base-url", llama_server.base_url, "--model", "smollm2", "--max-tokens", "200",
                   "--retries", "1", "--concurrency", "2",
                   timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    assert_each_once(out, [f"invoice-{i}.txt" for i in range(3)])
    assert "results" in proc.stderr and "tokens:" in proc.stderr


def test_batch_transport_round_trip(server: FaultServer, tmp_path: Path) -> None:
    """The backend's batch transport alone: upload, create, poll, download, list; typed errors."""
    from schemagen.backends import create_backend
    from schemagen.backends.batch_transport import BatchTransport
    from schemagen.errors import TransportError

    backend = create_backend("openai", model="m", base_url=server.base_url, api_key="test")
    transport = backend.batch_transport()  # type: ignore[attr-defined]
    assert isinstance(transport, BatchTransport)
    body = {"model": "m", "messages": [{"role": "user", "content": "Ada"}], "tools": [
        {"type": "function", "function": {"name": "Person", "parameters": {
            "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}}]}
    requests = tmp_path / "requests.jsonl"
    lines = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
             for i in range(3)]
    requests.write_text("".join(json.dumps(line) + "\n" for line in lines))

    async def run() -> list[str]:
        file_id = await transport.upload(requests)
        job = await transport.create(file_id, "/v1/chat/completions", {"k": "v"})
        while job.status not in ("completed", "failed", "expired", "cancelled"):
            job = await transport.retrieve(job.id)
        assert (job.status, job.done, job.error_file_id) == ("completed", 3, None)
        assert job.output_file_id is not None
        await transport.download(job.output_file_id, tmp_path / "out.jsonl")
        assert [j.id for j in await transport.list()] == [job.id]
        with pytest.raises(TransportError):
            await transport.retrieve("batch_missing")
        return [json.loads(line)["custom_id"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]

    assert asyncio.run(run()) == ["r0", "r1", "r2"]
