"""The reference worker's latency on the embedded stack, and `make run`'s graph end to end.

    .venv/bin/python -m bench.worker_latency [--samples 20] [--graphs 3]

1. Pending → started: an idle worker (capacity 1) waits; a task is created (pending at once) and
   its command writes the wall-clock time it starts. Figures: createTask sent → claimed (the run's
   `started`, server clock) and → the command running; once per claim mode (sqs, claim-work).
2. The example graph of `make run` (build → 3 tests → report) on its worker pool (the local
   provider, at most 2 workers of capacity 2): submit → last task resolved, the first time from
   no workers at all (the provisioner starts them), then again at once (workers still up).
Not part of `make bench`; prints its figures only.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import taskcluster
from taskcluster.utils import slugId

from chalicelib.config import Settings
from chalicelib.local.demo import ensure_pool, submit_graph, watch
from chalicelib.local.stack import PROJECT_DIR, EmbeddedStack, free_port


def summary(values: list[float]) -> str:
    if not values:
        return "no samples"
    values = sorted(values)
    p90 = values[min(len(values) - 1, round(0.9 * (len(values) - 1)))]
    return (
        f"p50 {statistics.median(values) * 1000:6.0f} ms   p90 {p90 * 1000:6.0f} ms   "
        f"max {values[-1] * 1000:6.0f} ms   (n={len(values)})"
    )


def wait_until(check: Callable[[], object], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise TimeoutError(what)
        time.sleep(0.005)


def written(path: Path) -> Callable[[], bool]:
    return lambda: path.exists() and bool(path.read_text().strip())


def completed(queue: taskcluster.Queue, task_id: str) -> Callable[[], bool]:
    return lambda: bool(queue.status(task_id)["status"]["state"] == "completed")


def pending_to_started(stack: EmbeddedStack, mode: str, samples: int) -> tuple[list[float], list[float]]:
    worker_type = f"lat-{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix="worker-latency-"))
    creds = stack.credentials
    env = {
        **os.environ,
        "TASKCLUSTER_ROOT_URL": stack.root_url,
        "TASKCLUSTER_CLIENT_ID": creds["clientId"],
        "TASKCLUSTER_ACCESS_TOKEN": creds["accessToken"],
    }
    log = tmp / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "worker", "--provisioner-id", "bench", "--worker-type", worker_type,
             "--claim-mode", mode, "--work-dir", str(tmp / "work")],
            cwd=PROJECT_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    queue = taskcluster.Queue({"rootUrl": stack.root_url, "credentials": creds})
    claimed: list[float] = []
    started: list[float] = []
    try:
        wait_until(lambda: "worker-started" in log.read_text(), 30, "the worker to start")
        for i in range(samples + 1):  # the first creates the task queue's hint queue: not counted
            time.sleep(random.uniform(0.3, 0.8))  # the worker is waiting, somewhere in its poll
            mark = tmp / f"start-{i}"
            task_id = slugId()
            definition = {
                "taskQueueId": f"bench/{worker_type}",
                "created": taskcluster.stringDate(taskcluster.fromNow("0 seconds")),
                "deadline": taskcluster.stringDate(taskcluster.fromNow("1 hour")),
                "payload": {"command": [["sh", "-c", f"date +%s.%N > {mark}"]], "maxRunTime": 60},
                "metadata": {"name": "latency", "description": "", "owner": "b@example.com", "source": "https://x.y"},
            }
            t0 = time.time()
            queue.createTask(task_id, definition)
            wait_until(written(mark), 60, f"task {i} to start")
            t_start = float(mark.read_text())
            wait_until(completed(queue, task_id), 60, f"task {i} to complete")
            run = queue.status(task_id)["status"]["runs"][0]
            t_claim = datetime.fromisoformat(run["started"].replace("Z", "+00:00")).timestamp()
            if i:
                claimed.append(t_claim - t0)
                started.append(t_start - t0)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    return claimed, started


def graph_end_to_end(stack: EmbeddedStack, runs: int) -> list[float]:
    options = {"rootUrl": stack.root_url, "credentials": stack.credentials}
    queue, manager = taskcluster.Queue(options), taskcluster.WorkerManager(options)
    ensure_pool(manager, max_workers=2)
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        group, ids = submit_graph(queue)
        progress = watch(queue, manager, group, ids, 2, threading.Event(), io.StringIO())
        assert all(progress.states[n] == "completed" for n in ids), progress.states
        times.append(time.monotonic() - t0)
    print(f"  (worker logs: {stack.provider.work_dir}/local-*/worker.log)")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20, help="tasks per claim mode (default 20)")
    parser.add_argument("--graphs", type=int, default=3, help="runs of the example graph (default 3)")
    args = parser.parse_args()
    stack = EmbeddedStack(port=free_port())
    stack.start()
    try:
        print("pending -> started, one idle worker (capacity 1), createTask sent = t0:")
        for mode in ("sqs", "claim-work"):
            claimed, started = pending_to_started(stack, mode, args.samples)
            print(f"  {mode:10}  claimed:         {summary(claimed)}")
            print(f"  {'':10}  command running: {summary(started)}")
        print("make run's example graph (build -> 3 tests -> report), pool of <= 2 workers x capacity 2,")
        print(f"submit -> all resolved (provisioner every {Settings.from_env().provision_interval:g}s):")
        times = graph_end_to_end(stack, args.graphs)
        print(f"  from no workers: {times[0]:.1f}s")
        if times[1:]:
            print("  workers up:      " + "  ".join(f"{t:.1f}s" for t in times[1:]))
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
