"""Does the embedded stack stay fast as it fills? createTask and claimWork latency on an empty
task queue, then with N tasks pending in one task queue.

    .venv/bin/python -m bench.depth [--pending 10000] [--samples 200]

`make bench` runs it at 10,000 pending; `make bench-scale` at 100,000 (the scale goal: p50 deep
no more than 1.3 × empty), writing bench/results/<date>-<commit>-depth-<N>.json.

The stack runs in this process (its AWS stand-in in a child process), with
TASKQUEUE_REDISPATCH_AFTER=7200 so that the sweeper does not re-announce the waiting tasks during
the run. The N pending tasks are seeded in bulk through createTask's own steps — the request
schema's defaults, `normalize`, `new_task`, `schedule`, the group check — written with
BatchWriteItem (the task store's `put_many`, the graph store's `add_members_many`); the event pump
then carries their stream records through the outbox as it does for tasks created through the API
(their dispatch hints, their events). Samples are taken through the API with the official client.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import taskcluster
from taskcluster.utils import slugId

from .workload import Latencies, options, percentile, task_def

ROOT = Path(__file__).resolve().parents[1]
SEED_BATCH = 1000  # tasks per put_many (40 BatchWriteItem requests of each table)
REDISPATCH_AFTER = "7200"  # seconds: no pending run is re-announced during the run


def _sample(queue: Any, queues: list[str], group: str, samples: int) -> list[tuple[Latencies, Latencies]]:
    """createTask, then claimWork(1), `samples` times on each task queue, the queues taking turns
    (so that a change in the machine's load falls on all of them alike)."""
    found = [(Latencies("createTask"), Latencies("claimWork(1)")) for _ in queues]
    for _ in range(samples):
        for tq, (create, _claim) in zip(queues, found, strict=True):
            t0 = time.perf_counter()
            queue.createTask(slugId(), task_def(tq, group))
            create.samples.append(time.perf_counter() - t0)
    time.sleep(1.0)  # the new tasks' hints are dispatched
    for _ in range(samples):
        for tq, (_create, claim) in zip(queues, found, strict=True):
            t0 = time.perf_counter()
            claimed = queue.claimWork(tq, {"tasks": 1, "workerGroup": "b", "workerId": "w"})["tasks"]
            claim.samples.append(time.perf_counter() - t0)
            assert claimed, "claimWork found nothing to claim"
    return found


def seed_pending(task_queue_id: str, group: str, n: int, batch: int = SEED_BATCH) -> list[str]:
    """`n` pending tasks on `task_queue_id`, as createTask makes them, written in bulk to the
    running stack's tables (container.get()). Returns their taskIds. Their hints and events
    follow from the tasks stream, through the event pump."""
    from chalicelib import container
    from chalicelib.domain import transitions
    from chalicelib.domain.definition import new_task, normalize
    from chalicelib.schemas import validator

    from .graph import _bulk_graph, _bulk_tasks

    c = container.get()
    store, graph = _bulk_tasks(c), _bulk_graph(c)
    fill = validator("create-task-request")
    ids: list[str] = []
    for start in range(0, n, batch):
        now = c.clock.now()
        tasks = []
        for _ in range(min(batch, n - start)):
            task_id = slugId()
            body = fill(task_def(task_queue_id, group))  # the API's schema defaults
            definition = normalize(task_id, body, now, c.settings.max_task_deadline_days)
            tasks.append(transitions.schedule(new_task(task_id, definition), now))
        c.groups.admit(tasks[0])  # the group: created once, then trusted (as createTask does)
        store.put_many(tasks)
        graph.add_members_many((t.task_group_id, t.task_id, t.expires) for t in tasks)
        ids += [t.task_id for t in tasks]
    return ids


@contextmanager
def _env(**values: str) -> Iterator[None]:
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _peak_rss_mb() -> dict[str, float]:
    """Peak resident memory of this process (the API and the pump) and of the largest of its ended
    child processes (the stand-in, once the stack has stopped), in MB (Linux reports KB)."""
    return {
        "this_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "children": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }


def _pump_idle(stack: Any, since: float, timeout: float) -> None:
    end = time.monotonic() + timeout
    while stack.pump_idle_since() < since:
        if time.monotonic() > end:
            raise TimeoutError("the event pump never went idle")
        time.sleep(0.1)


def measure(pending: int = 10_000, samples: int = 200, pending_samples: int = 20) -> dict[str, Any]:
    """Latencies on an empty task queue, then `pending` tasks are seeded on another, then the same
    latencies on that one (a fresh stack)."""
    os.environ.setdefault("TASKQUEUE_ROOT_ACCESS_TOKEN", secrets.token_urlsafe(33))
    from chalicelib.local.stack import EmbeddedStack, free_port

    with _env(TASKQUEUE_REDISPATCH_AFTER=REDISPATCH_AFTER):
        stack = EmbeddedStack(port=free_port())
        stack.start()
        try:
            queue = taskcluster.Queue(options(stack.root_url, maxRetries=0))
            group = slugId()
            empty_tq, deep_tq = f"bench/e{uuid.uuid4().hex[:8]}", f"bench/d{uuid.uuid4().hex[:8]}"
            [(empty_create, empty_claim)] = _sample(queue, [empty_tq], group, samples)
            t0 = time.perf_counter()
            seed_pending(deep_tq, group, pending)
            written_s = time.perf_counter() - t0
            _pump_idle(stack, time.monotonic(), timeout=3600)  # every hint sent, every event published
            seed_s = time.perf_counter() - t0
            counts = Latencies("pendingTasks")
            for _ in range(pending_samples):
                t1 = time.perf_counter()
                count = queue.pendingTasks(deep_tq)["pendingTasks"]
                counts.samples.append(time.perf_counter() - t1)
            # And an empty task queue again, on the now full stack, taking turns with the deep one:
            # what depth costs one queue against another, whatever the machine's load does meanwhile.
            other_tq = f"bench/o{uuid.uuid4().hex[:8]}"
            [(deep_create, deep_claim), (other_create, other_claim)] = _sample(
                queue, [deep_tq, other_tq], group, samples
            )
        finally:
            stack.stop()

    def ratio(a: Latencies, b: Latencies) -> float:
        return round(percentile(b.samples, 50) / percentile(a.samples, 50), 2)

    return {
        "depth": pending,
        "pending_when_measured": count,
        "seed_seconds": round(seed_s, 1),
        "seed_write_seconds": round(written_s, 1),
        "pendingTasks_deep": counts.summary(),
        "empty": {"createTask": empty_create.summary(), "claimWork": empty_claim.summary()},
        "deep": {"createTask": deep_create.summary(), "claimWork": deep_claim.summary()},
        "other_empty_queue_when_deep": {"createTask": other_create.summary(), "claimWork": other_claim.summary()},
        "p50_ratio_deep_to_empty": {
            "createTask": ratio(empty_create, deep_create),
            "claimWork": ratio(empty_claim, deep_claim),
        },
        "p50_ratio_deep_to_other_empty_queue": {
            "createTask": ratio(other_create, deep_create),
            "claimWork": ratio(other_claim, deep_claim),
        },
        "peak_rss_mb": _peak_rss_mb(),
    }


def report(d: dict[str, Any]) -> None:
    for phase, label in (("empty", "empty"), ("deep", "deep"), ("other_empty_queue_when_deep", "other")):
        create, claim = d[phase]["createTask"], d[phase]["claimWork"]
        print(
            f"   {label:6} createTask p50 {create['p50_ms']} ms p95 {create['p95_ms']} ms, "
            f"claimWork(1) p50 {claim['p50_ms']} ms p95 {claim['p95_ms']} ms (n={claim['n']})"
        )
    print(
        f"   deep/empty p50 ratio: {d['p50_ratio_deep_to_empty']} (goal <= 1.3); deep/other (taking turns) "
        f"{d['p50_ratio_deep_to_other_empty_queue']}; pendingTasks when deep "
        f"p50 {d['pendingTasks_deep']['p50_ms']} ms (answered {d['pending_when_measured']}); seeding "
        f"{d['depth']} tasks {d['seed_seconds']} s ({d['seed_write_seconds']} s writing); peak RSS "
        f"{d['peak_rss_mb']}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.depth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pending", type=int, default=10_000, help="tasks pending when measured (default 10000)")
    parser.add_argument("--samples", type=int, default=200, help="createTask and claimWork calls per phase")
    parser.add_argument("--no-write", action="store_true", help="print only, write no file under bench/results/")
    args = parser.parse_args(argv)
    from .__main__ import _commit

    commit = _commit()  # the code measured: what was checked out when the run began
    load_before = round(os.getloadavg()[0], 2)
    print(f"== depth: {args.pending} tasks pending in one task queue (load {load_before})", flush=True)
    d = measure(args.pending, args.samples)
    d = {"date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()), "commit": commit,
         "loadavg_1m_before": load_before, "loadavg_1m_after": round(os.getloadavg()[0], 2), **d}  # fmt: skip
    report(d)
    if not args.no_write:
        out = ROOT / "bench" / "results" / f"{d['date'][:10]}-{d['commit']}-depth-{args.pending}.json"
        out.write_text(json.dumps(d, indent=2) + "\n")
        print(f"== written {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
