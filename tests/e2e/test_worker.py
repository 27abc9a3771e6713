"""The reference worker (`python -m worker`) against the embedded stack, one outcome per test.

One stack serves the module (`python -m chalicelib.local serve`, claims of 4 s so reclaims happen
within a test); one long-lived worker in sqs mode runs the outcomes that leave it running
(completed, failed, retry exit code, malformed payload, image without Docker, maxRunTime, cancel);
the outcomes that end a worker (SIGTERM, spot notice, refused credentials) get their own; so do
provisioned workers (`--user-data`), which register with a worker-manager stand-in on loopback
(harness.FakeWorkerManager) that hands out temporary credentials made from the root client and
forwards every queue call to the stack, Host header kept, so the worker's Hawk signatures verify
there. Tests check what users see: task states, the live log, artifacts, and that no task process
survives. Waits are bounded polls, never fixed sleeps; nothing asserts on durations.
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
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import taskcluster

from chalicelib.domain.pools import worker_credential_scopes
from tests.harness import (
    PROJECT_DIR,
    ROOT_TOKEN,
    WORKER_ENV,
    WORKER_WAIT,
    FakeWorkerManager,
    Served,
    WorkerProc,
    artifact_text,
    create_for_worker,
    eventually,
    iso,
    live_log,
    log_showing,
    no_process,
    resolved,
    running,
    runs,
    serving,
    sleeper,
    worker_env,
    worker_starter,
)


# --- the stack and workers ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving(WORKER_ENV) as s:
        yield s


@pytest.fixture(scope="module")
def start_worker(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., WorkerProc]]:
    with worker_starter(served, tmp_path_factory) as start:
        yield start


@pytest.fixture(scope="module")
def shared(start_worker: Callable[..., WorkerProc]) -> Iterator[WorkerProc]:
    """The worker of most tests: sqs mode, 4 tasks at once, on e2e-worker/shared."""
    worker = start_worker("shared", "--capacity", "4")
    yield worker
    assert worker.stop() == 0, worker.log()


# --- outcomes (shared worker) ---------------------------------------------------------------------
def test_a_task_completes_with_its_artifacts_and_live_log(served: Served, shared: WorkerProc) -> None:
    script = 'echo "hello from $TASK_ID run $RUN_ID"; mkdir -p out/sub; echo \'{"ok": true}\' > out/result.json; ' \
        "echo page > out/sub/index.html"  # fmt: skip
    task_id = create_for_worker(
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
    payload = {"command": [["sh", "-c", "echo oops >&2; exit 3"], ["echo", "never"]], "maxRunTime": 60}
    task_id = create_for_worker(served, "shared", payload)
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
    task_id = create_for_worker(served, "shared", payload, retries=1)
    status = resolved(served, task_id, shared, run_id=1)
    assert runs(status) == [
        (0, "exception", "scheduled", "intermittent-task"),
        (1, "completed", "task-retry", "completed"),  # Taskcluster: the task asked for it
    ]
    assert "exit status 75" in live_log(served, task_id, 0)
    assert "result: exception/intermittent-task" in live_log(served, task_id, 0)
    assert "exit status 0" in live_log(served, task_id, 1)


def test_a_malformed_payload_is_an_exception_with_the_error_in_the_log(served: Served, shared: WorkerProc) -> None:
    task_id = create_for_worker(served, "shared", {"command": [["echo", 7]], "maxRunTime": 60})
    status = resolved(served, task_id, shared)
    assert (status["state"], runs(status)) == ("exception", [(0, "exception", "scheduled", "malformed-payload")])
    log = live_log(served, task_id)
    assert "malformed payload: payload.command[0][1] must be a string, got int" in log
    assert "command 1/" not in log


def test_an_image_payload_without_a_docker_engine_is_refused_not_run_on_the_host(
    served: Served, shared: WorkerProc
) -> None:
    task_id = create_for_worker(
        served, "shared", {"image": "alpine", "command": [["touch", "/tmp/ran"]], "maxRunTime": 60}
    )
    status = resolved(served, task_id, shared)
    assert runs(status) == [(0, "exception", "scheduled", "resource-unavailable")]
    assert "this worker has no Docker engine; refusing to run the commands on the host" in live_log(served, task_id)


def test_exceeding_max_run_time_kills_the_process_tree_and_fails(served: Served, shared: WorkerProc) -> None:
    marker = 3571 + os.getpid() % 100
    # Outlives a claim (4 s): the run stays its own only because the worker reclaims it.
    task_id = create_for_worker(served, "shared", {"command": sleeper(marker), "maxRunTime": 5})
    status = resolved(served, task_id, shared)
    assert (status["state"], runs(status)) == ("failed", [(0, "failed", "scheduled", "failed")])
    log = live_log(served, task_id)
    assert "started" in log and "maxRunTime of 5s exceeded: process tree killed" in log
    assert f"reclaimed task={task_id} run=0" in shared.log()
    assert no_process(f"sleep {marker}"), running(lambda cmd: f"sleep {marker}" in cmd)


def test_cancelling_a_running_task_stops_it_and_nothing_is_reported(served: Served, shared: WorkerProc) -> None:
    marker = 4591 + os.getpid() % 100
    task_id = create_for_worker(served, "shared", {"command": sleeper(marker), "maxRunTime": 120})
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
    first = create_for_worker(served, "sigterm", {"command": [["true"]], "maxRunTime": 60})
    assert runs(resolved(served, first, worker)) == [(0, "completed", "scheduled", "completed")]

    marker = 5557 + os.getpid() % 100
    task_id = create_for_worker(served, "sigterm", {"command": sleeper(marker), "maxRunTime": 120})
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
        task_id = create_for_worker(served, "spot", {"command": sleeper(marker), "maxRunTime": 120})
        log_showing(served, task_id, "started\n", worker)
        SpotMetadata.notice = {"action": "terminate", "time": iso(datetime.now(UTC) + timedelta(minutes=2))}
        try:
            assert worker.proc.wait(timeout=WORKER_WAIT) == 0, worker.log()
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
        assert worker.proc.wait(timeout=WORKER_WAIT) == 1, worker.log()
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


# --- provisioned workers --------------------------------------------------------------------------
POOL = "e2e-worker/provisioned"


@pytest.fixture
def manager(served: Served) -> Iterator[FakeWorkerManager]:
    now = datetime.now(UTC)
    credentials = taskcluster.createTemporaryCredentials(
        "root", ROOT_TOKEN, now - timedelta(minutes=15), now + timedelta(hours=1),
        worker_credential_scopes(POOL, "e2e-group", "prov-1"),
    )  # fmt: skip
    as_text = {k: v.decode() if isinstance(v, bytes) else v for k, v in credentials.items()}
    fake = FakeWorkerManager(upstream=served.root_url, credentials=as_text).start()
    yield fake
    fake.stop()


def start_provisioned(manager: FakeWorkerManager, tmp_path: Path, served: Served) -> WorkerProc:
    user_data = {"rootUrl": manager.root_url, "workerPoolId": POOL, "providerId": "local", "workerGroup": "e2e-group",
                 "launchConfigId": "lc-0", "workerConfig": {}, "registrationToken": "tok"}  # fmt: skip
    (tmp_path / "user-data.json").write_text(json.dumps(user_data))
    env = {k: v for k, v in worker_env(served).items() if not k.startswith("TASKCLUSTER_")}
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "--user-data", str(tmp_path / "user-data.json"), "--worker-id", "prov-1",
             "--claim-mode", "claim-work", "--work-dir", str(tmp_path / "work"), "--should-terminate-interval", "0.2"],
            cwd=PROJECT_DIR, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return WorkerProc(proc, log_path)


def test_a_registered_worker_runs_tasks_with_its_credentials_and_exits_0_when_told_to_terminate(
    served: Served, manager: FakeWorkerManager, tmp_path: Path
) -> None:
    worker = start_provisioned(manager, tmp_path, served)
    try:
        task_id = create_for_worker(served, "provisioned", {"command": [["echo", "hello"]], "maxRunTime": 60})
        assert resolved(served, task_id, worker)["state"] == "completed"
        manager.terminate, manager.reason = True, "over capacity"
        assert worker.proc.wait(timeout=WORKER_WAIT) == 0, worker.log()
    finally:
        worker.stop()
    run = served.queue().status(task_id)["status"]["runs"][0]
    assert (run["workerGroup"], run["workerId"]) == ("e2e-group", "prov-1")
    [registration] = manager.calls("/worker/register")
    assert registration.body["workerIdentityProof"] == {"registrationToken": "tok"}
    assert "worker-manager-says-terminate reason=over capacity" in worker.log()
    assert "reason=worker-manager-terminate exit=0" in worker.log()


def test_credentials_about_to_expire_stop_claiming_but_the_running_task_finishes(
    served: Served, manager: FakeWorkerManager, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    command = [["sh", "-c", f"echo started; while [ ! -e {go} ]; do sleep 0.1; done; echo finished"]]
    task_id = create_for_worker(served, "provisioned", {"command": command, "maxRunTime": 120})
    # The worker stops claiming CREDENTIALS_MARGIN (60 s) before they expire: ~8 s after registering,
    # time enough to claim the task, which is pending already.
    manager.lifetime = timedelta(seconds=68)
    worker = start_provisioned(manager, tmp_path, served)
    try:
        eventually(lambda: task_id in worker.log(), WORKER_WAIT, "the claim")
        eventually(
            lambda: "worker-finishing reason=credentials-expiring" in worker.log(), WORKER_WAIT, "the expiry margin"
        )
        assert worker.proc.poll() is None  # still running its task
        go.touch()
        assert worker.proc.wait(timeout=WORKER_WAIT) == 0, worker.log()
    finally:
        worker.stop()
    assert runs(served.queue().status(task_id)["status"]) == [(0, "completed", "scheduled", "completed")]
