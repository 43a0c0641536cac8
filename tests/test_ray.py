"""Ray Data integration: pure pieces first, then a real local Ray cluster (one per module).

The cluster runs against the real llama.cpp server for values, and the scripted
loopback server for what a real server can't do on cue (429s, refusals, 401s) and for
counting requests (rate limits, resume). Kept lean: one `ray.init(num_cpus=2)` for the file.
"""

from __future__ import annotations

import datetime as dt
import enum
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pytest
from pydantic import BaseModel

import schemagen
from schemagen.errors import ConfigurationError, MissingDependencyError
from schemagen.exchange import Usage
from schemagen.integrations import get_integration
from schemagen.integrations._arrow import OutputColumns
from schemagen.integrations._rows import LimitLedger, ResultsStore, Secret, row_key
from tests.fault_server import FaultServer, from_schema, refusal, respond, status
from tests.llama_server import LlamaServer

ray = pytest.importorskip("ray") if os.environ.get("SCHEMAGEN_REQUIRE_REAL") != "1" else __import__("ray")
from schemagen.integrations.ray import extract_dataset, read_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class Person(BaseModel):
    name: str
    age: int


class Color(enum.Enum):
    RED = "red"


class Line(BaseModel):
    sku: str
    qty: int


class Order(BaseModel):
    id: str
    total: float
    lines: list[Line]
    color: Color
    when: dt.date | None = None
    kind: Literal["a", "b"] = "a"
    extra: dict[str, int] = {}


# ---------------------------------------------------------------- pure: Arrow columns, ledger, keys, store


def test_output_columns_are_typed_flat_and_struct() -> None:
    flat = OutputColumns.for_target(Order)
    assert [(f.name, str(f.type)) for f in flat.fields] == [
        ("id", "string"), ("total", "double"), ("lines", "list<item: struct<sku: string, qty: int64>>"),
        ("color", "string"), ("when", "date32[day]"), ("kind", "string"), ("extra", "map<string, int64>"),
    ]
    order = Order(id="o1", total=2.5, lines=[Line(sku="s", qty=3)], color=Color.RED, when=dt.date(2024, 5, 1))
    table = pa.Table.from_arrays(flat.arrays([order, None]), schema=pa.schema(flat.fields))
    assert table.to_pylist()[0] == {"id": "o1", "total": 2.5, "lines": [{"sku": "s", "qty": 3}],
                                    "color": "red", "when": dt.date(2024, 5, 1), "kind": "a", "extra": []}
    assert set(table.to_pylist()[1].values()) == {None}  # a failed row: nulls, not a dropped row
    struct = OutputColumns.for_target(Order, "struct", "order")
    assert struct.names == ("order",) and pa.types.is_struct(struct.fields[0].type)
    many = OutputColumns.for_target(list[Person])
    assert str(many.fields[0].type) == "list<item: struct<name: string, age: int64>>"
    with pytest.raises(ConfigurationError, match="layout='struct'"):
        flat.check_clash(["id", "text"])


def test_ledger_paces_requests_evenly_and_shares_a_cooldown() -> None:
    now = [100.0]
    ledger = LimitLedger(rpm=600, headroom=0.0, clock=lambda: now[0])  # one request per 0.1 s, no burst
    delays = [ledger.admit()[0] for _ in range(5)]
    assert delays == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    now[0] += 1.0  # all started; then a 429 says wait 2 s
    ledger.throttle(2.0)
    delay, _, slack = ledger.admit()
    assert delay == pytest.approx(2.0) and slack == pytest.approx(0.1)  # later than a gap: book again
    assert ledger.snapshot().throttled == 1
    default = LimitLedger(rpm=600, clock=lambda: now[0])  # 1% headroom: 99% of the limit
    assert [default.admit()[0] for _ in range(2)] == pytest.approx([0.0, 60 / 594])


def test_ledger_budget_refuses_before_sending_and_counts_in_flight() -> None:
    ledger = LimitLedger(budget=schemagen.Budget(max_tokens=250))
    assert ledger.admit(100)[:2] == (0.0, None)
    assert ledger.admit(100)[1] is None
    _, refusal_, _ = ledger.admit(100)  # 300 booked would pass 250: refused, nothing sent
    assert refusal_ is not None and "Budget" in refusal_
    ledger.settle(100, Usage(prompt_tokens=60, completion_tokens=10))
    ledger.settle(100, None)
    assert ledger.reserved == 0 and ledger.budget is not None and ledger.budget.spent.total_tokens == 70
    assert ledger.admit(150)[1] is None


def test_keys_and_secret() -> None:
    assert row_key(7, "text", "fp") == "7"
    a, b = row_key(None, "text", "fp1"), row_key(None, "text", "fp2")
    assert a.startswith("sha256:") and a != b and a == row_key(None, "text", "fp1")
    secret = Secret("sk-live-abc")
    assert "sk-live-abc" not in repr(secret) + str(secret) and secret.get() == "sk-live-abc"


def _result_rows(keys: list[str], ok: list[bool]) -> pa.Table:
    return pa.table({"_sg_key": keys, "_sg_ok": ok, "v": list(range(len(keys)))})


def test_results_store_is_exactly_once_and_retries_errors_on_request(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "res")
    assert store.scan(resume=False, overwrite=False, retry_errors=False) == (set(), 0, 0)
    store.write(_result_rows(["a", "b"], [True, False]))
    store.write(_result_rows(["b", "a"], [True, False]))  # the same batch redone: replaces its part
    store.write(_result_rows(["c"], [False]))
    assert len(store.parts()) == 2 and sorted(store.read().column("_sg_key").to_pylist()) == ["a", "b", "c"]
    with pytest.raises(ConfigurationError, match="resume"):
        store.scan(resume=False, overwrite=False, retry_errors=False)
    assert store.scan(resume=True, overwrite=False, retry_errors=False) == ({"a", "b", "c"}, 2, 0)
    assert store.scan(resume=True, overwrite=False, retry_errors=True) == ({"b"}, 0, 2)
    assert store.read().column("_sg_key").to_pylist() == ["b"]  # failed rows are gone, the good one kept
    assert store.scan(resume=False, overwrite=True, retry_errors=False) == (set(), 0, 0)
    assert store.parts() == []


def test_worker_core_runs_rows_without_any_engine() -> None:
    """The engine-neutral worker: what Ray (and later Spark/Daft) wraps, driven directly."""
    from schemagen.integrations._rows import ExtractJob, NoLimits, RowExtractor

    with FaultServer(default=respond(lambda call: refusal("no") if "bad" in json.dumps(call.body)
                                     else from_schema())) as srv:
        job = ExtractJob(target=Person, text_column="t", id_column="i", model="m", base_url=srv.base_url,
                         api_key=Secret("k"), client_options={"retries": 0})
        rows = RowExtractor(job, NoLimits(), done_keys={"skip-me"})
        try:
            out = rows(pa.table({"i": ["a", "b", "c", "skip-me"], "t": ["fine", "bad", None, "x"]}))
        finally:
            rows.close()
        assert len(srv.model_requests) == 2  # the None text and the done key sent nothing
    got = {r["i"]: r for r in out.to_pylist()}
    assert set(got) == {"a", "b", "c"}
    assert (got["a"]["name"], got["a"]["age"], got["a"]["_sg_ok"]) == ("x", 0, True)  # a minimal instance
    assert got["b"]["_sg_error"]["type"] == "RefusalError" and got["b"]["name"] is None
    assert got["c"]["_sg_error"] == {"type": "InputError", "message": "text column 't' is missing"}
    assert out.schema.field("age").type == pa.int64() and out.schema.field("_sg_ok").type == pa.bool_()


def test_actor_resources_for_http_and_local_models() -> None:
    from schemagen.integrations.ray import _resources

    class Cluster:  # what _resources reads of `ray`
        def __init__(self, resources: dict[str, float]) -> None:
            self.resources = resources

        def is_initialized(self) -> bool:
            return True

        def cluster_resources(self) -> dict[str, float]:
            return self.resources

    cpus_only, with_gpu = Cluster({"CPU": 16.0}), Cluster({"CPU": 16.0, "GPU": 2.0})
    assert _resources(cpus_only, local=False, concurrency=8, num_cpus=None, num_gpus=None) == (0.25, 0.0)
    assert _resources(cpus_only, local=True, concurrency=8, num_cpus=None, num_gpus=None) == (2.0, 0.0)
    assert _resources(cpus_only, local=True, concurrency=2, num_cpus=None, num_gpus=None) == (4.0, 0.0)
    assert _resources(with_gpu, local=True, concurrency=2, num_cpus=None, num_gpus=None) == (4.0, 1.0)
    assert _resources(with_gpu, local=False, concurrency=2, num_cpus=1, num_gpus=None) == (1, 0.0)


def test_registry_and_missing_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    assert get_integration("ray").extract_dataset is extract_dataset
    with pytest.raises(ConfigurationError, match="known: ray"):
        get_integration("spark")
    from schemagen.integrations import ray as sg_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails, as if not installed
    with pytest.raises(MissingDependencyError, match=r'pip install "schemagen\[ray\]"'):
        sg_ray.require_ray()


def test_the_ray_extra_lets_ray_data_probe_http_paths() -> None:
    """Ray Data checks every path it reads against fsspec's HTTP filesystem and only catches
    ModuleNotFoundError. Without aiohttp that module fails to import, and when threads list
    several parts at once, one sees it half-imported: an ImportError that fails
    ``read_results`` at random (it did in fresh venvs). The ``ray`` extra installs aiohttp."""
    if importlib.util.find_spec("fsspec") is None:
        pytest.skip("fsspec is not installed: Ray Data doesn't probe it")
    from fsspec.implementations.http import HTTPFileSystem

    assert HTTPFileSystem.protocol


# ---------------------------------------------------------------- a local Ray cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    if ray.is_initialized():
        ray.shutdown()
    for attempt in range(2):  # a busy 2-core box can miss Ray's fixed 30 s start-up wait once
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            break
        except Exception:
            ray.shutdown()
            if attempt:
                raise
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()


def people(n: int) -> list[dict[str, object]]:
    return [{"doc_id": f"d{i}", "body": f"person {i}"} for i in range(n)]


@pytest.mark.llama
def test_values_from_the_real_llama_server(cluster: None, llama_server: LlamaServer) -> None:
    rows = [{"doc_id": "a", "body": "Ada is 36 years old."}, {"doc_id": "b", "body": "Bob is 52 years old."}]
    out = extract_dataset(ray.data.from_items(rows), Person, text_column="body", id_column="doc_id",
                          base_url=llama_server.base_url, model="smollm2", api_key="x", concurrency=1,
                          per_actor_concurrency=2, temperature=0.0, max_tokens=60, seed=7)
    got = sorted(out.take_all(), key=lambda r: r["doc_id"])
    assert [(r["name"], r["age"], r["_sg_ok"]) for r in got] == [("Ada", 36, True), ("Bob", 52, True)]
    assert all(r["_sg_prompt_tokens"] > 0 and r["_sg_completion_tokens"] > 0 for r in got)
    assert all(r["_sg_attempts"] == 1 and r["_sg_error"] is None for r in got)
    assert out.schema().base_schema.field("age").type == pa.int64()


class Resident(BaseModel):
    name: str
    city: str


@pytest.mark.local
def test_a_local_model_runs_inside_its_actor(cluster: None) -> None:
    """``model="local:"``: the embedded SmolLM2 GGUF is loaded on the actor, sized as docs/scale.md says."""
    from tests.test_local import require_local

    require_local()
    rows = [{"doc_id": "a", "body": "Alice Smith is 31 years old and lives in Paris."},
            {"doc_id": "b", "body": "Bob Jones, aged 45, is from Berlin."}]
    ds = extract_dataset(ray.data.from_items(rows), Resident, text_column="body", id_column="doc_id",
                         model="local:", concurrency=1, retries=1, max_tokens=40, temperature=0.0)
    # One actor on this 2-CPU cluster: all of it (an even share, at most 4), no GPU to take,
    # and llama.cpp runs that many threads rather than half the node's cores.
    op = ds._logical_plan.dag
    assert (op.ray_remote_args["num_cpus"], op.ray_remote_args["num_gpus"]) == (2.0, 0.0)
    assert op.fn_constructor_kwargs["job"].local_threads == 2
    got = sorted(ds.take_all(), key=lambda r: r["doc_id"])
    assert [(r["name"], r["city"], r["_sg_ok"]) for r in got] == [
        ("Alice Smith", "Paris", True), ("Bob Jones", "Berlin", True)]
    assert all(r["_sg_completion_tokens"] > 0 for r in got)


def test_failed_rows_are_kept_and_resume_is_exactly_once(cluster: None, tmp_path: Path) -> None:
    bad = {"person 3", "person 7"}

    def answer(call: object) -> object:
        text = json.dumps(call.body)  # type: ignore[attr-defined]
        return refusal("no") if any(b in text for b in bad) else from_schema()

    res = tmp_path / "res"
    with FaultServer(default=respond(answer)) as srv:
        kwargs = dict(text_column="body", id_column="doc_id", base_url=srv.base_url, model="m", api_key="k",
                      concurrency=1, per_actor_concurrency=4, retries=0, batch_size=4, results_dir=res)
        ds = ray.data.from_items(people(12))
        first = extract_dataset(ds, Person, **kwargs).take_all()
        assert len(first) == 12 and len(srv.model_requests) == 12
        failed = {r["doc_id"]: r["_sg_error"] for r in first if not r["_sg_ok"]}
        assert set(failed) == {"d3", "d7"}
        assert failed["d3"]["type"] == "RefusalError" and "no" in failed["d3"]["message"]
        assert all(r["name"] is None for r in first if not r["_sg_ok"])

        again = extract_dataset(ds, Person, **kwargs).take_all()  # nothing left to do
        assert again == [] and len(srv.model_requests) == 12

        bad.clear()  # the server recovered: only the failed rows are redone
        redone = extract_dataset(ds, Person, retry_errors=True, **kwargs).take_all()
        assert sorted(r["doc_id"] for r in redone) == ["d3", "d7"] and all(r["_sg_ok"] for r in redone)
        assert len(srv.model_requests) == 14
    final = read_results(res).take_all()
    assert sorted(r["doc_id"] for r in final) == sorted(f"d{i}" for i in range(12))  # each once
    assert all(r["_sg_ok"] for r in final)


class _ServerProcess:
    """A fault server in its own process (a Ray actor), for arrival times: in the test's
    process it shares the GIL with Ray's driver threads, and on a busy box it stamps
    requests late and in bunches (three within 1 ms was seen), which reads as a burst."""

    def __init__(self) -> None:
        self.srv = FaultServer().start()

    def base_url(self) -> str:
        return self.srv.base_url

    def arrivals(self) -> list[float]:
        return sorted(r.time for r in self.srv.model_requests)


def test_rate_limit_holds_across_actors(cluster: None) -> None:
    server = ray.remote(num_cpus=0)(_ServerProcess).remote()
    try:
        out = extract_dataset(ray.data.from_items(people(30)), Person, text_column="body",
                              base_url=ray.get(server.base_url.remote()), model="m", api_key="k",
                              concurrency=2, per_actor_concurrency=8, rpm=900, batch_size=5)
        assert out.count() == 30
        times = ray.get(server.arrivals.remote())
    finally:
        ray.kill(server)
    assert len(times) == 30
    # The ledger books one request per 66 ms for the whole cluster. Each actor's first
    # request also opens its connection, so it lands late (with the next slot's request
    # right behind it); from the request after those two on (benchmarks/ray_scale.py does
    # the same with four actors), the sustained rate the server sees must hold.
    steady = times[2:]
    rate = (len(steady) - 1) / (steady[-1] - steady[0]) * 60
    assert rate <= 900 * 1.05, rate


def test_budget_is_cluster_wide_and_refused_rows_are_redone_later(cluster: None, tmp_path: Path) -> None:
    res = tmp_path / "res"
    with FaultServer(default=from_schema(usage={"prompt_tokens": 90, "completion_tokens": 10})) as srv:
        url = srv.base_url

        def factory() -> schemagen.Client:  # runs on each actor: the Client is never pickled
            return schemagen.Client(base_url=url, model="m", api_key="k", retries=0, max_tokens=40)

        out = extract_dataset(ray.data.from_items(people(20)), Person, text_column="body",
                              id_column="doc_id", client_factory=factory, concurrency=2,
                              per_actor_concurrency=2, budget=schemagen.Budget(max_tokens=1500),
                              batch_size=5, results_dir=res, layout="struct",
                              value_column="person").take_all()
        sent = len(srv.model_requests)
    assert len(out) == 20 and 5 <= sent < 20  # stopped for the whole cluster, not per actor
    assert {"name": "x", "age": 0} in [r["person"] for r in out]
    assert sent * 100 <= 1500 + 2 * 2 * 100  # at most what was in flight when it ran out
    refused = [r for r in out if not r["_sg_ok"]]
    assert refused and all(r["_sg_error"]["type"] == "BudgetExceeded" for r in refused)
    written = read_results(res).take_all()  # refused rows were never tried: not written, so a rerun does them
    assert len(written) == sent and all(r["_sg_ok"] for r in written)


def test_bad_input_fails_before_any_request(cluster: None) -> None:
    with FaultServer() as srv:
        common = dict(base_url=srv.base_url, model="m", api_key="k")
        with pytest.raises(ConfigurationError, match="'body' is not a column"):
            extract_dataset(ray.data.from_items([{"text": "x"}]), Person, text_column="body", **common)
        with pytest.raises(ConfigurationError, match="holds int64, not strings"):
            extract_dataset(ray.data.from_items([{"text": 5}]), Person, **common)
        with pytest.raises(ConfigurationError, match="no rows"):
            extract_dataset(ray.data.from_items([{"text": "x"}]).limit(0), Person, **common)
        with pytest.raises(ConfigurationError, match="id_column 'doc'"):
            extract_dataset(ray.data.from_items([{"text": "x"}]), Person, id_column="doc", **common)
        with pytest.raises(ConfigurationError, match="client_factory"):
            extract_dataset(ray.data.from_items([{"text": "x"}]), Person, client_factory=print, **common)
        assert srv.requests == []


def test_keys_never_reach_ray_specs_logs_or_rows(cluster: None) -> None:
    key = "sk-ray-secret-4242424242"
    with FaultServer(default=status(401)) as srv:
        ds = extract_dataset(ray.data.from_items(people(3)), Person, text_column="body",
                             base_url=srv.base_url, model="m", api_key=key, concurrency=1, retries=0)
        # What Ray ships to create each actor, pickled as Ray pickles it: a ref, not the key.
        shipped = ray.cloudpickle.dumps(ds._logical_plan.dag.fn_constructor_kwargs)
        assert key.encode() not in shipped
        out = ds.take_all()
        assert srv.requests[0].headers["authorization"] == f"Bearer {key}"  # the actor fetched and used it...
    assert [r["_sg_error"]["type"] for r in out] == ["RequestRejectedError"] * 3
    assert key not in json.dumps(out, default=str)  # ...but it is in no row,
    # nor in what the GCS keeps of the actors (the dashboard's source for its actor table),
    assert key not in repr(ray._private.state.actors())
    # nor in any log file of the session.
    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    leaked = [p.name for p in logs.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
    assert leaked == []


def test_cli_batch_engine_ray(cluster: None, tmp_path: Path) -> None:
    schema = tmp_path / "schema.py"
    schema.write_text("from pydantic import BaseModel\n\n"
                      "class Person(BaseModel):\n    name: str\n    age: int\n")
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"id": f"r{i}", "text": f"person {i}"}) + "\n" for i in range(6)))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with FaultServer() as srv:
        args = [sys.executable, "-m", "schemagen", "batch", str(inputs), "--engine", "ray",
                "--address", "auto", "--schema", f"{schema}:Person", "--out", str(out),
                "--base-url", srv.base_url, "--model", "m", "--concurrency", "4"]
        started = time.perf_counter()
        proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=240, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "6 results, 0 errors" in proc.stderr
        again = subprocess.run(args, capture_output=True, text=True, env=env, timeout=240, cwd=ROOT)
        assert again.returncode == 2 and "--resume" in again.stderr  # won't silently append
        assert len(srv.model_requests) == 6, time.perf_counter() - started
    rows = ResultsStore(out).read().to_pylist()
    assert sorted(r["id"] for r in rows) == [f"r{i}" for i in range(6)]
