"""The local provider: real reference-worker processes that register with a worker-manager
stand-in on loopback (which answers claimWork with "no tasks"), observed, terminated, launched
once per token, and all ended by close()."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain.pools import LaunchConfig, PoolWorker, WorkerPool, WorkerState
from chalicelib.domain.provisioning import CloudState, Launch
from chalicelib.local.provider import LocalProvider, worker_environment
from chalicelib.services.ports import Launched, LaunchFailed
from tests.harness import FakeWorkerManager, eventually

WAIT = 30.0
NOW = datetime(2030, 1, 1, tzinfo=UTC)
POOL = WorkerPool("proj/linux", "local", "d", "o@example.com", False, {}, NOW, NOW)
LC = LaunchConfig("lc-0", "local-region", {"ImageId": "ignored-here"})


def until(check: Callable[[], Any], what: str) -> Any:
    return eventually(check, WAIT, what, every=0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def as_workers(launched: list[Launched]) -> list[PoolWorker]:
    return [
        PoolWorker("proj/linux", w.worker_group, w.worker_id, "local", "lc-0", WorkerState.REQUESTED, 1, NOW, NOW, NOW,
                   NOW, provider_data=w.provider_data)
        for w in launched
    ]  # fmt: skip


@pytest.fixture
def manager() -> Iterator[FakeWorkerManager]:
    fake = FakeWorkerManager().start()
    yield fake
    fake.stop()


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[LocalProvider]:
    provider = LocalProvider(tmp_path / "workers", worker_args=["--should-terminate-interval", "0.2"], grace=10)
    yield provider
    provider.close()


def user_data(manager: FakeWorkerManager) -> dict[str, Any]:
    return {
        "rootUrl": manager.root_url,
        "workerPoolId": "proj/linux",
        "providerId": "local",
        "workerGroup": "local-region",
        "launchConfigId": "lc-0",
        "workerConfig": {},
        "registrationToken": "tok",
    }


def test_launched_workers_run_register_and_are_observed_running(
    provider: LocalProvider, manager: FakeWorkerManager
) -> None:
    launched = provider.launch(POOL, Launch(LC, 2), user_data(manager), "token-1")
    assert len({w.worker_id for w in launched}) == 2
    assert all(w.worker_group == "local-region" and w.worker_id.startswith("local-") for w in launched)
    bodies = until(
        lambda: len(manager.calls("/worker/register")) == 2 and manager.calls("/worker/register"), "2 registrations"
    )
    assert sorted(b.body["workerId"] for b in bodies) == sorted(w.worker_id for w in launched)
    assert all(b.body["workerIdentityProof"] == {"registrationToken": "tok"} for b in bodies)
    assert set(provider.observe(as_workers(launched)).values()) == {CloudState.RUNNING}
    for w in launched:
        assert alive(w.provider_data["pid"]) and Path(w.provider_data["logPath"]).exists()
        user_data_file = Path(w.provider_data["logPath"]).with_name("user-data.json")
        assert json.loads(user_data_file.read_text())["registrationToken"] == "tok"
        assert user_data_file.stat().st_mode & 0o077 == 0


def test_the_same_token_gives_the_same_workers_and_starts_nothing(
    provider: LocalProvider, manager: FakeWorkerManager
) -> None:
    first = provider.launch(POOL, Launch(LC, 1), user_data(manager), "token-1")
    again = provider.launch(POOL, Launch(LC, 1), user_data(manager), "token-1")
    assert again == first
    assert len(list(provider.work_dir.iterdir())) == 1


def test_terminate_sends_sigterm_and_the_worker_is_then_terminated(
    provider: LocalProvider, manager: FakeWorkerManager
) -> None:
    launched = provider.launch(POOL, Launch(LC, 1), user_data(manager), "token-1")
    until(lambda: manager.calls("/should-terminate"), "the worker to be idle and registered")
    provider.terminate(as_workers(launched))
    workers = as_workers(launched)
    until(lambda: provider.observe(workers)[("local-region", launched[0].worker_id)] == CloudState.TERMINATED, "exit")
    log = Path(launched[0].provider_data["logPath"]).read_text()
    assert "worker-stopping reason=sigterm" in log and "exit=0" in log


def test_a_worker_told_to_terminate_exits_and_is_observed_terminated(
    provider: LocalProvider, manager: FakeWorkerManager
) -> None:
    manager.terminate, manager.reason = True, "over capacity"
    launched = provider.launch(POOL, Launch(LC, 1), user_data(manager), "token-1")
    workers = as_workers(launched)
    until(lambda: provider.observe(workers)[("local-region", launched[0].worker_id)] == CloudState.TERMINATED, "exit")
    assert (
        "worker-manager-says-terminate reason=over capacity" in Path(launched[0].provider_data["logPath"]).read_text()
    )


def test_unknown_workers_are_not_found() -> None:
    provider = LocalProvider(Path("/nonexistent"))
    stranger = as_workers([Launched("local-region", "local-00000000", {})])
    assert provider.observe(stranger) == {("local-region", "local-00000000"): CloudState.NOT_FOUND}
    provider.terminate(stranger)  # nothing to do, no error


def test_a_process_that_cannot_start_is_a_launch_failure(tmp_path: Path) -> None:
    provider = LocalProvider(tmp_path, command=[str(tmp_path / "no-such-python")])
    with pytest.raises(LaunchFailed) as failed:
        provider.launch(POOL, Launch(LC, 2), {"rootUrl": "http://127.0.0.1:1"}, "token-1")
    assert failed.value.code == "ProcessStartFailed"


def test_close_ends_every_process_even_one_that_ignores_sigterm(tmp_path: Path, manager: FakeWorkerManager) -> None:
    stubborn = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('ready', flush=True); time.sleep(600)"]  # fmt: skip
    plain = LocalProvider(tmp_path / "plain", grace=10)
    deaf = LocalProvider(tmp_path / "deaf", command=stubborn, grace=0.5)
    launched = plain.launch(POOL, Launch(LC, 2), user_data(manager), "a")
    ignoring = deaf.launch(POOL, Launch(LC, 1), {}, "b")
    until(lambda: "ready" in Path(ignoring[0].provider_data["logPath"]).read_text(), "the stub to ignore SIGTERM")
    plain.close()
    deaf.close()
    assert not any(alive(w.provider_data["pid"]) for w in [*launched, *ignoring])
    with pytest.raises(LaunchFailed):
        plain.launch(POOL, Launch(LC, 1), user_data(manager), "c")


def test_workers_get_no_taskcluster_credentials_from_the_stack() -> None:
    env = worker_environment({"TASKCLUSTER_CLIENT_ID": "root", "TASKCLUSTER_ACCESS_TOKEN": "x", "PATH": "/bin"})
    assert env == {"PATH": "/bin", "PYTHONUNBUFFERED": "1"}


def test_sigkill_follows_an_ignored_sigterm_without_blocking_the_caller(tmp_path: Path) -> None:
    stubborn = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('ready', flush=True); time.sleep(600)"]  # fmt: skip
    provider = LocalProvider(tmp_path, command=stubborn, grace=0.5)
    try:
        launched = provider.launch(POOL, Launch(LC, 1), {}, "t")
        until(lambda: "ready" in Path(launched[0].provider_data["logPath"]).read_text(), "the stub to ignore SIGTERM")
        provider.terminate(as_workers(launched))  # returns at once; the reaper kills it later
        until(lambda: not alive(launched[0].provider_data["pid"]), "SIGKILL after the grace period")
        assert set(provider.observe(as_workers(launched)).values()) == {CloudState.TERMINATED}
    finally:
        provider.close()
