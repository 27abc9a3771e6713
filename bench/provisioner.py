"""A provisioner run over 1,000 worker pools on the AWS stand-in: seconds, pools per second.

    .venv/bin/python -m bench.provisioner [--pools 1000] [--concurrency 16]

The deployed path: the scheduled Lambda handler (`provisioner`, with the 60 s context of its
deployed timeout) in this process, the pools, tasks and workers tables and EC2 in the embedded
stack's AWS stand-in (moto, its own process, over HTTP), the tasks stream delivered by the stack's
pump beside it as on AWS. The stack's own provisioner schedule is turned off, so the runs measured
are the only ones. Each pool (`bench/p0000` …, provider `aws`, one launch config of capacity 1)
gets one pending task, then:

1. launch: every pool needs a worker — a scan (no workers yet) and a RunInstances per pool (the
   worst minute there is: every pool launching at once). A run that meets its time margin leaves
   the rest to the next, as the deployed function does: those runs follow until none is left;
2. steady: every pool has its worker (requested) — a DescribeInstances per pool, nothing launched.

Printed per run: seconds, pools/s, pools left for the next run (none unless the run met its time
margin), AWS requests per pool, and the load average (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections import Counter
from typing import Any

IMAGE = "ami-12345678"
MAX_LAUNCH_RUNS = 5  # runs until every pool has launched (each starts where the last one stopped)


def _pool_body(region: str) -> dict[str, Any]:
    return {
        "providerId": "aws",
        "description": "bench pool",
        "owner": "bench@example.com",
        "emailOnError": False,
        "config": {
            "minCapacity": 0,
            "maxCapacity": 2,
            "scalingRatio": 1.0,
            "lifecycle": {"registrationTimeout": 3600, "queueInactivityTimeout": 7200},
            "launchConfigs": [
                {
                    "region": region,
                    "launchConfig": {"ImageId": IMAGE, "InstanceType": "m5.large"},
                    "workerManager": {"launchConfigId": "m5", "capacityPerInstance": 1},
                }
            ],
        },
    }


def _scheduled(event_id: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-12-01T00:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/provisioner"],
        "detail": {},
    }


def _run(name: str, pools: int) -> dict[str, Any]:
    from chalice.local import LambdaContext

    from app import app

    from .requests import counting_requests

    context = LambdaContext(function_name="provisioner", memory_size=512, max_runtime_ms=60_000)
    load = os.getloadavg()
    with counting_requests(lambda: threading.current_thread().name == "pump") as counts:
        t0, cpu0 = time.perf_counter(), time.process_time()
        answer = app.handler_map["provisioner"](_scheduled(str(uuid.uuid4())), context)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    per_op: Counter[str] = Counter({f"{svc}:{op}": n for (svc, op), n in counts.items()})
    return {
        "run": name,
        "pools": pools,
        "handled": answer.get("pools"),
        "skipped": answer.get("skipped"),
        "launched": answer.get("launched"),
        "errors": len(answer.get("errors") or []),
        "seconds": round(seconds, 2),
        "client_cpu_s": round(cpu, 2),  # this process's CPU (the function's own work; the stand-in is another)
        "pools_per_s": round((answer.get("pools") or 0) / seconds, 1),
        "requests_per_pool": round(sum(per_op.values()) / pools, 2),
        "requests": dict(sorted(per_op.items())),
        "load_average": [round(x, 2) for x in load],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def measure(pools: int = 1000, concurrency: int | None = None) -> dict[str, Any]:
    """Start the embedded stack (its provisioner schedule off), define `pools` pools with a pending
    task each, and time two provisioner runs: the launching one and the steady one."""
    interval = os.environ.get("TASKQUEUE_PROVISION_INTERVAL")
    os.environ["TASKQUEUE_PROVISION_INTERVAL"] = "86400"  # the stack's own schedule never runs
    from taskcluster.utils import slugId

    from chalicelib import container
    from chalicelib.local.stack import EmbeddedStack, free_port

    from .workload import task_def

    stack = EmbeddedStack(port=free_port())
    stack.start()
    logging.disable(logging.ERROR)  # a line per pool launched, and the pump's as the stand-in stops
    try:
        c = container.get()
        if concurrency is not None:
            c.provisioner.concurrency = concurrency
        region = c.settings.region
        t0 = time.perf_counter()
        ids = [f"bench/p{i:04d}" for i in range(pools)]
        for pool_id in ids:
            c.worker_manager.create_worker_pool(pool_id, _pool_body(region))
        group = slugId()
        for pool_id in ids:
            c.queue.create_task(slugId(), task_def(pool_id, group))
        deadline = time.monotonic() + 120
        while c.queue.pending_count(ids[-1]) < 1 and time.monotonic() < deadline:
            time.sleep(0.2)  # the stream delivers the new tasks (hints, counts) first
        setup = time.perf_counter() - t0
        runs = [_run("launch", pools)]
        while runs[-1]["skipped"] and len(runs) < MAX_LAUNCH_RUNS:  # the next minute's run goes on
            runs.append(_run("launch, continued", pools))
        runs.append(_run("steady", pools))
    finally:
        stack.stop()
        logging.disable(logging.NOTSET)
        if interval is None:
            os.environ.pop("TASKQUEUE_PROVISION_INTERVAL", None)
        else:
            os.environ["TASKQUEUE_PROVISION_INTERVAL"] = interval
    return {
        "pools": pools,
        "concurrency": concurrency or c.provisioner.concurrency,
        "setup_s": round(setup, 1),
        "runs": runs,
        "goal_s": 30,
        "cpus": os.cpu_count(),
    }


def report(result: dict[str, Any]) -> None:
    for r in result["runs"]:
        ops = ", ".join(f"{op.split(':')[1]} {n}" for op, n in r["requests"].items())
        print(
            f"   {r['run']:17} {r['pools']} pools ({result['concurrency']} at once): {r['seconds']} s, "
            f"{r['pools_per_s']} pools/s (the function's CPU {r['client_cpu_s']} s); "
            f"handled {r['handled']}, left for the next run {r['skipped']}, "
            f"launched {r['launched']}, errors {r['errors']}; {r['requests_per_pool']} AWS requests/pool ({ops}); "
            f"load average {r['load_average'][0]} (1 min) before, {r['load_average_after'][0]} after "
            f"[goal < {result['goal_s']} s]",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.provisioner", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pools", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=None, help="pools at once (default: the provisioner's)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on the last line")
    args = parser.parse_args(argv)
    result = measure(args.pools, args.concurrency)
    report(result)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
