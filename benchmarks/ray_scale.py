"""Ray Data scale-out: throughput vs one process, cluster-wide rate-limit accuracy, node loss.

One loopback fault server in its own process answers every request after ``--latency``
(50 ms). Parts, in one run:

1. ``extract_dataset`` on a local Ray cluster (``--actors`` x ``--per-actor``) vs
   ``extract_many`` in this process at the same total concurrency, on ``--rows`` rows.
   Target: Ray >= 0.8x. Reported end to end (actor start-up included) and steady state
   (rows/s between 10% and 90% done, read from the cluster's ledger).
2. Rate-limit accuracy: 4 actors share ``--rpm``; the server's arrival times give the
   rate it saw over the run's ``--window`` seconds. Target: within 5%, never above.
3. Kill one of two nodes at 50% (a ``ray.cluster_utils.Cluster``; a fresh node joins,
   as an autoscaler would add one): rows lost, rows duplicated, extra wall time.
4. A projection for N nodes from the measured per-actor rate and a rate limit (a model,
   not a measurement).

    python benchmarks/ray_scale.py [--rows 5000] [--actors 4] [--per-actor 16] [--rpm 600]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import ray  # noqa: E402
from batch import start_server  # noqa: E402
from examples.invoice_plain import Invoice  # noqa: E402

from schemagen.batch.run import extract_many  # noqa: E402
from schemagen.integrations.ray import extract_dataset, ledger_stats  # noqa: E402
from schemagen.testing import FaultServer  # noqa: E402


def rows(n: int) -> list[dict[str, str]]:
    return [{"id": f"inv-{i}", "text": f"Invoice INV-{i} from ACME Corp. {i % 7 + 1} widgets at 15.25 each. "
             f"Total {i}.50 USD."} for i in range(n)]


def quiet_ray() -> None:
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def timed_ray_run(ds: object, *, ledger: str, n: int, on_half: object = None, **kwargs: object
                  ) -> tuple[float, float, list[dict[str, object]]]:
    """(wall s, steady rows/s between 10% and 90%, output rows); ``on_half`` runs once at 50%.

    The run executes on a helper thread; this (main) thread follows the ledger, because
    Ray adds and removes cluster nodes only from the main thread."""
    marks: dict[float, tuple[float, int]] = {}
    box: dict[str, object] = {}
    start = time.perf_counter()
    out = extract_dataset(ds, Invoice, ledger_name=ledger, **kwargs)  # type: ignore[arg-type]

    def execute() -> None:
        try:
            box["rows"] = out.take_all()
        except BaseException as exc:
            box["error"] = exc
        box["wall"] = time.perf_counter() - start

    runner = threading.Thread(target=execute, daemon=True)
    runner.start()
    fired = False
    while runner.is_alive():
        runner.join(0.1)
        try:
            stats = ledger_stats(ledger)
        except Exception:
            continue
        done, now = stats.succeeded + stats.failed, time.perf_counter()
        for frac in (0.1, 0.9):
            if done >= frac * n and frac not in marks:
                marks[frac] = (now, done)
        if on_half is not None and not fired and done >= n / 2:
            fired = True
            on_half()  # type: ignore[operator]
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    steady = 0.0
    if 0.1 in marks and 0.9 in marks:
        (t1, d1), (t9, d9) = marks[0.1], marks[0.9]
        steady = (d9 - d1) / (t9 - t1) if t9 > t1 else 0.0
    return box["wall"], steady, box["rows"]  # type: ignore[return-value]


def throughput(args: argparse.Namespace, base_url: str) -> float:
    total = args.actors * args.per_actor
    data = rows(args.rows)
    common = {"base_url": base_url, "model": "m", "api_key": "bench", "retries": 0}
    extract_many(Invoice, data[:200], concurrency=total, **common)  # warm-up: imports, connections
    start = time.perf_counter()
    single = extract_many(Invoice, data, concurrency=total, **common)
    one_wall = time.perf_counter() - start
    assert all(r.ok for r in single), single.summary.describe()
    one_rate = args.rows / one_wall

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    quiet_ray()
    ds = ray.data.from_items(data)
    wall, steady, got = timed_ray_run(ds, ledger="bench-throughput", n=args.rows, concurrency=args.actors,
                                      per_actor_concurrency=args.per_actor, batch_size=args.batch_size,
                                      **common)
    assert len(got) == args.rows and all(r["_sg_ok"] for r in got)
    ray_rate = args.rows / wall
    print(f"\n## 1. throughput, {args.rows} rows, 50 ms server, total concurrency {total}")
    print(f"extract_many (one process, concurrency {total}): {one_wall:6.1f} s  {one_rate:7.1f} rows/s")
    print(f"extract_dataset ({args.actors} actors x {args.per_actor}):  {wall:6.1f} s  {ray_rate:7.1f} rows/s"
          f" end to end (actor start-up included), {steady:7.1f} rows/s steady (10%..90%)")
    print(f"ratio Ray / one process: {ray_rate / one_rate:.2f}x end to end, {steady / one_rate:.2f}x steady "
          "(target >= 0.8x)")
    ray.shutdown()
    return (steady or ray_rate) / args.actors


def _serve_and_record(latency: float, urls: Any, stop: Any, times: Any) -> None:
    """The rate-limit run's server, in its own process: the driver's GIL can't delay arrivals."""
    with FaultServer(latency=latency) as srv:
        urls.put(srv.base_url)
        stop.wait()
        times.put(sorted(r.time for r in srv.model_requests))


def rate_limit(args: argparse.Namespace) -> None:
    import multiprocessing as mp

    n = int(args.rpm * args.window / 60) + 1
    ctx = mp.get_context("spawn")
    urls, times_q, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve_and_record, args=(args.latency, urls, stop, times_q), daemon=True)
    server.start()
    base_url = urls.get(timeout=60)
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    quiet_ray()
    try:
        out = extract_dataset(ray.data.from_items(rows(n)), Invoice, base_url=base_url, model="m",
                              api_key="bench", retries=0, concurrency=4, per_actor_concurrency=8,
                              rpm=args.rpm, batch_size=8, ledger_name="bench-rate")
        assert out.count() == n
        admitted = ledger_stats("bench-rate").admitted
    finally:
        stop.set()
        times = times_q.get(timeout=60)
        server.join(10)
        ray.shutdown()
    # Each actor's first request also opens its connection and lands late; the steady
    # rate runs from the request after those four to the last.
    steady = times[4:]
    seen = (len(steady) - 1) / (steady[-1] - steady[0]) * 60
    whole = (len(times) - 1) / (times[-1] - times[0]) * 60
    window = 10.0  # the busiest 10 s, against what the limit allows in 10 s
    busiest = max(sum(1 for t in times[i:] if t < start + window) for i, start in enumerate(times))
    print(f"\n## 2. rate limit, 4 actors, rpm={args.rpm:g}, {n} requests over {times[-1] - times[0]:.1f} s")
    print(f"server saw {seen:.1f} requests/min steady = {seen / args.rpm:.3f}x the limit "
          f"(target 0.95..1.00); first to last: {whole:.1f} = {whole / args.rpm:.3f}x")
    print(f"busiest {window:.0f} s window: {busiest} requests; the limit allows {args.rpm * window / 60:.0f} "
          "(+1 for the request at the window's edge)")
    print(f"slots booked {admitted}, requests sent {len(times)}: {admitted - len(times)} slots left empty "
          "by workers that woke more than one gap late")


def node_loss(args: argparse.Namespace, base_url: str) -> None:
    n = args.kill_rows
    data = rows(n)
    results: dict[str, tuple[float, list[dict[str, object]], Path]] = {}
    for kill in (False, True):
        cluster, worker = two_node_cluster()
        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
        quiet_ray()
        out_dir = Path(tempfile.mkdtemp(prefix="ray-scale-"))

        def kill_worker(cluster: Any = cluster, worker: object = worker) -> None:
            cluster.remove_node(worker)  # SIGKILL: its actor, its raylet, its rows in flight
            cluster.add_node(num_cpus=1)  # a replacement joins, as an autoscaler would add one

        wall, _, got = timed_ray_run(
            ray.data.from_items(data), ledger=f"bench-kill-{kill}", n=n,
            on_half=kill_worker if kill else None,
            base_url=base_url, model="m", api_key="bench", retries=0, concurrency=2, per_actor_concurrency=16,
            batch_size=args.batch_size, num_cpus=1, results_dir=out_dir)
        results["kill" if kill else "base"] = (wall, got, out_dir)
        ray.shutdown()
        cluster.shutdown()
    base_wall = results["base"][0]
    kill_wall, got, out_dir = results["kill"]
    ids = [r["id"] for r in got]
    stored = [r["id"] for r in read_results_local(out_dir)]
    print(f"\n## 3. kill one of two nodes at 50%, {n} rows")
    print(f"returned rows: {len(ids)}, lost {len(set(r['id'] for r in data) - set(ids))}, "
          f"duplicated {len(ids) - len(set(ids))}")
    print(f"results directory: {len(stored)} rows, lost {n - len(set(stored))}, "
          f"duplicated {len(stored) - len(set(stored))}")
    print(f"wall: {base_wall:.1f} s without the kill, {kill_wall:.1f} s with it "
          f"(+{kill_wall - base_wall:.1f} s, {kill_wall / base_wall:.2f}x)")


def two_node_cluster(tries: int = 3) -> tuple[object, object]:
    """Head + one worker node, one CPU each. Ray waits a fixed 30 s for a raylet to come
    up, which a busy box can miss: try again rather than fail the run."""
    from ray.cluster_utils import Cluster

    for attempt in range(tries):
        cluster = Cluster()
        try:
            cluster.add_node(num_cpus=1)
            worker = cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            return cluster, worker
        except Exception:
            cluster.shutdown()
            if attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


def read_results_local(path: Path) -> list[dict[str, object]]:
    from schemagen.integrations._rows import ResultsStore

    return ResultsStore(path).read().to_pylist()


def projection(per_actor: float, args: argparse.Namespace) -> None:
    print("\n## 4. projection (a model, not a measurement)")
    print(f"rows/s = min(nodes x actors/node x {per_actor:.1f} rows/s per actor, "
          "rpm / 60 / requests per row); 1 request per row when the first answer validates")
    for limit in (None, 30_000.0):
        cap = f"rpm {limit:,.0f}" if limit else "no rate limit"
        line = []
        for nodes in (1, 2, 4, 8, 16, 32):
            rate = nodes * args.actors * per_actor
            if limit:
                rate = min(rate, limit / 60)
            line.append(f"{nodes} nodes: {rate:,.0f}")
        print(f"{cap:>14} ({args.actors} actors/node): " + ", ".join(line) + " rows/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--actors", type=int, default=4)
    parser.add_argument("--per-actor", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs the local Ray cluster may use")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rpm", type=float, default=600)
    parser.add_argument("--window", type=float, default=30, help="seconds the rate-limit run lasts")
    parser.add_argument("--kill-rows", type=int, default=2000)
    parser.add_argument("--skip", nargs="*", default=[], choices=["throughput", "rate", "kill"])
    args = parser.parse_args()
    proc, base_url = start_server(args.latency)
    per_actor = 0.0
    try:
        if "throughput" not in args.skip:
            per_actor = throughput(args, base_url)
        if "rate" not in args.skip:
            rate_limit(args)
        if "kill" not in args.skip:
            node_loss(args, base_url)
    finally:
        proc.terminate()
        proc.wait()
    if per_actor:
        projection(per_actor, args)


if __name__ == "__main__":
    main()
