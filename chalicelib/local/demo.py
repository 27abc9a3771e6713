"""`make run`'s demo: real work through the official taskcluster client.

Creates tasks on a task queue, claims them with claimWork as a worker would, and reports the
outcomes — one completes, one fails, one hits a worker shutdown and is retried — printing each
state change as the queue reports it.
"""

from __future__ import annotations

import time
from typing import Any

import taskcluster
from taskcluster.utils import slugId

TASK_QUEUE = "demo/linux"


def _definition(name: str, priority: str) -> dict[str, Any]:
    return {
        "taskQueueId": TASK_QUEUE,
        "priority": priority,
        "created": taskcluster.stringDate(taskcluster.fromNow("0 seconds")),
        "deadline": taskcluster.stringDate(taskcluster.fromNow("1 hour")),
        "payload": {"command": [["echo", name]]},
        "metadata": {
            "name": name,
            "description": f"demo task {name}",
            "owner": "demo@example.com",
            "source": "https://example.com/taskqueue/demo",
        },
    }


def _runs(status: dict[str, Any]) -> str:
    return ", ".join(
        f"run {r['runId']} {r['state']}" + (f" ({r['reasonResolved']})" if "reasonResolved" in r else "")
        for r in status["runs"]
    )


def _claim(queue: Any, wanted: int) -> list[dict[str, Any]]:
    claims: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while len(claims) < wanted and time.monotonic() < deadline:
        claims += queue.claimWork(
            TASK_QUEUE, {"workerGroup": "demo", "workerId": "worker-1", "tasks": wanted - len(claims)}
        )["tasks"]
    return claims


def run_demo(root_url: str) -> bool:
    queue = taskcluster.Queue({"rootUrl": root_url})
    print(f"\n== demo: tasks on {TASK_QUEUE} through {root_url}", flush=True)
    tasks = {"build": ("high", "complete"), "lint": ("medium", "fail"), "flaky": ("low", "worker-shutdown")}
    ids = {}
    for name, (priority, _) in tasks.items():
        ids[name] = slugId()
        status = queue.createTask(ids[name], _definition(name, priority))["status"]
        print(f"created  {name:6} {ids[name]} priority={priority:7} -> {status['state']}", flush=True)
    print(f"pending on {TASK_QUEUE}: {queue.pendingTasks(TASK_QUEUE)['pendingTasks']}", flush=True)

    claims = _claim(queue, len(tasks))
    by_id = {v: k for k, v in ids.items()}
    for c in claims:
        name = by_id[c["status"]["taskId"]]
        print(f"claimed  {name:6} run {c['runId']} until {c['takenUntil']} (highest priority first)", flush=True)
    for c in claims:
        task_id, run_id, name = c["status"]["taskId"], str(c["runId"]), by_id[c["status"]["taskId"]]
        outcome = tasks[name][1]
        if outcome == "complete":
            status = queue.reportCompleted(task_id, run_id)["status"]
        elif outcome == "fail":
            status = queue.reportFailed(task_id, run_id)["status"]
        else:
            status = queue.reportException(task_id, run_id, {"reason": outcome})["status"]
        print(f"reported {name:6} {outcome:15} -> {status['state']:9} [{_runs(status)}]", flush=True)

    retry = _claim(queue, 1)
    for c in retry:
        status = queue.reportCompleted(c["status"]["taskId"], str(c["runId"]))["status"]
        print(f"retried  flaky  run {c['runId']} completed  -> {status['state']:9} [{_runs(status)}]", flush=True)

    final = {name: queue.status(task_id)["status"]["state"] for name, task_id in ids.items()}
    ok = final == {"build": "completed", "lint": "failed", "flaky": "completed"}
    print(f"final states: {final} {'(as expected)' if ok else '(UNEXPECTED)'}\n", flush=True)
    return run_graph(queue) and ok


def run_graph(queue: Any) -> bool:
    """A task graph: build, three tests that depend on it, a report that depends on the tests."""
    print("== demo: a task graph (build -> test-1..3 -> report)", flush=True)
    group = slugId()
    ids = {name: slugId() for name in ("build", "test-1", "test-2", "test-3", "report")}
    deps = {"build": [], "report": [ids["test-1"], ids["test-2"], ids["test-3"]]}
    for name, task_id in ids.items():
        definition = {
            **_definition(name, "medium"),
            "taskGroupId": group,
            "dependencies": deps.get(name, [ids["build"]]),
        }
        if name == "report":
            definition["requires"] = "all-resolved"  # report even when a test fails
        queue.createTask(task_id, definition)

    def states() -> str:
        return "  ".join(f"{n}={queue.status(t)['status']['state']}" for n, t in ids.items())

    print(f"created:  {states()}", flush=True)
    by_id = {v: k for k, v in ids.items()}
    deadline = time.monotonic() + 60
    while queue.status(ids["report"])["status"]["state"] != "completed" and time.monotonic() < deadline:
        work = queue.claimWork(TASK_QUEUE, {"workerGroup": "demo", "workerId": "worker-2", "tasks": 4})["tasks"]
        for c in work:
            name = by_id[c["status"]["taskId"]]
            if name == "test-2":
                queue.reportFailed(c["status"]["taskId"], str(c["runId"]))
            else:
                queue.reportCompleted(c["status"]["taskId"], str(c["runId"]))
        if work:
            print(f"worked {', '.join(by_id[c['status']['taskId']] for c in work):24} -> {states()}", flush=True)
    listed = queue.listTaskGroup(group)
    done = {t["status"]["state"] for t in listed["tasks"]}
    print(f"task group {group}: {len(listed['tasks'])} tasks, states {sorted(done)}\n", flush=True)
    return bool(queue.status(ids["report"])["status"]["state"] == "completed")
