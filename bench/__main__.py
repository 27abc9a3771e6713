"""`make bench`: figures for the embedded stack, printed as a table and written as JSON.

    python -m bench [--quick] [--skip-depth]

1. AWS requests per task lifecycle, counted from botocore (stack in this process).
2. The client workload of architecture.md's targets (official client, separate process from
   the stack): end-to-end with 1 and 4 clients, and pipelined with 4 producers + 4 consumers;
   the stack's CPU per task during each (bench/cpu.py compares checkouts, interleaved).
3. Depth: createTask and claimWork latency on an empty task queue and with 10,000 pending
   (seeded in bulk; `make bench-scale`: 100,000, bench/depth.py).
4. Readiness: seconds from `python -m chalicelib.local serve` to a ping answer.
4b. Authentication: what Hawk, certificates and scope checks add to a request.
5. Graphs: dependency release for a fan-out (1 -> N) and a fan-in (N -> 1), N = 1,000 and
   10,000: requests per edge, time from the last resolution to the dependents being pending (and
   per edge), the createTask naming N dependencies, largest item written.
6. The floor's bare request sequence on the same stand-in (bench/floor.py), dependency release
   latency, cold start (import time, package size), and the price per million tasks.
7. Idle: the stack's CPU while idle, empty and with 10,000 tasks stored (bench/idle.py).
8. Single tasks on an idle min-0 pool: createTask -> claimed, and the workers launched (bench/cold_pool.py).
9. Idle workers' monthly cost on AWS in each claim mode, from empty claimWork durations measured
   with a deployed stage's wait, and claimWork's p50 while 100 idle pollers poll (bench/claim_cost.py).
10. The largest responses: listTaskGroup, `POST /tasks` and listPendingTasks over 1,000 tasks of
   ~7 KB, each page's bytes as Lambda counts them against the 5 MB budget (bench/pages.py).
11. The sweeper: 10,000 running tasks whose claims have expired, retried (bench/sweep.py).
12. The provisioner over 1,000 worker pools on the stand-in's EC2: a run's seconds and pools/s, the
   launching runs and a steady one (bench/provisioner.py).
Results are appended to bench/results/<date>-<commit>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _serve(port: int) -> tuple[subprocess.Popen[bytes], float]:
    from chalicelib.local.stack import wait_for

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chalicelib.local", "serve", "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL
    )
    wait_for(f"http://127.0.0.1:{port}/api/queue/v1/ping", 120, proc)
    return proc, time.perf_counter() - t0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _median_task_items(stack: Any) -> dict[str, int]:
    """Median sizes in bytes of a task's definition and status items (attribute names and values),
    as DynamoDB bills them."""
    import statistics

    import boto3

    from chalicelib.config import Settings

    ddb = boto3.client("dynamodb", endpoint_url=stack.aws_endpoint, region_name=Settings.from_env().region)
    sizes: dict[str, list[int]] = {"definition": [], "status": []}
    for page in ddb.get_paginator("scan").paginate(TableName=Settings.from_env().tasks_table):
        for item in page["Items"]:
            kind = "definition" if item["taskId"]["S"].startswith("def#") else "status"
            sizes[kind].append(sum(len(k) + len(json.dumps(v)) for k, v in item.items()))
    return {k: int(statistics.median(v)) if v else 0 for k, v in sizes.items()}


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller samples (a smoke run, not figures)")
    parser.add_argument("--skip-depth", action="store_true", help="skip the 10,000-pending depth benchmark")
    parser.add_argument(
        "--graph-sizes",
        default="1000,10000",
        help="edges of the fan-out and fan-in benchmarks, comma-separated (default 1000,10000: "
        "about 1 and 5 minutes; --quick: 100)",
    )
    args = parser.parse_args(argv)
    n, depth = (100, 1000) if args.quick else (500, 10_000)
    # Every stack this run starts (in this process or as `serve`) has this root client; clients sign with it.
    os.environ.setdefault("TASKQUEUE_ROOT_ACCESS_TOKEN", secrets.token_urlsafe(33))

    from chalicelib.local.stack import EmbeddedStack, free_port

    from . import (
        auth_latency,
        claim_cost,
        cold_pool,
        coldstart,
        floor,
        graph,
        idle,
        lifecycle,
        pages,
        price,
        release_latency,
        workload,
    )
    from . import depth as depth_bench
    from . import provisioner as provisioner_bench
    from . import sweep as sweep_bench
    from .idle import process_and_children_cpu_seconds as stack_cpu

    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": {"cpus": os.cpu_count()},
    }
    print("== 1. AWS requests per task lifecycle", flush=True)
    stack = EmbeddedStack(port=free_port())
    stack.start()
    try:
        results["requests"] = lifecycle.measure(stack.root_url, 200 if not args.quick else 50)
        results["task_item_bytes"] = _median_task_items(stack)
        results["release_latency"] = release_latency.measure(stack.root_url, 50 if not args.quick else 10)
        results["floor"] = floor.measure(stack.aws_endpoint, n, 4)
    finally:
        stack.stop()
    for op, value in results["requests"]["requests_per_task"].items():
        print(f"   {op:32} {value:8.3f} / task")
    r = results["requests"]
    print(
        f"   total without stream polls: {sum(v for k, v in r['by_service'].items() if k != 'dynamodbstreams'):.2f}"
        f" / task; floor {r['floor_per_task']}; ratio {r['ratio_to_floor']}",
        flush=True,
    )

    results["graph"] = []
    for size in [100] if args.quick else [int(s) for s in args.graph_sizes.split(",") if s.strip()]:
        print(f"== 5. graphs: fan-out and fan-in of {size} edges (a fresh stack)", flush=True)
        stack = EmbeddedStack(port=free_port())
        stack.start()
        try:
            measured = graph.measure(stack, size)
        finally:
            stack.stop()
        results["graph"] += measured
        for g in measured:
            create = g.get("create_dependent_s")
            extra = f", createTask with {size} dependencies {create} s" if create is not None else ""
            ops = ", ".join(f"{op.split(':')[1]} {v}" for op, v in g["requests_per_edge"].items() if v >= 0.05)
            print(
                f"   {g['workload']:20} {g['requests_per_edge_total']:5.2f} requests/edge ({ops}); "
                f"last resolution -> pending {g['last_resolution_to_dependents_pending_s']} s "
                f"({g['ms_per_edge']} ms/edge){extra}; largest item {g['largest_item_bytes']} B",
                flush=True,
            )
    idle_tasks = 1_000 if args.quick else 10_000
    print(f"== 7. idle: the stack's CPU while idle, empty and with {idle_tasks} tasks stored", flush=True)
    results["idle"] = idle.measure(idle_tasks, 10)
    idle.report("empty", results["idle"]["empty"])
    idle.report(f"{idle_tasks} tasks stored", results["idle"]["stored"])
    print("== 8. single tasks on an idle pool (min 0, 2-slot workers): createTask -> claimed, launches", flush=True)
    results["cold_pool"] = cold_pool.measure(3, 15.0)
    cold_pool.report(results["cold_pool"])
    print("== 9. idle workers' monthly cost (claimWork waiting 0 s, as deployed), 100 idle pollers", flush=True)
    results["claim_cost"] = claim_cost.measure(50 if args.quick else 200, 100, 5.0 if args.quick else 15.0)
    claim_cost.report(results["claim_cost"])
    page_tasks = 200 if args.quick else 1_000
    print(f"== 10. the largest responses: listings of {page_tasks} tasks of ~7 KB (a fresh stack)", flush=True)
    results["pages"] = pages.run(page_tasks, 7)
    pages.report(results["pages"])
    expired = 1_000 if args.quick else 10_000
    print(f"== 11. sweeper: {expired} expired claims retried (goal for 10,000: < 60 s)", flush=True)
    results["sweep"] = sweep_bench.measure(expired)
    sweep_bench.report(results["sweep"])
    pools = 100 if args.quick else 1000
    print(f"== 12. the provisioner over {pools} worker pools (stand-in EC2), each with a pending task", flush=True)
    results["provisioner"] = provisioner_bench.measure(pools)
    provisioner_bench.report(results["provisioner"])
    port = free_port()
    proc, ready = _serve(port)
    results["serve_ready_seconds"] = round(ready, 2)
    print(f"== readiness: make serve answered ping after {ready:.2f}s", flush=True)
    root = f"http://127.0.0.1:{port}"
    try:
        print("== 2. queue workload (official client)", flush=True)
        runs = []
        for run in (
            lambda: workload.end_to_end(root, n, 1),
            lambda: workload.end_to_end(root, n, 4),
            lambda: workload.pipelined(root, n, 4, 4),
        ):
            cpu0 = stack_cpu(proc.pid)  # the stack's: API and pump, and its stand-in
            w = run()
            tasks = w["reportCompleted"]["n"] if "reportCompleted" in w else w["create_to_completed"]["n"]
            w["server_cpu_ms_per_task"] = round((stack_cpu(proc.pid) - cpu0) * 1000 / max(1, tasks), 1)
            runs.append(w)
        results["workload"] = runs
        for w in runs:
            line = (
                f"   {w['workload']:42} {w['tasks_per_s_to_last_completion']:6.1f} tasks/s to the last completion "
                f"({w['tasks_per_s']:.1f} to the last client's return)"
            )
            if "createTask" in w:
                line += (
                    f"  createTask p50 {w['createTask']['p50_ms']} ms, claimWork(32) p50 {w['claimWork']['p50_ms']}"
                    f" ms, reportCompleted p50 {w['reportCompleted']['p50_ms']} ms"
                )
            else:
                line += f"  create->completed p50 {w['create_to_completed']['p50_ms']} ms"
            print(line + f"  server CPU {w['server_cpu_ms_per_task']} ms/task  errors {w['errors']}", flush=True)
        print("== 4b. authentication: status() with each kind of credentials, interleaved", flush=True)
        a = auth_latency.measure(root, 300 if not args.quick else 50)
        results["auth_latency"] = a
        for name, lat in a["latency"].items():
            added = a["added_p50_ms"].get(name)
            extra = f"  (+{added} ms over anonymous)" if added is not None else ""
            print(f"   {name:22} p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms (n={lat['n']}){extra}", flush=True)
    finally:
        _stop(proc)
    if not args.skip_depth:
        print(f"== 3. depth: {depth} tasks pending in one task queue (a fresh stack; 100,000: make bench-scale)")
        results["depth"] = depth_bench.measure(depth, 200 if not args.quick else 50)
        depth_bench.report(results["depth"])

    cold = coldstart.measure()
    results["cold_start"] = cold
    w4 = results["workload"][1]
    api_ms = w4["createTask"]["p50_ms"] + w4["reportCompleted"]["p50_ms"] + w4["claimWork"]["p50_ms"] / 32
    items = results["task_item_bytes"]
    results["price"] = price.per_million(
        results["requests"]["requests_per_task"],
        items["definition"],
        api_ms,
        items["status"],
        results["requests"].get("batch_write_items_per_task"),
    )
    results["throughput_vs_floor"] = round(w4["tasks_per_s_to_last_completion"] / results["floor"]["tasks_per_s"], 2)
    print("== 6. floor, release latency, cold start, price", flush=True)
    print(
        f"   floor sequence (4 clients): {results['floor']['tasks_per_s']} tasks/s; ours (4 clients, to the last "
        f"completion) {w4['tasks_per_s_to_last_completion']} tasks/s; ours / floor = {results['throughput_vs_floor']}"
    )
    rl = results["release_latency"]
    print(f"   dependency release -> dependent claimed: p50 {rl['p50_ms']} ms, p99 {rl['p99_ms']} ms (n={rl['n']})")
    print(
        f"   cold start: import app {cold['import_app_s']['median']} s (median of {cold['import_app_s']['n']}); "
        f"deployment zip {cold['deployment_zip_mb']} MB"
    )
    pr = results["price"]
    through_url = pr["front_doors"]["function_url"]["usd_per_million_tasks"]
    print(
        f"   price: ${pr['usd_per_million_tasks']} per million tasks at {pr['prices_date']} list prices: "
        f"{pr['breakdown_usd']} (API Gateway REST; through a function URL ${through_url}, "
        f"no API Gateway charge; an HTTP API would be ${pr['api_gateway_if_http_api_usd']}, "
        "but cannot carry the paths: docs/limits.md)",
        flush=True,
    )
    out = ROOT / "bench" / "results" / f"{results['date'][:10]}-{results['commit']}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"== written {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
