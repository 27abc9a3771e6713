"""The queue workload behind our performance targets (docs/architecture.md), through the official client.

`end_to_end`: create N independent tasks with C clients, then claim them with claimWork(tasks=32)
and report each completed with C clients. `pipelined`: P producers and C consumers at once: the
workload the targets were measured with on Taskcluster's own queue service.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import taskcluster
from taskcluster.utils import slugId


def options(root_url: str, **extra: Any) -> dict[str, Any]:
    """Client options for the stack under test, signed as its root client (TASKQUEUE_ROOT_* environment)."""
    opts: dict[str, Any] = {"rootUrl": root_url, **extra}
    token = os.environ.get("TASKQUEUE_ROOT_ACCESS_TOKEN")
    if token:
        opts["credentials"] = {"clientId": os.environ.get("TASKQUEUE_ROOT_CLIENT_ID", "root"), "accessToken": token}
    return opts


def percentile(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(p / 100.0 * len(xs) + 0.5) - 1))
    return xs[k]


@dataclass
class Latencies:
    name: str
    samples: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        s = self.samples
        return {
            "n": len(s),
            "p50_ms": round(percentile(s, 50) * 1000, 1),
            "p90_ms": round(percentile(s, 90) * 1000, 1),
            "p95_ms": round(percentile(s, 95) * 1000, 1),
            "p99_ms": round(percentile(s, 99) * 1000, 1),
            "mean_ms": round(statistics.mean(s) * 1000, 1) if s else None,
        }


def task_def(task_queue_id: str, group: str) -> dict[str, Any]:
    return {
        "taskQueueId": task_queue_id,
        "schedulerId": "bench",
        "taskGroupId": group,
        "created": taskcluster.stringDate(taskcluster.fromNow("0 seconds")),
        "deadline": taskcluster.stringDate(taskcluster.fromNow("2 hours")),
        "expires": taskcluster.stringDate(taskcluster.fromNow("1 day")),
        "payload": {},
        "metadata": {
            "name": "bench",
            "description": "bench",
            "owner": "bench@example.com",
            "source": "https://example.com/bench",
        },
    }


def _split(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def _run_threads(targets: list[tuple[Any, tuple[Any, ...]]]) -> None:
    threads = [threading.Thread(target=t, args=a) for t, a in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def end_to_end(root_url: str, n: int, clients: int) -> dict[str, Any]:
    opts = options(root_url, maxRetries=0)
    tq, group = f"bench/w{uuid.uuid4().hex[:8]}", slugId()
    create, claim, complete = Latencies("createTask"), Latencies("claimWork(32)"), Latencies("reportCompleted")
    lock, errors = threading.Lock(), []
    state: dict[str, float] = {"claimed": 0, "completed": 0}

    def creator(k: int) -> None:
        q = taskcluster.Queue(opts)
        for _ in range(k):
            t0 = time.perf_counter()
            try:
                q.createTask(slugId(), task_def(tq, group))
            except Exception as e:
                with lock:
                    errors.append(repr(e)[:200])
                continue
            with lock:
                create.samples.append(time.perf_counter() - t0)

    def worker(i: int) -> None:
        q = taskcluster.Queue(opts)
        while True:
            with lock:
                if state["claimed"] >= len(create.samples):
                    return
            t0 = time.perf_counter()
            r = q.claimWork(tq, {"tasks": 32, "workerGroup": "bench", "workerId": f"w{i}"})
            with lock:
                claim.samples.append(time.perf_counter() - t0)
                state["claimed"] += len(r["tasks"])
            for c in r["tasks"]:
                t1 = time.perf_counter()
                q.reportCompleted(c["status"]["taskId"], str(c["runId"]))
                with lock:
                    complete.samples.append(time.perf_counter() - t1)
                    state["completed"] += 1
                    state["last_completed"] = time.perf_counter()

    t0 = time.perf_counter()
    _run_threads([(creator, (k,)) for k in _split(n, clients)])
    t1 = time.perf_counter()
    _run_threads([(worker, (i,)) for i in range(clients)])
    t2 = time.perf_counter()
    return {
        "workload": f"end-to-end N={n} clients={clients}",
        "tasks_per_s": round(state["completed"] / (t2 - t0), 1),
        # The same, to the last completion: without clients still in a claimWork long poll (up to
        # 20 s, as Taskcluster's) when the last task was claimed by another client.
        "tasks_per_s_to_last_completion": round(state["completed"] / (state.get("last_completed", t2) - t0), 1),
        "create_per_s": round(len(create.samples) / (t1 - t0), 1),
        "claim_complete_per_s": round(state["completed"] / (t2 - t1), 1),
        "createTask": create.summary(),
        "claimWork": claim.summary(),
        "reportCompleted": complete.summary(),
        "errors": len(errors),
    }


def pipelined(root_url: str, n: int, producers: int, consumers: int) -> dict[str, Any]:
    opts = options(root_url, maxRetries=0)
    tq, group = f"bench/p{uuid.uuid4().hex[:8]}", slugId()
    lock, created_at, e2e, errors = threading.Lock(), {}, Latencies("create->completed"), []
    st: dict[str, float] = {"claimed": 0}

    def producer(k: int) -> None:
        q = taskcluster.Queue(opts)
        for _ in range(k):
            tid = slugId()
            with lock:
                created_at[tid] = time.perf_counter()
            try:
                q.createTask(tid, task_def(tq, group))
            except Exception as e:
                with lock:
                    errors.append(repr(e)[:200])

    def consumer(i: int) -> None:
        q = taskcluster.Queue(opts)
        while True:
            with lock:
                if st["claimed"] >= n:
                    return
            r = q.claimWork(tq, {"tasks": 32, "workerGroup": "bench", "workerId": f"c{i}"})
            with lock:
                st["claimed"] += len(r["tasks"])
            for c in r["tasks"]:
                tid = c["status"]["taskId"]
                q.reportCompleted(tid, str(c["runId"]))
                with lock:
                    e2e.samples.append(time.perf_counter() - created_at[tid])
                    st["last_completed"] = time.perf_counter()

    t0 = time.perf_counter()
    _run_threads([(producer, (k,)) for k in _split(n, producers)] + [(consumer, (i,)) for i in range(consumers)])
    elapsed = time.perf_counter() - t0
    return {
        "workload": f"pipelined N={n} producers={producers} consumers={consumers}",
        "tasks_per_s": round(len(e2e.samples) / elapsed, 1),
        "tasks_per_s_to_last_completion": round(len(e2e.samples) / (st.get("last_completed", t0 + elapsed) - t0), 1),
        "create_to_completed": e2e.summary(),
        "errors": len(errors),
    }
