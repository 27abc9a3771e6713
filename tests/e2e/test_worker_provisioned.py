"""A provisioned reference worker (`python -m worker --user-data`) against the embedded stack.

worker-manager is a stand-in on loopback (tests/fake_worker_manager.py) that hands out temporary
credentials made from the root client and forwards every queue call to the stack, Host header kept,
so the worker's Hawk signatures verify there. Waits are bounded polls; nothing asserts on durations.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import taskcluster

from chalicelib.domain.pools import worker_credential_scopes
from tests.e2e.test_embedded_stack import ROOT_TOKEN, Served, eventually, runs
from tests.e2e.test_worker import PROJECT_DIR, WAIT, WorkerProc, create, resolved, served, worker_env
from tests.fake_worker_manager import FakeWorkerManager

__all__ = ["served"]  # the module's stack fixture, shared with test_worker.py's definition
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


def start(manager: FakeWorkerManager, tmp_path: Path, served: Served) -> WorkerProc:
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
    worker = start(manager, tmp_path, served)
    try:
        task_id = create(served, "provisioned", {"command": [["echo", "hello"]], "maxRunTime": 60})
        assert resolved(served, task_id, worker)["state"] == "completed"
        manager.terminate, manager.reason = True, "over capacity"
        assert worker.proc.wait(timeout=WAIT) == 0, worker.log()
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
    task_id = create(served, "provisioned", {"command": command, "maxRunTime": 120})
    manager.lifetime = timedelta(seconds=75)  # the worker stops claiming ~15 s after registering
    worker = start(manager, tmp_path, served)
    try:
        eventually(lambda: task_id in worker.log(), WAIT, "the claim")
        eventually(lambda: "worker-finishing reason=credentials-expiring" in worker.log(), WAIT, "the expiry margin")
        assert worker.proc.poll() is None  # still running its task
        go.touch()
        assert worker.proc.wait(timeout=WAIT) == 0, worker.log()
    finally:
        worker.stop()
    assert runs(served.queue().status(task_id)["status"]) == [(0, "completed", "scheduled", "completed")]
