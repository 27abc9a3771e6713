"""A provisioned worker: user data (file, or EC2's metadata service with IMDSv2), registerWorker,
the returned credentials, shouldWorkerTerminate between tasks, and stopping before the
credentials expire. worker-manager and the metadata service are stand-ins on loopback."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from taskcluster.exceptions import TaskclusterFailure

from tests.harness import WM, FakeWorkerManager
from worker import cli
from worker.config import Config, ConfigError, parse_config
from worker.manager import register
from worker.queue import QueueCalls
from worker.user_data import UserData
from worker.worker import Worker

TOKEN = "registration-token-1"


def user_data(root_url: str = "http://127.0.0.1:1", **changes: Any) -> dict[str, Any]:
    return {
        "rootUrl": root_url,
        "workerPoolId": "proj/linux",
        "providerId": "local",
        "workerGroup": "us-east-1",
        "launchConfigId": "lc-0",
        "workerConfig": {},
        "registrationToken": TOKEN,
        "extra": "from additionalUserData",
        **changes,
    }


def write(tmp_path: Path, data: Any) -> str:
    path = tmp_path / "user-data.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


@pytest.fixture
def manager() -> Iterator[FakeWorkerManager]:
    fake = FakeWorkerManager().start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _quiet_worker_log() -> Iterator[None]:
    yield
    logging.getLogger("worker").handlers.clear()  # main() adds one bound to this test's stderr


# --- configuration ----------------------------------------------------------------------------------
def test_user_data_gives_the_root_url_task_queue_and_worker_group(tmp_path: Path) -> None:
    source = write(tmp_path, user_data("http://queue.example:8000/"))
    env = {"TASKCLUSTER_ROOT_URL": "http://other", "TASKCLUSTER_CLIENT_ID": "c", "TASKCLUSTER_ACCESS_TOKEN": "t"}
    config = parse_config(["--user-data", source, "--worker-id", "w-1", "--work-dir", str(tmp_path)], env)
    assert (config.root_url, config.task_queue_id, config.worker_group, config.worker_id) == (
        "http://queue.example:8000",
        "proj/linux",
        "us-east-1",
        "w-1",
    )
    assert dict(config.credentials) == {}  # registration gives them, not TASKCLUSTER_*
    assert config.user_data is not None and config.user_data.registration_token == TOKEN
    assert TOKEN not in repr(config)


@pytest.mark.parametrize(
    ("args", "changes", "capacity"),
    [([], {"capacity": 4}, 4), ([], {}, 1), (["--capacity", "3"], {"capacity": 4}, 3)],
)
def test_capacity_is_the_user_datas_capacity_per_instance_unless_given(
    args: list[str], changes: dict[str, Any], capacity: int, tmp_path: Path
) -> None:
    source = write(tmp_path, user_data(**changes))
    config = parse_config(["--user-data", source, "--worker-id", "w-1", "--work-dir", str(tmp_path), *args], {})
    assert config.capacity == capacity


@pytest.mark.parametrize(
    ("args", "changes", "prefix"),
    [([], {"queuePrefix": "taskqueue-prod-"}, "taskqueue-prod-"), ([], {}, "from-env-"),
     (["--queue-prefix", "flag-"], {"queuePrefix": "taskqueue-prod-"}, "flag-")],
)  # fmt: skip
def test_the_dispatch_queues_prefix_comes_from_the_user_data_unless_given(
    args: list[str], changes: dict[str, Any], prefix: str, tmp_path: Path
) -> None:
    source = write(tmp_path, user_data(**changes))
    env = {"TASKQUEUE_QUEUE_PREFIX": "from-env-"}
    config = parse_config(["--user-data", source, "--worker-id", "w-1", "--work-dir", str(tmp_path), *args], env)
    assert config.queue_prefix == prefix


@pytest.mark.parametrize(
    ("args", "data", "message"),
    [
        ([], user_data(), "--user-data from a file needs --worker-id"),
        (["--worker-id", "w", "--provisioner-id", "p"], user_data(), "drop --provisioner-id"),
        (["--worker-id", "w", "--root-url", "http://q"], user_data(), "drop --root-url"),
        (["--worker-id", "w"], "not json", "not JSON"),
        (["--worker-id", "w"], user_data(registrationToken=""), "missing registrationToken"),
        (["--worker-id", "w"], user_data(workerPoolId="nopool"), "must be <provisionerId>/<workerType>"),
        (["--worker-id", "w"], user_data(workerPoolId="proj/Linux"), "the worker type in the user data"),
        (["--worker-id", "w"], user_data(rootUrl="ftp://x"), "rootUrl in the user data must be an http"),
        (["--worker-id", "w"], user_data(capacity=0), "capacity must be a positive integer"),
        (["--worker-id", "w"], user_data(capacity="2"), "capacity must be a positive integer"),
    ],
)
def test_unusable_user_data_is_refused_with_a_message(args: list[str], data: Any, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(["--user-data", write(tmp_path, data), *args, "--work-dir", str(tmp_path)], {})


def test_a_missing_user_data_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--user-data .*nope"):
        parse_config(["--user-data", str(tmp_path / "nope"), "--worker-id", "w"], {})


@dataclass
class Imds:
    """EC2's metadata service with IMDSv2 required: every GET needs the session token."""

    user_data: str
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)

    def serve(self) -> ThreadingHTTPServer:
        imds = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                imds.requests.append(("PUT", self.path, self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")))
                self._answer(200, "session-token" if self.path == "/latest/api/token" else "")

            def do_GET(self) -> None:
                token = self.headers.get("X-aws-ec2-metadata-token")
                imds.requests.append(("GET", self.path, token))
                pages = {"/latest/user-data": imds.user_data, "/latest/meta-data/instance-id": "i-0abc123"}
                if token != "session-token":
                    self._answer(401, "")
                elif self.path in pages:
                    self._answer(200, pages[self.path])
                else:
                    self._answer(404, "")

            def _answer(self, code: int, body: str) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body.encode())))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


def test_on_ec2_user_data_and_the_instance_id_come_from_the_metadata_service_with_imdsv2(tmp_path: Path) -> None:
    imds = Imds(json.dumps(user_data()))
    server = imds.serve()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/latest/user-data"
        config = parse_config(["--user-data", url, "--work-dir", str(tmp_path)], {})
    finally:
        server.shutdown()
        server.server_close()
    assert config.worker_id == "i-0abc123" and config.task_queue_id == "proj/linux"
    gets = [(path, token) for method, path, token in imds.requests if method == "GET"]
    assert gets == [("/latest/user-data", "session-token"), ("/latest/meta-data/instance-id", "session-token")]


# --- registerWorker -----------------------------------------------------------------------------------
def test_register_sends_the_contract_body_without_credentials(manager: FakeWorkerManager) -> None:
    data = UserData(manager.root_url, "proj/linux", "local", "us-east-1", TOKEN)
    registration = register(data, "w-1")
    [call] = manager.calls("/worker/register")
    assert call.method == "POST" and call.authorization is None
    assert call.body == {
        "workerPoolId": "proj/linux",
        "providerId": "local",
        "workerGroup": "us-east-1",
        "workerId": "w-1",
        "workerIdentityProof": {"registrationToken": TOKEN},
    }
    assert registration.credentials == manager.credentials and registration.worker_config == {"a": 1}


def test_a_refused_registration_raises(manager: FakeWorkerManager) -> None:
    manager.register_status = 400
    with pytest.raises(TaskclusterFailure):
        register(UserData(manager.root_url, "proj/linux", "local", "us-east-1", "wrong"), "w-1", max_retries=0)


# --- the whole worker, in this process -----------------------------------------------------------------
def run_main(manager: FakeWorkerManager, tmp_path: Path, *args: str) -> int:
    source = write(tmp_path, user_data(manager.root_url))
    argv = ["--user-data", source, "--worker-id", "w-1", "--claim-mode", "claim-work", "--work-dir", str(tmp_path)]
    return cli.main([*argv, "--should-terminate-interval", "0.1", *args])


def test_a_registered_worker_claims_with_its_credentials_and_exits_0_when_told_to_terminate(
    manager: FakeWorkerManager, tmp_path: Path
) -> None:
    manager.terminate, manager.reason = True, "over capacity"
    assert run_main(manager, tmp_path) == 0
    claims = [s for s in manager.seen if "/claim-work/" in s.path]
    [asked] = manager.calls("/should-terminate")
    assert claims and all('id="worker/x"' in (c.authorization or "") for c in claims)
    assert asked.path == f"{WM}/workers/proj%2Flinux/us-east-1/w-1/should-terminate"
    assert 'id="worker/x"' in (asked.authorization or "")


def test_credentials_about_to_expire_mean_no_claim_and_exit_0(manager: FakeWorkerManager, tmp_path: Path) -> None:
    manager.lifetime = timedelta(seconds=30)  # less than the margin kept before expiry
    assert run_main(manager, tmp_path) == 0
    assert manager.calls("/worker/register") and not [s for s in manager.seen if "/claim-work/" in s.path]


def test_a_refused_registration_exits_1_without_claiming(manager: FakeWorkerManager, tmp_path: Path) -> None:
    manager.register_status = 400
    assert run_main(manager, tmp_path) == 1
    assert not [s for s in manager.seen if "/claim-work/" in s.path]


# --- shouldWorkerTerminate in the claim loop, with in-memory fakes --------------------------------------
@dataclass
class IdleClaimer:
    waits: int = 0
    enough: threading.Event = field(default_factory=threading.Event)

    def wait_for_work(self, wanted: int, stop: threading.Event) -> list[Any]:
        self.waits += 1
        if self.waits >= 5:
            self.enough.set()
        return []

    def take(self, offers: list[Any], stop: threading.Event) -> list[dict[str, Any]]:
        return []

    def release(self, offers: list[Any]) -> None:
        pass


@dataclass
class ScriptedManager:
    answers: list[tuple[bool, str] | Exception]
    asked: int = 0

    def should_terminate(self, worker_pool_id: str, worker_group: str, worker_id: str) -> tuple[bool, str]:
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        if isinstance(answer, Exception):
            raise answer
        return answer


def idle_worker(tmp_path: Path, manager: ScriptedManager | None, interval: float) -> tuple[Worker, IdleClaimer]:
    config = Config(
        "http://127.0.0.1:1", "proj", "linux", "g", "w", work_dir=tmp_path, should_terminate_interval=interval
    )
    claimer = IdleClaimer()
    return Worker(config, QueueCalls(config.root_url, {}), claimer, manager=manager), claimer


def run_until_stopped(worker: Worker, claimer: IdleClaimer, stop_after_enough: bool) -> int:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(worker.run()))
    thread.start()
    if stop_after_enough:
        assert claimer.enough.wait(10)
        worker.stop("test-over")
    thread.join(10)
    assert result, "the worker did not stop"
    return result[0]


def test_worker_manager_is_asked_at_most_once_per_interval(tmp_path: Path) -> None:
    manager = ScriptedManager([(False, "")])
    worker, claimer = idle_worker(tmp_path, manager, interval=3600)
    run_until_stopped(worker, claimer, stop_after_enough=True)
    assert claimer.waits >= 5 and manager.asked == 1


def test_an_unanswered_should_terminate_keeps_the_worker_working_until_told(tmp_path: Path) -> None:
    manager = ScriptedManager([OSError("connection refused"), (False, ""), (True, "launch config archived")])
    worker, claimer = idle_worker(tmp_path, manager, interval=0.01)
    assert run_until_stopped(worker, claimer, stop_after_enough=False) == 0
    assert manager.asked == 3 and worker.stop_reason == "worker-manager-terminate"


def test_a_worker_whose_credentials_expire_soon_claims_nothing_and_exits_0(tmp_path: Path) -> None:
    worker, claimer = idle_worker(tmp_path, None, interval=30)
    worker.claim_until = 0.0  # long past
    assert run_until_stopped(worker, claimer, stop_after_enough=False) == 0
    assert claimer.waits == 0 and worker.stop_reason == "credentials-expiring"
