"""Does the embedded stack stay fast as it fills? createTask and claimWork latency on an empty
task queue, then with DEPTH tasks pending in one task queue."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import taskcluster
from taskcluster.utils import slugId

from .workload import Latencies, options, percentile, task_def


def _sample(queue: Any, tq: str, group: str, samples: int) -> tuple[Latencies, Latencies]:
    create, claim = Latencies("createTask"), Latencies("claimWork(1)")
    for _ in range(samples):
        t0 = time.perf_counter()
        queue.createTask(slugId(), task_def(tq, group))
        create.samples.append(time.perf_counter() - t0)
    time.sleep(1.0)  # the new tasks' hints are dispatched
    for _ in range(samples):
        t0 = time.perf_counter()
        claimed = queue.claimWork(tq, {"tasks": 1, "workerGroup": "b", "workerId": "w"})["tasks"]
        claim.samples.append(time.perf_counter() - t0)
        assert claimed, "claimWork found nothing to claim"
    return create, claim


def _fill(root_url: str, tq: str, group: str, depth: int, threads: int = 4) -> float:
    def worker(k: int) -> None:
        q = taskcluster.Queue(options(root_url, maxRetries=3))
        for _ in range(k):
            q.createTask(slugId(), task_def(tq, group))

    t0 = time.perf_counter()
    ts = [threading.Thread(target=worker, args=(depth // threads + (i < depth % threads),)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.perf_counter() - t0


def measure(root_url: str, depth: int = 10_000, samples: int = 200) -> dict[str, Any]:
    queue = taskcluster.Queue(options(root_url, maxRetries=0))
    group = slugId()
    empty_tq, deep_tq = f"bench/e{uuid.uuid4().hex[:8]}", f"bench/d{uuid.uuid4().hex[:8]}"
    empty_create, empty_claim = _sample(queue, empty_tq, group, samples)
    fill_s = _fill(root_url, deep_tq, group, depth)
    time.sleep(2.0)
    pending = queue.pendingTasks(deep_tq)["pendingTasks"]
    deep_create, deep_claim = _sample(queue, deep_tq, group, samples)

    def ratio(a: Latencies, b: Latencies) -> float:
        return round(percentile(b.samples, 50) / percentile(a.samples, 50), 2)

    return {
        "depth": depth,
        "pending_when_measured": pending,
        "fill_seconds": round(fill_s, 1),
        "empty": {"createTask": empty_create.summary(), "claimWork": empty_claim.summary()},
        "deep": {"createTask": deep_create.summary(), "claimWork": deep_claim.summary()},
        "p50_ratio_deep_to_empty": {
            "createTask": ratio(empty_create, deep_create),
            "claimWork": ratio(empty_claim, deep_claim),
        },
    }
