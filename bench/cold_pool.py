"""Single tasks on an idle pool: how long each waits for a worker, and how many workers it costs.

    .venv/bin/python -m bench.cold_pool [--tasks 10] [--gap 20]

On the embedded stack, `make run`'s pool (`demo/linux`: the local provider, minCapacity 0, workers
of capacity 2) gets one task every `--gap` seconds, each a short command. For each task the
timeline: createTask sent (t0), the worker that ran it asked for (`requested`, if it was launched
for it), running (registered), the claim (the run's `started`), the resolution; and the launches
the pool made meanwhile. A pool that churns shows more launches than tasks, or a task waiting for
a second launch. Prints its figures only (not part of `make bench`: it takes tasks × gap seconds).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import taskcluster
from taskcluster.utils import slugId

from chalicelib.local.demo import TASK_QUEUE, ensure_pool
from chalicelib.local.stack import EmbeddedStack, free_port


@dataclass
class Timeline:
    task_id: str
    created: float  # wall clock (epoch seconds) when createTask was sent
    claimed: float | None = None
    resolved: float | None = None
    state: str = "pending"
    worker_id: str | None = None
    launched: list[str] = field(default_factory=list)  # workers requested while it waited

    def row(self, index: int, seen: dict[str, dict[str, float]]) -> str:
        def since(t: float | None) -> str:
            return f"{t - self.created:6.1f}s" if t is not None else "     -"

        worker = seen.get(self.worker_id or "", {})
        launched = ", ".join(self.launched) or "none (a worker was up)"
        return (
            f"  task {index:2}  requested {since(worker.get('requested'))}  running {since(worker.get('running'))}"
            f"  claimed {since(self.claimed)}  {self.state} {since(self.resolved)}  on {self.worker_id or '-'}"
            f"  launches while waiting: {launched}"
        )


def _epoch(date: str) -> float:
    return datetime.fromisoformat(date.replace("Z", "+00:00")).timestamp()


def _definition(seconds: float) -> dict[str, Any]:
    return {
        "taskQueueId": TASK_QUEUE,
        "created": taskcluster.stringDate(taskcluster.fromNow("0 seconds")),
        "deadline": taskcluster.stringDate(taskcluster.fromNow("1 hour")),
        "payload": {"command": [["sleep", str(seconds)]], "maxRunTime": 60},
        "metadata": {"name": "single", "description": "", "owner": "bench@example.com", "source": "https://x.y"},
    }


def run(
    root_url: str, credentials: dict[str, str], tasks: int, gap: float, poll: float = 0.1
) -> tuple[list[Timeline], dict[str, dict[str, float]]]:
    """Submit `tasks` single tasks `gap` seconds apart; follow them and the pool's workers until all
    resolve. Returns the tasks' timelines and each worker's first sight in each state (wall clock)."""
    options = {"rootUrl": root_url, "credentials": credentials}
    queue, manager = taskcluster.Queue(options), taskcluster.WorkerManager(options)
    ensure_pool(manager, max_workers=2)
    seen: dict[str, dict[str, float]] = {}  # worker id -> state -> first seen
    timelines: list[Timeline] = []
    next_at = time.time()
    while len(timelines) < tasks or any(t.resolved is None for t in timelines):
        now = time.time()
        if len(timelines) < tasks and now >= next_at:
            task_id = slugId()
            queue.createTask(task_id, _definition(1))
            timelines.append(Timeline(task_id, now))
            next_at = now + gap
        for w in manager.listWorkersForWorkerPool(TASK_QUEUE)["workers"]:
            states = seen.setdefault(w["workerId"], {})
            if w["state"] not in states:
                states[w["state"]] = now
                if w["state"] == "requested":
                    for t in timelines:
                        if t.claimed is None:
                            t.launched.append(w["workerId"])
        for t in timelines:
            if t.resolved is None:
                status = queue.status(t.task_id)["status"]
                runs = status["runs"]
                t.state = status["state"]
                if runs and runs[-1].get("started") and t.claimed is None:
                    t.claimed, t.worker_id = _epoch(runs[-1]["started"]), runs[-1].get("workerId")
                if status["state"] in ("completed", "failed", "exception"):
                    t.resolved = _epoch(runs[-1]["resolved"])
        time.sleep(poll)
    return timelines, seen


def measure(tasks: int, gap: float) -> dict[str, Any]:
    """`run` on a fresh embedded stack, summed up: each task's wait for its claim, the launches."""
    stack = EmbeddedStack(port=free_port())
    stack.start()
    try:
        timelines, seen = run(stack.root_url, stack.credentials, tasks, gap)
    finally:
        stack.stop()
    waits = [round(t.claimed - t.created, 2) for t in timelines if t.claimed is not None]
    return {
        "tasks": tasks,
        "gap_s": gap,
        "created_to_claimed_s": waits,
        "p50_s": round(statistics.median(waits), 2) if waits else None,
        "workers_launched": len(seen),
        "timeline": [t.row(i, seen).strip() for i, t in enumerate(timelines)],
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_pool", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10, help="single tasks to submit (default 10)")
    parser.add_argument("--gap", type=float, default=20.0, help="seconds between them (default 20)")
    args = parser.parse_args()
    print(f"{args.tasks} single tasks (sleep 1), {args.gap:g} s apart, on {TASK_QUEUE} (min 0, capacity 2):")
    report(measure(args.tasks, args.gap))
    return 0


def report(m: dict[str, Any]) -> None:
    for row in m["timeline"]:
        print(f"   {row}")
    waits = m["created_to_claimed_s"]
    print(f"   created -> claimed: p50 {m['p50_s']} s, max {max(waits, default=0)} s (n={len(waits)}); "
          f"workers launched: {m['workers_launched']} for {m['tasks']} tasks", flush=True)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
