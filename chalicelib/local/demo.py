"""`make run`'s demo: a task graph run by real workers on this machine.

    build ──> test-1, test-2, test-3 ──> report

`build` produces an artifact; each test downloads it through the queue's API (the 303 to S3) and
checks it; test-3 asks for a retry on its first run (exit code 75, listed in onExitStatus.retry);
`report` gathers the tests' results into an artifact of its own. Nobody starts a worker by hand:
the demo defines the worker pool `demo/linux` on the local provider (minCapacity 0), and the
embedded stack's provisioner starts `python -m worker` processes as tasks wait and ends them once
the pool is idle. The progress of tasks and workers shows live: a table redrawn in place on a
terminal, one plain line per change otherwise (CI=true, TERM=dumb, or output not a terminal).
"""

from __future__ import annotations

import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import taskcluster
from taskcluster.exceptions import TaskclusterRestFailure
from taskcluster.utils import slugId

from taskqueue.progress import Progress, fancy_output

PROVISIONER_ID, WORKER_TYPE = "demo", "linux"
TASK_QUEUE = f"{PROVISIONER_ID}/{WORKER_TYPE}"
GRAPH_TIMEOUT = 180.0  # seconds before the demo gives up on the graph
WORKER_CAPACITY = 2  # task slots per worker process (the launch config's capacityPerInstance)
SCALE_IN_TIMEOUT = 60.0  # seconds the demo watches the idle pool go back to no workers

BUILD = """\
set -e
mkdir -p dist
for i in $(seq 1 500); do echo "object $i: $(echo $i | sha256sum | cut -c1-16)"; done > dist/app.txt
sha256sum dist/app.txt | cut -d' ' -f1 > dist/app.sha256
echo "built dist/app.txt: $(wc -l < dist/app.txt) lines, sha256 $(cat dist/app.sha256)"
"""

# Reads the build's artifacts through the API, as any consumer would (public/: no credentials).
TEST = """\
import hashlib, json, os, sys, urllib.request
name, build = sys.argv[1], os.environ["BUILD_TASK_ID"]
base = f"{os.environ['TASKCLUSTER_ROOT_URL']}/api/queue/v1/task/{build}/artifacts/public/build"
data = urllib.request.urlopen(f"{base}/app.txt").read()
want = urllib.request.urlopen(f"{base}/app.sha256").read().decode().strip()
print(f"{name}: fetched public/build/app.txt from task {build} ({len(data)} bytes)")
ok = hashlib.sha256(data).hexdigest() == want and data.count(b"\\n") == 500
if name == "test-3" and os.environ["RUN_ID"] == "0":
    print("test-3: the network looks flaky on this run: asking for a retry (exit 75)")
    sys.exit(75)
os.makedirs("out", exist_ok=True)
json.dump({"test": name, "ok": ok, "bytes": len(data), "run": os.environ["RUN_ID"]}, open("out/result.json", "w"))
print(f"{name}: {'checksum matches' if ok else 'CHECKSUM MISMATCH'}")
sys.exit(0 if ok else 1)
"""

REPORT = """\
import json, os, urllib.request
root = os.environ["TASKCLUSTER_ROOT_URL"]
lines = []
for name_id in os.environ["TESTS"].split():
    name, task_id = name_id.split("=")
    url = f"{root}/api/queue/v1/task/{task_id}/artifacts/public/test/result.json"
    result = json.load(urllib.request.urlopen(url))
    verdict = "passed" if result["ok"] else "FAILED"
    lines.append(f"{name}: {verdict} (run {result['run']}, {result['bytes']} bytes checked)")
os.makedirs("out", exist_ok=True)
open("out/report.txt", "w").write("\\n".join(lines) + "\\n")
print("\\n".join(lines))
"""


# --- the worker pool -----------------------------------------------------------------------------
def pool_definition(max_workers: int, capacity: int = WORKER_CAPACITY) -> dict[str, Any]:
    """TASK_QUEUE's worker pool on the local provider: none while idle, up to `max_workers`
    reference-worker processes of `capacity` task slots each while there is work."""
    return {
        "providerId": "local",
        "description": "make run's workers: reference-worker processes the provisioner starts and stops",
        "owner": "demo@example.com",
        "emailOnError": False,
        "config": {
            "minCapacity": 0,
            "maxCapacity": max_workers * capacity,
            "lifecycle": {"registrationTimeout": 120, "queueInactivityTimeout": 1200},
            "launchConfigs": [
                {
                    "region": "local",  # the worker group
                    "launchConfig": {"ImageId": "local"},  # the local provider ignores the launch spec
                    "workerManager": {"launchConfigId": "local-python", "capacityPerInstance": capacity},
                    "workerConfig": {},
                }
            ],
        },
    }


def ensure_pool(manager: Any, max_workers: int) -> None:
    """Create TASK_QUEUE's pool, or make an existing one (a stack kept running) what this run says."""
    body = pool_definition(max_workers)
    try:
        manager.createWorkerPool(TASK_QUEUE, body)
    except TaskclusterRestFailure as e:
        if e.status_code != 409:
            raise
        manager.updateWorkerPool(TASK_QUEUE, body)


# --- the graph ------------------------------------------------------------------------------------
def _definition(name: str, group: str, payload: dict[str, Any], deps: list[str]) -> dict[str, Any]:
    return {
        "taskQueueId": TASK_QUEUE,
        "taskGroupId": group,
        "dependencies": deps,
        "created": taskcluster.stringDate(taskcluster.fromNow("0 seconds")),
        "deadline": taskcluster.stringDate(taskcluster.fromNow("1 hour")),
        "retries": 2,
        "payload": payload,
        "metadata": {
            "name": name,
            "description": f"make run's example graph: {name}",
            "owner": "demo@example.com",
            "source": "https://example.com/taskqueue/demo",
        },
    }


def submit_graph(queue: Any) -> tuple[str, dict[str, str]]:
    """Create the graph; returns (taskGroupId, name -> taskId), in the order to show them."""
    group = slugId()
    ids = {name: slugId() for name in ("build", "test-1", "test-2", "test-3", "report")}
    tests = [n for n in ids if n.startswith("test-")]
    queue.createTask(
        ids["build"],
        _definition(
            "build",
            group,
            {
                "command": [["sh", "-c", BUILD]],
                "maxRunTime": 300,
                "artifacts": [
                    {"type": "file", "path": "dist/app.txt", "name": "public/build/app.txt"},
                    {"type": "file", "path": "dist/app.sha256", "name": "public/build/app.sha256"},
                ],
            },
            [],
        ),
    )
    for name in tests:
        payload = {
            "command": [[sys.executable, "-c", TEST, name]],
            "env": {"BUILD_TASK_ID": ids["build"]},
            "maxRunTime": 300,
            "onExitStatus": {"retry": [75]},
            "artifacts": [{"type": "file", "path": "out/result.json", "name": "public/test/result.json"}],
        }
        queue.createTask(ids[name], _definition(name, group, payload, [ids["build"]]))
    report = {
        "command": [[sys.executable, "-c", REPORT]],
        "env": {"TESTS": " ".join(f"{n}={ids[n]}" for n in tests)},
        "maxRunTime": 300,
        "artifacts": [{"type": "file", "path": "out/report.txt", "name": "public/report.txt"}],
    }
    queue.createTask(ids["report"], _definition("report", group, report, [ids[n] for n in tests]))
    return group, ids


# --- progress (the display itself: taskqueue/progress.py) ------------------------------------------
def pool_workers(manager: Any) -> dict[str, str]:
    """TASK_QUEUE's workers as worker-manager lists them: id -> state."""
    listed = manager.listWorkersForWorkerPool(TASK_QUEUE)
    return {w["workerId"]: w["state"] for w in listed["workers"]}


def wait_reason(pending: int, workers: Mapping[str, str], max_workers: int) -> str:
    """Why the pool's pending tasks wait, in a user's words ("" when none does)."""
    if pending <= 0:
        return ""
    tasks = f"{pending} task{'s' if pending != 1 else ''} pending"
    live = [state for state in workers.values() if state != "stopped"]
    if not live:
        return f"{tasks}: no worker yet (the provisioner starts one within seconds)"
    if "requested" in live:
        return f"{tasks}: worker starting"
    if len(live) >= max_workers:
        stopping = live.count("stopping")
        extra = f", {stopping} of them stopping" if stopping else ""
        return f"{tasks}: at maxCapacity ({len(live)} of {max_workers} workers{extra}); they wait for a free slot"
    return f"{tasks}: waiting for a free slot (more workers start if they keep waiting)"


def pool_view(queue: Any, manager: Any, max_workers: int) -> tuple[dict[str, str], str]:
    """The pool's workers and why its tasks wait."""
    workers = pool_workers(manager)
    pending = int(queue.pendingTasks(TASK_QUEUE)["pendingTasks"])
    return workers, wait_reason(pending, workers, max_workers)


def watch(
    queue: Any, manager: Any, group: str, ids: dict[str, str], max_workers: int, stop: threading.Event, out: TextIO
) -> Progress:
    """Show the graph's progress until every task is resolved for good (or GRAPH_TIMEOUT)."""
    progress = Progress(ids, out, fancy_output(out))
    end = time.monotonic() + GRAPH_TIMEOUT
    while not stop.is_set() and time.monotonic() < end:
        listed = queue.listTaskGroup(group)
        workers, waiting = pool_view(queue, manager, max_workers)
        progress.update({t["status"]["taskId"]: t["status"] for t in listed["tasks"]}, workers, waiting)
        if progress.done() == len(ids):
            break
        stop.wait(0.2)
    return progress


def watch_scale_in(
    queue: Any, manager: Any, progress: Progress, max_workers: int, stop: threading.Event
) -> float | None:
    """Keep showing the pool's workers until none is left (the provisioner ends idle workers of a
    pool with minCapacity 0); seconds that took, or None if not within SCALE_IN_TIMEOUT."""
    idle_from = time.monotonic()
    while not stop.is_set() and time.monotonic() - idle_from < SCALE_IN_TIMEOUT:
        progress.update({}, *pool_view(queue, manager, max_workers))
        if not progress.live_workers():
            return time.monotonic() - idle_from
        stop.wait(0.2)
    return None


def follow_pool(root_url: str, credentials: Mapping[str, str], max_workers: int, stop: threading.Event) -> None:
    """After the demo, while the stack serves: one line per change of the pool's workers, and
    why tasks on it wait, for tasks anyone creates on TASK_QUEUE."""
    options = {"rootUrl": root_url, "credentials": dict(credentials)}
    queue, manager = taskcluster.Queue(options), taskcluster.WorkerManager(options)
    progress = Progress({}, sys.stdout, fancy=False)
    progress.workers = {w: s for w, s in pool_workers(manager).items() if s == "stopped"}  # shown already
    while not stop.wait(0.5):
        try:
            progress.update({}, *pool_view(queue, manager, max_workers))
        except (TaskclusterRestFailure, OSError):
            continue  # the stack is going down, or busy: look again


# --- the demo -------------------------------------------------------------------------------------
def run_demo(
    root_url: str, credentials: Mapping[str, str], stop: threading.Event, max_workers: int, worker_logs: Path
) -> bool:
    """Define the pool, submit the graph, show tasks and workers until the pool is idle again, say
    where to look; True when every task completed."""
    out = sys.stdout
    options = {"rootUrl": root_url, "credentials": dict(credentials)}
    queue, manager = taskcluster.Queue(options), taskcluster.WorkerManager(options)
    ensure_pool(manager, max_workers)
    print(f"\n== example task graph on {TASK_QUEUE}: build -> test-1, test-2, test-3 -> report", file=out)
    print(
        f"   worker pool {TASK_QUEUE} (provider local): 0 to {max_workers} workers (python -m worker, capacity "
        f"{WORKER_CAPACITY} each), started by the provisioner while tasks wait",
        file=out,
        flush=True,
    )
    started = time.monotonic()
    group, ids = submit_graph(queue)
    print(f"   watch it in the web inspector: {root_url}/inspector/#/group/{group}", file=out, flush=True)
    progress = watch(queue, manager, group, ids, max_workers, stop, out)
    elapsed = time.monotonic() - started
    ok = all(progress.states.get(n) == "completed" for n in ids)
    scale_in = watch_scale_in(queue, manager, progress, max_workers, stop) if ok else None
    final = ", ".join(f"{n}={progress.states.get(n, '?')}" for n in ids)
    print(f"\ntask group {group}: {final}", file=out)
    print(f"{'all completed' if ok else 'NOT all completed'} in {elapsed:.1f}s (submit to last resolution)", file=out)
    if scale_in is not None:
        print(
            f"worker pool {TASK_QUEUE}: {len(progress.workers)} worker(s) started for the graph, all stopped "
            f"{scale_in:.1f}s after the last task (idle, over the pool's target of 0)",
            file=out,
        )
    api = f"{root_url}/api/queue/v1"
    print("\nlogs and artifacts (latest run of each task; public/, so plain GETs work, e.g. curl -L):", file=out)
    for name, task_id in ids.items():
        print(f"  {name:7} {api}/task/{task_id}/artifacts/public/logs/live.log", file=out)
    print(f"  build   {api}/task/{ids['build']}/artifacts/public/build/app.txt", file=out)
    print(f"  report  {api}/task/{ids['report']}/artifacts/public/report.txt", file=out)
    print(f"  worker logs: {worker_logs}/local-*/worker.log", file=out)
    if progress.states.get("report") == "completed":
        content = queue.latestArtifact(ids["report"], "public/report.txt")
        with urllib.request.urlopen(content["url"], timeout=30) as r:
            report = r.read().decode()
        print("\npublic/report.txt says:\n" + "".join(f"  {line}\n" for line in report.splitlines()), file=out)
    out.flush()
    return ok
