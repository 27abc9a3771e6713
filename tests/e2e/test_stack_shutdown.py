"""How the embedded stack ends while a provisioned worker runs a task.

`python -m chalicelib.local serve` runs as a terminal's foreground job would: the leader of its own
process group. A pool on the local provider gets a worker from the provisioner, which claims a long
task. Then:
- Ctrl-C (SIGINT to the whole process group, as the terminal sends it): the stack stops the worker
  first, which reports its run exception/worker-shutdown through the API, then the API, then the
  AWS stand-in; nothing prints a traceback and no process is left.
- kill -9 of the stack's main process alone: the stand-in and the worker (and its task) exit by
  themselves within seconds.
Waits are bounded polls; nothing asserts on durations but those bounds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import slugid
import taskcluster

from chalicelib.local.demo import TASK_QUEUE, ensure_pool
from tests.harness import (
    ROOT_CLIENT,
    ROOT_TOKEN,
    Served,
    alive,
    answers,
    descendants,
    eventually,
    serving,
    task_def_now,
)

ENV = {
    "TASKQUEUE_ROOT_ACCESS_TOKEN": ROOT_TOKEN,
    "TASKQUEUE_PROVISION_INTERVAL": "0.5",  # the worker comes soon after the task
    "TASKQUEUE_LOG_LEVEL": "WARNING",
}
RUNNING_TIMEOUT = 90.0  # the provisioner starts a worker, which registers and claims the task
EXIT_TIMEOUT = 60.0  # the stack stopping its worker (which reports), its API and its stand-in
ORPHAN_TIMEOUT = 15.0  # the stand-in and the worker noticing their parent is gone


@dataclass
class Running:
    served: Served
    task_id: str
    work_dir: Path  # the local provider's (TMPDIR points under tmp_path)
    processes: dict[int, str]  # every process below the stack while the task runs: pid -> command line

    def left(self) -> dict[int, str]:
        return {pid: cmd for pid, cmd in self.processes.items() if alive(pid, cmd)}

    def worker_log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.work_dir.glob("taskqueue-workers-*/*/worker.log"))


@contextmanager
def running_a_task(tmp_path: Path) -> Iterator[Running]:
    """The stack, serving in its own process group, with a worker running a long task; always ended
    (whatever of it is left, by its id)."""
    with serving({**ENV, "TMPDIR": str(tmp_path)}, own_group=True) as served:
        options = {"rootUrl": served.root_url, "credentials": ROOT_CLIENT}
        ensure_pool(taskcluster.WorkerManager(options), max_workers=1)
        task = task_def_now(TASK_QUEUE)
        task["payload"] = {"command": [["sleep", "300"]], "maxRunTime": 600}
        task_id = slugid.nice()
        queue = served.queue()
        queue.createTask(task_id, task)
        pid = served.proc.pid
        eventually(lambda: queue.status(task_id)["status"]["state"] == "running", RUNNING_TIMEOUT, "the task to run")
        eventually(lambda: any("sleep 300" in cmd for cmd in descendants(pid).values()), 30, "the task's process")
        served.children.update(descendants(pid))
        processes = dict(served.children)
        assert answers(f"{served.aws_endpoint}/moto-api/"), "the stand-in does not answer"
        assert any(" -m worker " in cmd for cmd in processes.values()), processes
        yield Running(served, task_id, tmp_path, processes)


def test_ctrl_c_stops_the_worker_then_the_api_then_the_stand_in_cleanly(tmp_path: Path) -> None:
    with running_a_task(tmp_path) as r:
        os.killpg(r.served.proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        interrupted = time.monotonic()
        try:
            code = r.served.proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the stack did not exit within {EXIT_TIMEOUT:.0f}s:\n{r.served.text()}") from None
        assert r.served.reader is not None
        r.served.reader.join(timeout=10)
        out = r.served.text()
        assert code == 0, out
        assert "Traceback" not in out and "Error" not in out, out
        assert out.rstrip().endswith("stopped"), out
        log = r.worker_log()
        assert f"task-resolved task={r.task_id} run=0 outcome=exception/worker-shutdown" in log, log
        assert "report-failed" not in log, log
        eventually(lambda: not r.left(), 5, "every process the stack started to exit")
        print(f"Ctrl-C: the stack exited after {time.monotonic() - interrupted:.1f} s")


def test_when_the_stacks_main_process_is_killed_the_stand_in_and_the_worker_exit_too(tmp_path: Path) -> None:
    with running_a_task(tmp_path) as r:
        r.served.proc.kill()  # SIGKILL to the main process alone: nothing of it runs again
        r.served.proc.wait()
        killed = time.monotonic()
        while r.left() and time.monotonic() < killed + ORPHAN_TIMEOUT:
            time.sleep(0.1)
        assert not r.left(), f"still running {ORPHAN_TIMEOUT:.0f}s after the stack was killed: {r.left()}"
        print(f"every process of the stack gone {time.monotonic() - killed:.1f} s after kill -9")
