"""The sweeper at scale on the embedded stack: N running tasks whose claims have expired, retried.

    .venv/bin/python -m bench.sweep [--tasks 10000]

The stack runs in this process (API + event pump) with its AWS stand-in (moto) as a child; its
own schedule is held back (TASKQUEUE_SWEEP_INTERVAL = 1 hour) so that the load is complete
before the first tick. The tasks are loaded in bulk (running, claims already expired),
the pump delivers their stream records, then the scheduled function `sweeper` is called as
EventBridge would call it, with a Lambda context of the function's timeout (120 s,
.chalice/config.json), tick after tick — from this thread, while the pump keeps delivering the
stream (on AWS they are separate functions) — until every task is pending again with a new run.
Figures: seconds from the first tick to the last task retried, tasks/s, ticks and rounds, the CPU
the stand-in and this process spent per task, and the machine's load average (the machine may be
shared). Goal: 10,000 in < 60 s.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from datetime import timedelta
from typing import Any

from chalice.local import LambdaContext
from taskcluster.utils import slugId

from chalicelib import container
from chalicelib.domain import transitions
from chalicelib.domain.definition import new_task
from chalicelib.domain.model import Worker
from chalicelib.local.stack import EmbeddedStack, free_port

from .graph import _bulk_tasks, _definition, _wait_idle
from .idle import stack_cpu_seconds

SWEEPER_TIMEOUT_MS = 120_000  # the sweeper's lambda_timeout in .chalice/config.json
LOAD_BATCH = 500


def load_expired(n: int, tq: str) -> None:
    """`n` tasks of task queue `tq`, each running run 0 with a claim that ends as it is written."""
    c = container.get()
    now = c.clock.now()
    group, worker = slugId(), Worker("bench", "w")
    for start in range(0, n, LOAD_BATCH):
        ids = [slugId() for _ in range(min(LOAD_BATCH, n - start))]
        pending = [transitions.schedule(new_task(i, _definition(c, i, tq, group, [])), now) for i in ids]
        _bulk_tasks(c).put_many([transitions.claim(t, 0, worker, now, timedelta()) for t in pending])


def tick(stack: EmbeddedStack) -> dict[str, Any]:
    """One run of the scheduled function, as EventBridge and Lambda would make it."""
    event = {
        "id": slugId(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": container.get().settings.region,
        "resources": [],
        "detail": {},
        "version": "0",
    }
    context = LambdaContext(function_name="sweeper", memory_size=512, max_runtime_ms=SWEEPER_TIMEOUT_MS)
    result: dict[str, Any] = stack._pump.app.handler_map["sweeper"](event, context)
    return result


def measure(n: int) -> dict[str, Any]:
    interval = os.environ.get("TASKQUEUE_SWEEP_INTERVAL")
    os.environ["TASKQUEUE_SWEEP_INTERVAL"] = "3600"  # no tick of the pump's own: this bench makes them
    stack = EmbeddedStack(port=free_port())
    try:
        stack.start()
        store, tq = container.get().queue.store, f"bench/sweep-{slugId()[:8]}"
        t0 = time.monotonic()
        load_expired(n, tq)
        _wait_idle(stack, time.monotonic())
        load_s = time.monotonic() - t0
        assert store.queue_counts(tq, container.get().clock.now() - timedelta(hours=1)).claimed == n
        load_before = os.getloadavg()
        cpu0 = stack_cpu_seconds(stack)
        ticks: list[dict[str, Any]] = []
        t0 = time.monotonic()
        while sum(t["changed"] for t in ticks) < n:
            ticks.append({**tick(stack), "seconds": round(time.monotonic() - t0, 2)})
            if ticks[-1]["examined"] == 0:
                break  # nothing due any more: the figures below say what is missing
        elapsed = time.monotonic() - t0
        cpu = stack_cpu_seconds(stack) - cpu0
        load_after = os.getloadavg()
        pending = store.queue_counts(tq, container.get().clock.now()).pending
        return {
            "tasks": n,
            "shards": container.get().settings.due_shards_swept,
            "sweep_batch": container.get().settings.sweep_batch,
            "load_s": round(load_s, 1),
            "retried": sum(t["changed"] for t in ticks),
            "pending_after": pending,
            "seconds": round(elapsed, 1),
            "tasks_per_s": round(sum(t["changed"] for t in ticks) / elapsed, 1),
            "ticks": ticks,
            # CPU while sweeping, per task retried: this process's (the sweeper's threads, the pump
            # delivering the retries' stream records meanwhile) and the stand-in's, serving both
            "cpu_ms_per_task": round(1000 * cpu / max(1, n), 2),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after],
            "cpus": os.cpu_count(),
        }
    finally:
        stack.stop()
        if interval is None:
            os.environ.pop("TASKQUEUE_SWEEP_INTERVAL")
        else:
            os.environ["TASKQUEUE_SWEEP_INTERVAL"] = interval


def report(r: dict[str, Any]) -> None:
    print(
        f"   {r['retried']} of {r['tasks']} expired claims retried in {r['seconds']} s = {r['tasks_per_s']} tasks/s "
        f"({len(r['ticks'])} ticks, {sum(t['rounds'] for t in r['ticks'])} rounds; {r['shards']} shards, "
        f"{r['sweep_batch']} per shard per round; pending after: {r['pending_after']}); goal < 60 s",
        flush=True,
    )
    print(
        f"   load average before {r['loadavg_before']}, after {r['loadavg_after']} ({r['cpus']} CPUs); "
        f"bulk load + stream took {r['load_s']} s; CPU per task (sweeper, pump and "
        f"stand-in): {r['cpu_ms_per_task']} ms",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="running tasks with expired claims (default 10000)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TASKQUEUE_ROOT_ACCESS_TOKEN", secrets.token_urlsafe(33))
    report(measure(args.tasks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
