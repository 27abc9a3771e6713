"""Worker-manager on the in-memory fakes: pools defined (services/worker_manager.py), workers
launched on a fake cloud for pending tasks and retired when idle (services/provisioner.py),
registered and lost (services/registration.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.adapters.memory import MemoryFakes, MemoryProvider, memory_container, memory_fakes, pump
from chalicelib.clock import FakeClock
from chalicelib.container import Container
from chalicelib.domain.errors import InputError, RequestConflict, ResourceNotFound
from chalicelib.domain.model import ReasonResolved, TaskState, Worker, format_date
from chalicelib.domain.pools import PoolWorker, WorkerState
from chalicelib.services.ports import LaunchFailed, LaunchThrottled
from tests.harness import TEST_SETTINGS

T0 = datetime(2030, 1, 1, tzinfo=UTC)
POOL = "proj/linux"
REGION = "us-east-1"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def fakes(clock: FakeClock) -> MemoryFakes:
    return memory_fakes(TEST_SETTINGS, clock)


@pytest.fixture
def c(clock: FakeClock, fakes: MemoryFakes) -> Container:
    return memory_container(TEST_SETTINGS, clock, fakes=fakes)


def definition(max_capacity: int = 4, provider: str = "aws") -> dict[str, Any]:
    return {
        "providerId": provider,
        "description": "linux workers",
        "owner": "ops@example.com",
        "emailOnError": False,
        "config": {
            "minCapacity": 0,
            "maxCapacity": max_capacity,
            "launchConfigs": [
                {"region": REGION, "launchConfig": {"ImageId": "ami-1"}, "workerConfig": {"shell": "bash"}}
            ],
        },
    }


def add_tasks(c: Container, count: int, pool: str = POOL) -> list[str]:
    now = c.clock.now()
    ids = [f"task-{pool.replace('/', '-')}-{i}" for i in range(count)]
    for task_id in ids:
        c.queue.create_task(
            task_id,
            {
                "taskQueueId": pool,
                "created": format_date(now),
                "deadline": format_date(now + timedelta(hours=1)),
                "payload": {},
                "metadata": {"name": task_id, "description": "", "owner": "me@example.com", "source": "https://x.org"},
            },
        )
    pump(c)
    return ids


def register(c: Container, fakes: MemoryFakes, worker: PoolWorker) -> dict[str, Any]:
    token = fakes.aws.user_data[worker.worker_id]["registrationToken"]
    body = {
        "workerPoolId": POOL,
        "providerId": "aws",
        "workerGroup": worker.worker_group,
        "workerId": worker.worker_id,
        "workerIdentityProof": {"registrationToken": token},
    }
    return c.registration.register(body).to_json()


# --- pools ----------------------------------------------------------------------------------------
def test_a_pool_is_created_once_and_shown_with_its_counters(c: Container) -> None:
    view = c.worker_manager.create_worker_pool(POOL, definition()).to_json()
    assert view["providerId"] == "aws" and view["currentCapacity"] == 0
    with pytest.raises(RequestConflict):
        c.worker_manager.create_worker_pool(POOL, definition())
    assert c.worker_manager.worker_pool(POOL).to_json()["config"]["maxCapacity"] == 4


def test_a_pool_naming_an_unknown_provider_or_a_bad_config_is_refused(c: Container) -> None:
    with pytest.raises(InputError):
        c.worker_manager.create_worker_pool(POOL, definition(provider="gcp"))
    bad = definition()
    bad["config"]["minCapacity"] = 9
    with pytest.raises(InputError):
        c.worker_manager.create_worker_pool(POOL, bad)
    with pytest.raises(ResourceNotFound):
        c.worker_manager.worker_pool(POOL)


def test_an_update_moves_the_old_provider_to_the_previous_ones(c: Container, clock: FakeClock) -> None:
    extra = MemoryProvider("local")
    c = memory_container(TEST_SETTINGS, clock, providers={"local": extra})
    c.worker_manager.create_worker_pool(POOL, definition())
    view = c.worker_manager.update_worker_pool(POOL, definition(provider="local")).to_json()
    assert (view["providerId"], view["previousProviderIds"]) == ("local", ["aws"])


# --- the provisioner and registration -------------------------------------------------------------
def test_pending_tasks_get_workers_that_register_and_claim_them(c: Container, fakes: MemoryFakes) -> None:
    c.worker_manager.create_worker_pool(POOL, definition())
    add_tasks(c, 2)
    [report] = c.provisioner.provision("run-1")
    assert report.launched == 2
    workers = c.pool_store.alive_workers(POOL)
    assert [w.state for w in workers] == [WorkerState.REQUESTED] * 2
    assert c.provisioner.provision("run-2")[0].launched == 0  # the requested ones count: nothing more
    grant = register(c, fakes, workers[0])
    assert grant["workerConfig"] == {"shell": "bash"} and grant["credentials"]["clientId"].startswith("worker/aws/")
    with pytest.raises(RequestConflict):
        register(c, fakes, workers[0])  # registration is one-time
    claims = c.queue.claim_work(POOL, Worker(REGION, workers[0].worker_id), 2, lambda: 0.0, lambda: 30.0)
    assert len(claims) == 2
    assert c.worker_manager.worker_pool(POOL).to_json()["runningCount"] == 1


def test_the_pools_maximum_bounds_what_is_launched(c: Container) -> None:
    c.worker_manager.create_worker_pool(POOL, definition(max_capacity=3))
    add_tasks(c, 10)
    c.provisioner.provision("run-1")
    c.provisioner.provision("run-2")
    assert len(c.pool_store.alive_workers(POOL)) == 3


def test_a_refused_launch_is_listed_as_a_pool_error(c: Container, fakes: MemoryFakes) -> None:
    c.worker_manager.create_worker_pool(POOL, definition())
    add_tasks(c, 1)
    fakes.aws.refuse = LaunchFailed("InsufficientInstanceCapacity", "none left")
    [report] = c.provisioner.provision("run-1")
    assert report.launched == 0 and report.errors
    errors, _ = c.worker_manager.list_errors(POOL, 10, None)
    assert [(e.kind, e.extra.get("code")) for e in errors] == [("creation-error", "InsufficientInstanceCapacity")]


def test_a_throttled_launch_is_no_pool_error_and_its_region_waits_for_the_next_run(
    c: Container, fakes: MemoryFakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    pools = [POOL, "proj/other", "proj/third"]
    for pool in pools:
        c.worker_manager.create_worker_pool(pool, definition())
        add_tasks(c, 1, pool)
    calls: list[str] = []
    launch = fakes.aws.launch

    def counted(pool: Any, *args: Any) -> Any:
        calls.append(pool.worker_pool_id)
        return launch(pool, *args)

    monkeypatch.setattr(fakes.aws, "launch", counted)
    c.provisioner.concurrency = 1  # pools one after another (at once, calls already in flight are refused too)
    fakes.aws.refuse = LaunchThrottled("RequestLimitExceeded", "Request limit exceeded.")
    reports = c.provisioner.provision("run-1")
    # One call refused for its rate: the other pools of that region are not launched this run.
    assert len(calls) == 1
    assert [(r.launched, r.deferred, r.errors) for r in reports] == [(0, 1, [])] * 3
    assert all("deferred=1 (throttled)" in r.line() for r in reports)
    for pool in pools:  # not the pool's fault: no error to weigh its launch configs down
        assert c.worker_manager.list_errors(pool, 10, None)[0] == []
    fakes.aws.refuse = None
    assert [r.launched for r in c.provisioner.provision("run-2")] == [1, 1, 1]
    assert len(calls) == 4


def test_idle_workers_are_retired_once_the_queue_is_empty(c: Container, clock: FakeClock, fakes: MemoryFakes) -> None:
    c.worker_manager.create_worker_pool(POOL, definition())
    [task_id] = add_tasks(c, 1)
    c.provisioner.provision("run-1")
    [worker] = c.pool_store.alive_workers(POOL)
    register(c, fakes, worker)
    c.queue.claim_task(task_id, 0, Worker(REGION, worker.worker_id))
    c.queue.resolve(task_id, 0, ReasonResolved.COMPLETED)
    pump(c)
    for _ in range(3):
        clock.advance(60)
        c.provisioner.scan()
    assert fakes.aws.observe([worker])[(REGION, worker.worker_id)] == "terminated"
    stored = c.pool_store.get_worker(POOL, REGION, worker.worker_id)
    assert stored is not None and stored.state is WorkerState.STOPPED


def test_a_workers_instance_is_seen_where_it_runs_though_its_pool_launches_elsewhere_now(
    c: Container, clock: FakeClock, fakes: MemoryFakes
) -> None:
    c.worker_manager.create_worker_pool(POOL, definition())
    add_tasks(c, 2)
    c.provisioner.provision("run-1")
    kept, lost = c.pool_store.alive_workers(POOL)
    moved = definition()
    moved["config"]["launchConfigs"][0]["region"] = "eu-west-1"
    c.worker_manager.update_worker_pool(POOL, moved)
    fakes.aws.terminate([lost])  # gone from the cloud (no event)
    c.provisioner.run("run-2", lambda: 60.0)
    states = {w.worker_id: w.state for w in c.pool_store.alive_workers(POOL)}
    assert states.get(kept.worker_id) is WorkerState.REQUESTED and lost.worker_id not in states


def test_a_lost_instances_runs_are_retried_at_once(c: Container, fakes: MemoryFakes) -> None:
    c.worker_manager.create_worker_pool(POOL, definition())
    [task_id] = add_tasks(c, 1)
    c.provisioner.provision("run-1")
    [worker] = c.pool_store.alive_workers(POOL)
    register(c, fakes, worker)
    c.queue.claim_task(task_id, 0, Worker(REGION, worker.worker_id))
    pump(c)  # the tasks stream records the claim in the worker's recentTasks
    assert c.registration.instance_gone(worker.worker_id, "terminated")
    task = c.queue.task(task_id)
    assert [(r.state, r.reason_resolved) for r in task.runs] == [
        (TaskState.EXCEPTION, ReasonResolved.WORKER_SHUTDOWN),
        (TaskState.PENDING, None),
    ]
    stored = c.pool_store.get_worker(POOL, REGION, worker.worker_id)
    assert stored is not None and stored.state is WorkerState.STOPPED


def test_a_deleted_pool_goes_once_its_workers_are_gone(c: Container, fakes: MemoryFakes) -> None:
    c.worker_manager.create_worker_pool(POOL, definition())
    add_tasks(c, 1)
    c.provisioner.provision("run-1")
    assert c.worker_manager.delete_worker_pool(POOL).to_json()["providerId"] == "null-provider"
    for _ in range(3):
        c.provisioner.scan()
    with pytest.raises(ResourceNotFound):
        c.worker_manager.worker_pool(POOL)
    assert set(fakes.aws.states.values()) == {"terminated"}
