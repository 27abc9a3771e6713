"""Dependency release at scale on the embedded stack: fan-out (one task, N dependents) and fan-in
(N tasks, one dependent).

Each figure is for the release only: the graph is loaded first (the fan-in's dependent through
the API, everything else in bulk, which the release does not care about), then the dependency
resolutions are written and the clock runs until the dependents are pending. Requests are counted
from botocore for the app's own work (stream handler, release queue, API), per dependency edge.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import boto3
import taskcluster
from taskcluster.utils import slugId

from chalicelib import container
from chalicelib.adapters.graph_store import DynamoGraphStore
from chalicelib.adapters.task_store import DynamoTaskStore
from chalicelib.domain import transitions
from chalicelib.domain.definition import new_task, normalize
from chalicelib.domain.model import ReasonResolved, Task, TaskState, Worker
from chalicelib.local.stack import EmbeddedStack

from .requests import counting_requests, per_task
from .workload import options

_setup = threading.local()  # requests made while set-up runs are not the release's


def _definition(c: container.Container, task_id: str, tq: str, group: str, deps: list[str]) -> dict[str, Any]:
    now = c.clock.now()
    body = {
        "taskQueueId": tq,
        "taskGroupId": group,
        "dependencies": deps,
        "created": taskcluster.stringDate(now),
        "deadline": taskcluster.stringDate(now + timedelta(hours=2)),
        "expires": taskcluster.stringDate(now + timedelta(days=1)),
        "payload": {},
        "metadata": {
            "name": "graph",
            "description": "",
            "owner": "bench@example.com",
            "source": "https://example.com/bench",
        },
    }
    return normalize(
        task_id,
        {
            **body,
            "schedulerId": "-",
            "projectId": "none",
            "requires": "all-completed",
            "routes": [],
            "priority": "lowest",
            "retries": 0,
            "scopes": [],
            "tags": {},
            "extra": {},
        },
        now,
        5,
    )


def _bulk_tasks(c: container.Container) -> DynamoTaskStore:
    store = c.queue.store
    assert isinstance(store, DynamoTaskStore)
    return store


def _bulk_graph(c: container.Container) -> DynamoGraphStore:
    graph = c.dependencies.graph
    assert isinstance(graph, DynamoGraphStore)
    return graph


def _wait_idle(stack: EmbeddedStack, since: float, timeout: float = 600) -> None:
    """Until the event pump has found nothing to do after `since`."""
    end = time.monotonic() + timeout
    while stack.pump_idle_since() < since:
        if time.monotonic() > end:
            raise TimeoutError("the event pump never went idle")
        time.sleep(0.05)


def _largest_item(region: str, tables: list[str]) -> int:
    """Bytes of the largest item in the tables (attribute names + values, as DynamoDB sizes them)."""
    ddb = boto3.client("dynamodb", region_name=region)
    largest = 0
    for table in tables:
        for page in ddb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                largest = max(largest, sum(len(k) + len(str(v)) for k, v in item.items()))
    return largest


def _count(stack: EmbeddedStack, edges: int, act: Any, done: Any) -> dict[str, Any]:
    started = time.monotonic()
    with counting_requests(ignore=lambda: getattr(_setup, "on", False)) as counts:
        t0 = time.perf_counter()
        act()
        t_resolved = time.perf_counter()
        _setup.on = True  # watching is not the release's work
        while not done():
            time.sleep(0.02)
        _setup.on = False
        t_pending = time.perf_counter()
        _wait_idle(stack, time.monotonic())
    ops = per_task(counts, edges)
    return {
        "edges": edges,
        "requests_per_edge": ops,
        "requests_per_edge_total": round(sum(ops.values()), 2),
        "resolution_write_s": round(t_resolved - t0, 2),
        "last_resolution_to_dependents_pending_s": round(t_pending - t_resolved, 2),
        "ms_per_edge": round((t_pending - t_resolved) * 1000 / edges, 2),
        "wall_s": round(time.monotonic() - started, 1),
    }


def fan_out(stack: EmbeddedStack, n: int) -> dict[str, Any]:
    c = container.get()
    queue = taskcluster.Queue(options(stack.root_url, maxRetries=0))
    tq, group = f"bench/fo{slugId()[:6].lower().replace('_', 'x').replace('-', 'x')}", slugId()
    root = slugId()
    _setup.on = True
    queue.createTask(root, {k: v for k, v in _definition(c, root, tq, group, []).items()})
    deps = [slugId() for _ in range(n)]
    tasks = [new_task(d, _definition(c, d, tq, group, [root])) for d in deps]
    _bulk_graph(c).add_edges_many((t.task_id, "", "all-completed", [root], 1, t.expires) for t in tasks)
    _bulk_tasks(c).put_many(tasks)
    claim = queue.claimWork(tq, {"tasks": 1, "workerGroup": "b", "workerId": "w"})["tasks"][0]
    _setup.on = False
    _wait_idle(stack, time.monotonic())

    last = max(deps)  # release walks dependents in taskId order: this one is released last

    def resolve() -> None:
        queue.reportCompleted(root, str(claim["runId"]))

    def released() -> bool:
        task = c.queue.store.get(last)
        return task is not None and task.state is TaskState.PENDING

    result = {"workload": f"fan-out 1 -> {n}", **_count(stack, n, resolve, released)}
    result["dependents_pending"] = queue.pendingTasks(tq)["pendingTasks"]
    return result


def fan_in(stack: EmbeddedStack, n: int) -> dict[str, Any]:
    c = container.get()
    queue = taskcluster.Queue(options(stack.root_url, maxRetries=0))
    tq, group = f"bench/fi{slugId()[:6].lower().replace('_', 'x').replace('-', 'x')}", slugId()
    now = c.clock.now()
    worker = Worker("b", "w")
    _setup.on = True
    deps = [slugId() for _ in range(n)]
    running = [
        transitions.claim(
            transitions.schedule(new_task(d, _definition(c, d, tq, group, [])), now), 0, worker, now, timedelta(hours=1)
        )
        for d in deps
    ]
    _bulk_tasks(c).put_many(running)
    dependent = slugId()
    t0 = time.perf_counter()
    queue.createTask(dependent, _definition_body(c, dependent, tq, group, deps))
    create_s = time.perf_counter() - t0
    _setup.on = False
    _wait_idle(stack, time.monotonic())
    completed = [transitions.resolve(t, 0, ReasonResolved.COMPLETED, now) for t in running]

    def resolve() -> None:
        # Every dependency completes at once: the last resolution is in the last batch written.
        _bulk_tasks(c).put_many([_bumped(t) for t in completed])

    def released() -> bool:
        task = c.queue.store.get(dependent)
        return task is not None and task.state is TaskState.PENDING

    return {
        "workload": f"fan-in {n} -> 1",
        "create_dependent_s": round(create_s, 2),
        **_count(stack, n, resolve, released),
    }


def _bumped(task: Task) -> Task:
    return Task(task.task_id, task.definition, task.priority, task.retries_left, task.runs, task.version + 1)


def _definition_body(c: container.Container, task_id: str, tq: str, group: str, deps: list[str]) -> dict[str, Any]:
    d = _definition(c, task_id, tq, group, deps)
    return {
        k: d[k]
        for k in ("taskQueueId", "taskGroupId", "dependencies", "created", "deadline", "expires", "payload", "metadata")
    }


def measure(stack: EmbeddedStack, n: int) -> list[dict[str, Any]]:
    results = [fan_out(stack, n), fan_in(stack, n)]
    settings = container.get().settings
    for r in results:
        r["largest_item_bytes"] = _largest_item(settings.region, [settings.tasks_table, settings.graph_table])
    return results
