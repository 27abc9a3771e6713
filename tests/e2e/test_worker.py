"""The reference worker (`python -m worker`) against the embedded stack, one outcome per test.

One stack serves the module (`python -m chalicelib.local serve`, claims of 4 s so reclaims happen
within a test); one long-lived worker in sqs mode runs the outcomes that leave it running
(completed, failed, retry exit code, malformed payload, image without Docker, maxRunTime, cancel);
the outcomes that end a worker (SIGTERM, spot notice, refused credentials) get their own. Tests
check what users see: task states, the live log, artifacts, and that no task process survives.
Waits are bounded polls, never fixed sleeps; nothing asserts on durations.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import slugid
from taskcluster.exceptions import TaskclusterRestFailure

from tests.e2e.test_embedded_stack import ROOT_TOKEN, Served, eventually, iso, running, runs, serving

PROJECT_DIR = Path(__file__).resolve().parents[2]
PROVISIONER = "e2e-worker"
ENV = {
    "TASKQUEUE_CLAIM_TIMEOUT": "4",  # the worker reclaims every ~2 s
    "TASKQUEUE_CLAIM_WORK_TIMEOUT": "2",  # claimWork long-polls briefly: a stopping worker exits soon
    "TASKQUEUE_SWEEP_INTERVAL": "0.2",
    "TASKQUEUE_ROOT_ACCESS_TOKEN": ROOT_TOKEN,
}
WAIT = 30.0  # bound on any one wait for the worker
WORKER_EXIT = 20.0


# --- the stack and workers ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving(ENV) as s:
        yield s


@dataclass
class WorkerProc:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=WORKER_EXIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the worker did not exit within {WORKER_EXIT:.0f}s:\n{self.log()}")


def worker_env(served: Served, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TASKCLUSTER_"))}
    aws = served.text().split("AWS stand-in: ", 1)[1].split()[0]
    env.update(
        AWS_ENDPOINT_URL=aws,
        AWS_ACCESS_KEY_ID="embedded",
        AWS_SECRET_ACCESS_KEY="embedded",
        AWS_DEFAULT_REGION="us-east-1",
        TASKCLUSTER_ROOT_URL=served.root_url,
        TASKCLUSTER_CLIENT_ID="root",
        TASKCLUSTER_ACCESS_TOKEN=ROOT_TOKEN,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def start_worker(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., WorkerProc]]:
    started: list[WorkerProc] = []

    def start(worker_type: str, *args: str, env: dict[str, str] | None = None) -> WorkerProc:
        tmp = tmp_path_factory.mktemp(worker_type)
        log_path = tmp / "worker.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "worker", "--provisioner-id", PROVISIONER, "--worker-type", worker_type,
                 "--worker-id", worker_type, "--work-dir", str(tmp / "work"), "--live-log-interval", "0.3",
                 "--poll-seconds", "1", *args],
                cwd=PROJECT_DIR,
                env=env or worker_env(served),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        started.append(WorkerProc(proc, log_path))
        return started[-1]

    try:
        yield start
    finally:
        for w in started:
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait()


@pytest.fixture(scope="module")
def shared(start_worker: Callable[..., WorkerProc]) -> Iterator[WorkerProc]:
    """The worker of most tests: sqs mode, 4 tasks at once, on e2e-worker/shared."""
    worker = start_worker("shared", "--capacity", "4")
    yield worker
    assert worker.stop() == 0, worker.log()


# --- helpers --------------------------------------------------------------------------------------
def create(served: Served, worker_type: str, payload: Any, **extra: Any) -> str:
    now = datetime.now(UTC)
    task_id: str = slugid.nice()
    served.queue().createTask(
        task_id,
        {
            "taskQueueId": f"{PROVISIONER}/{worker_type}",
            "created": iso(now),
            "deadline": iso(now + timedelta(minutes=10)),
            "payload": payload,
            "metadata": {"name": f"e2e {worker_type}", "description": "", "owner": "me@example.com",
                         "source": "https://example.com/e2e"},
            **extra,
        },
    )  # fmt: skip
    return task_id


def resolved(served: Served, task_id: str, worker: WorkerProc, run_id: int = 0) -> dict[str, Any]:
    """The task's status once run `run_id` is resolved."""

    def check() -> dict[str, Any] | None:
        status: dict[str, Any] = served.queue().status(task_id)["status"]
        done = len(status["runs"]) > run_id and status["runs"][run_id]["state"] not in ("pending", "running")
        return status if done else None

    return eventually(check, WAIT, f"run {run_id} of {task_id} to be resolved; worker log:\n{worker.log()}")


def artifact_text(served: Served, task_id: str, name: str, run_id: int = 0) -> str | None:
    try:
        url = served.queue().artifact(task_id, str(run_id), name)["url"]
    except TaskclusterRestFailure:
        return None
    r = requests.get(url, timeout=30)
    return r.text if r.status_code == 200 else None


def live_log(served: Served, task_id: str, run_id: int = 0) -> str:
    return artifact_text(served, task_id, "public/logs/live.log", run_id) or ""


def log_showing(served: Served, task_id: str, text: str, worker: WorkerProc, run_id: int = 0) -> str:
    """The live log, as soon as it shows `text` (it is uploaded while the task runs)."""

    def check() -> str | None:
        log = live_log(served, task_id, run_id)
        return log if text in log else None

    return eventually(check, WAIT, f"{text!r} in the live log of {task_id}; worker log:\n{worker.log()}")


def no_process(marker: str) -> bool:
    return not running(lambda cmd: marker in cmd)


def sleeper(marker: int) -> list[list[str]]:
    """A command that starts a background child and then sleeps: a process tree to kill."""
    return [["sh", "-c", f"sleep {marker} & echo started; sleep {marker}"]]


# --- outcomes (shared worker) ---------------------------------------------------------------------
def test_a_task_completes_with_its_artifacts_and_live_log(served: Served, shared: WorkerProc) -> None:
    script = 'echo "hello from $TASK_ID run $RUN_ID"; mkdir -p out/sub; echo \'{"ok": true}\' > out/result.json; ' \
        "echo page > out/sub/index.html"  # fmt: skip
    task_id = create(
        served,
        "shared",
        {
            "command": [["sh", "-c", script], ["echo", "second command"]],
            "maxRunTime": 60,
            "artifacts": [
                {"type": "file", "path": "out/result.json", "name": "public/result.json"},
                {"type": "directory", "path": "out/sub", "name": "public/site"},
                {"type": "file", "path": "not/there.txt", "name": "public/optional.txt", "optional": True},
            ],
        },
    )
    status = resolved(served, task_id, shared)
    assert (status["state"], runs(status)) == ("completed", [(0, "completed", "scheduled", "completed")])
    assert status["runs"][0]["workerId"] == "shared"

    log = live_log(served, task_id)
    assert f"task {task_id} run 0 ('e2e shared') on worker local/shared, task queue e2e-worker/shared" in log
    assert "command 1/2: sh -c" in log and "command 2/2: echo 'second command'" in log
    assert f"hello from {task_id} run 0" in log and "second command\n" in log
    assert log.count("exit status 0") == 2
    assert log.rstrip().endswith("result: completed")

    listed = {a["name"]: a for a in served.queue().listArtifacts(task_id, "0")["artifacts"]}
    assert {n: (a["storageType"], a.get("contentType")) for n, a in listed.items()} == {
        "public/logs/live.log": ("s3", "text/plain; charset=utf-8"),
        "public/result.json": ("s3", "application/json"),
        "public/site/index.html": ("s3", "text/html"),
        "public/optional.txt": ("error", "application/binary"),  # as Taskcluster lists error artifacts
    }
    assert json.loads(artifact_text(served, task_id, "public/result.json") or "null") == {"ok": True}
    assert artifact_text(served, task_id, "public/site/index.html") == "page\n"


def test_a_non_zero_exit_fails_the_task_and_skips_the_rest(served: Served, shared: WorkerProc) -> None:
    task_id = create(served, "shared", {"command": [["sh", "-c", "echo oops >&2; exit 3"], ["echo", "never"]],
                                        "maxRunTime": 60})  # fmt: skip
    status = resolved(served, task_id, shared)
    assert (status["state"], runs(status)) == ("failed", [(0, "failed", "scheduled", "failed")])
    log = live_log(served, task_id)
    assert "oops" in log and "exit status 3" in log and "never" not in log
    assert log.rstrip().endswith("result: failed")


def test_an_exit_code_listed_for_retry_makes_an_intermittent_exception_and_a_new_run(
    served: Served, shared: WorkerProc
) -> None:
    # Run 0 exits 75 (listed): exception/intermittent-task, retried; run 1 succeeds.
    payload = {"command": [["sh", "-c", 'test "$RUN_ID" = 1 || exit 75']], "maxRunTime": 60,
               "onExitStatus": {"retry": [75]}}  # fmt: skip
    task_id = create(served, "shared", payload, retries=1)
    status = resolved(served, task_id, shared, run_id=1)
    assert runs(status) == [
        (0, "exception", "scheduled", "intermittent-task"),
        (1, "completed", "task-retry", "completed"),  # Taskcluster: the task asked for it
    ]
    assert "exit status 75" in live_log(served, task_id, 0)
    assert "result: exception/intermittent-task" in live_log(served, task_id, 0)
    assert "exit status 0" in live_log(served, task_id, 1)


def test_a_malformed_payload_is_an_exception_with_the_error_in_the_log(served: Served, shared: WorkerProc) -> None:
    task_id = create(served, "shared", {"command": [["echo", 7]], "maxRunTime": 60})
    status = resolved(served, task_id, shared)
    assert (status["state"], runs(status)) == ("exception", [(0, "exception", "scheduled", "malformed-payload")])
    log = live_log(served, task_id)
    assert "malformed payload: payload.command[0][1] must be a string, got int" in log
    assert "command 1/" not in log


def test_an_image_payload_without_a_docker_engine_is_refused_not_run_on_the_host(
    served: Served, shared: WorkerProc
) -> None:
    task_id = create(served, "shared", {"image": "alpine", "command": [["touch", "/tmp/ran"]], "maxRunTime": 60})
    status = resolved(served, task_id, shared)
    assert runs(status) == [(0, "exception", "scheduled", "resource-unavailable")]
    assert "this worker has no Docker engine; refusing to run the commands on the host" in live_log(served, task_id)


def test_exceeding_max_run_time_kills_the_process_tree_and_fails(served: Served, shared: WorkerProc) -> None:
    marker = 3571 + os.getpid() % 100
    # Outlives a claim (4 s): the run stays its own only because the worker reclaims it.
    task_id = create(served, "shared", {"command": sleeper(marker), "maxRunTime": 5})
    status = resolved(served, task_id, shared)
    assert (status["state"], runs(status)) == ("failed", [(0, "failed", "scheduled", "failed")])
    log = live_log(served, task_id)
    assert "started" in log and "maxRunTime of 5s exceeded: process tree killed" in log
    assert f"reclaimed task={task_id} run=0" in shared.log()
    assert no_process(f"sleep {marker}"), running(lambda cmd: f"sleep {marker}" in cmd)


def test_cancelling_a_running_task_stops_it_and_nothing_is_reported(served: Served, shared: WorkerProc) -> None:
    marker = 4591 + os.getpid() % 100
    task_id = create(served, "shared", {"command": sleeper(marker), "maxRunTime": 120})
    log_showing(served, task_id, "started\n", shared)  # readable while the task runs
    served.queue().cancelTask(task_id)

    log = log_showing(served, task_id, "result: none reported", shared)
    assert "stopped: cancelled by the queue" in log
    assert f"reclaim-refused task={task_id} run=0" in shared.log()
    status = served.queue().status(task_id)["status"]
    assert runs(status) == [(0, "exception", "scheduled", "canceled")]
    eventually(lambda: no_process(f"sleep {marker}"), 5, f"sleep {marker} to be gone")


# --- outcomes that end a worker -------------------------------------------------------------------
def test_sigterm_kills_running_tasks_and_reports_worker_shutdown(
    served: Served, start_worker: Callable[..., WorkerProc]
) -> None:
    worker = start_worker("sigterm", "--claim-mode", "claim-work")
    first = create(served, "sigterm", {"command": [["true"]], "maxRunTime": 60})
    assert runs(resolved(served, first, worker)) == [(0, "completed", "scheduled", "completed")]

    marker = 5557 + os.getpid() % 100
    task_id = create(served, "sigterm", {"command": sleeper(marker), "maxRunTime": 120})
    log_showing(served, task_id, "started\n", worker)
    assert worker.stop(signal.SIGTERM) == 0, worker.log()

    status = served.queue().status(task_id)["status"]
    assert runs(status) == [(0, "exception", "scheduled", "worker-shutdown"), (1, "pending", "retry", None)]
    assert "stopped: worker shutting down" in live_log(served, task_id)
    assert "worker-stopping reason=sigterm running=1" in worker.log()
    assert "worker-stopped reason=sigterm exit=0" in worker.log()
    assert no_process(f"sleep {marker}")
    served.queue().cancelTask(task_id)


class SpotMetadata(BaseHTTPRequestHandler):
    """EC2's instance metadata, as far as spot notices go: IMDSv2 token, then 404 or the notice."""

    notice: dict[str, str] | None = None
    tokens_seen: list[str | None] = []

    def do_PUT(self) -> None:
        self._answer(200, b"token-1") if self.path == "/latest/api/token" else self._answer(404, b"")

    def do_GET(self) -> None:
        SpotMetadata.tokens_seen.append(self.headers.get("X-aws-ec2-metadata-token"))
        if self.path == "/latest/meta-data/spot/instance-action" and SpotMetadata.notice is not None:
            self._answer(200, json.dumps(SpotMetadata.notice).encode())
        else:
            self._answer(404, b"Not Found")

    def _answer(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_spot_interruption_notice_kills_running_tasks_and_reports_worker_shutdown(
    served: Served, start_worker: Callable[..., WorkerProc]
) -> None:
    metadata = ThreadingHTTPServer(("127.0.0.1", 0), SpotMetadata)
    threading.Thread(target=metadata.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{metadata.server_address[1]}/latest/meta-data/spot/instance-action"
        worker = start_worker("spot", "--spot-notice-url", url, "--spot-poll-interval", "0.2")
        marker = 6661 + os.getpid() % 100
        task_id = create(served, "spot", {"command": sleeper(marker), "maxRunTime": 120})
        log_showing(served, task_id, "started\n", worker)
        SpotMetadata.notice = {"action": "terminate", "time": iso(datetime.now(UTC) + timedelta(minutes=2))}
        try:
            assert worker.proc.wait(timeout=WAIT) == 0, worker.log()
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker did not act on the spot notice:\n{worker.log()}")
    finally:
        metadata.shutdown()
        metadata.server_close()

    status = served.queue().status(task_id)["status"]
    assert runs(status) == [(0, "exception", "scheduled", "worker-shutdown"), (1, "pending", "retry", None)]
    assert "spot-interruption-notice" in worker.log() and "reason=spot-interruption" in worker.log()
    assert "stopped: worker shutting down" in live_log(served, task_id)
    assert "token-1" in SpotMetadata.tokens_seen  # IMDSv2: asked with a session token
    assert no_process(f"sleep {marker}")
    served.queue().cancelTask(task_id)


# --- configuration --------------------------------------------------------------------------------
def test_refused_credentials_stop_the_worker_with_a_clear_error(
    served: Served, start_worker: Callable[..., WorkerProc]
) -> None:
    env = worker_env(served, TASKCLUSTER_ACCESS_TOKEN=f"wrong-{uuid.uuid4()}")
    worker = start_worker("badcreds", "--claim-mode", "claim-work", env=env)
    try:
        assert worker.proc.wait(timeout=WAIT) == 1, worker.log()
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker kept going with refused credentials:\n{worker.log()}")
    assert "credentials-refused status=401" in worker.log()


def test_bad_configuration_exits_2_with_a_message() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKCLUSTER_")}
    result = subprocess.run(
        [sys.executable, "-m", "worker", "--provisioner-id", "p", "--worker-type", "t", "--capacity", "2"],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == "python -m worker: error: no root URL: pass --root-url or set TASKCLUSTER_ROOT_URL"
