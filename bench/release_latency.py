"""Dependency release latency: from the last dependency's reportCompleted to the dependent
being claimable by a waiting claimWork."""

from __future__ import annotations

import time
import uuid
from typing import Any

import taskcluster
from taskcluster.utils import slugId

from .workload import Latencies, options, task_def


def measure(root_url: str, samples: int = 50) -> dict[str, Any]:
    queue = taskcluster.Queue(options(root_url, maxRetries=0))
    tq, group = f"bench/l{uuid.uuid4().hex[:8]}", slugId()
    latency = Latencies("release")
    for _ in range(samples):
        dep, dependent = slugId(), slugId()
        queue.createTask(dep, task_def(tq, group))
        queue.createTask(dependent, {**task_def(tq, group), "dependencies": [dep]})
        [claim] = queue.claimWork(tq, {"tasks": 1, "workerGroup": "b", "workerId": "w"})["tasks"]
        assert claim["status"]["taskId"] == dep
        queue.reportCompleted(dep, str(claim["runId"]))
        t0 = time.perf_counter()
        got = queue.claimWork(tq, {"tasks": 1, "workerGroup": "b", "workerId": "w"})["tasks"]
        if got and got[0]["status"]["taskId"] == dependent:
            latency.samples.append(time.perf_counter() - t0)
            queue.reportCompleted(dependent, str(got[0]["runId"]))
    return {"workload": "dependency release: last dependency completed -> dependent claimed", **latency.summary()}
