"""Task groups and dependencies (services/task_groups.py, services/dependencies.py) on the
in-memory fakes: releases through the outbox and the release queue, the sweeper's re-check,
sealing and cancelling a group."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.adapters.memory import MemoryFakes, memory_container, memory_fakes, pump
from chalicelib.clock import FakeClock
from chalicelib.container import Container
from chalicelib.domain.errors import InputError, RequestConflict, ResourceNotFound
from chalicelib.domain.model import ReasonResolved, TaskState, Worker, format_date
from tests.harness import TEST_SETTINGS

T0 = datetime(2030, 1, 1, tzinfo=UTC)
QUEUE = "proj/linux"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def fakes(clock: FakeClock) -> MemoryFakes:
    return memory_fakes(TEST_SETTINGS, clock)


@pytest.fixture
def c(clock: FakeClock, fakes: MemoryFakes) -> Container:
    return memory_container(TEST_SETTINGS, clock, fakes=fakes)


def create(c: Container, task_id: str, *dependencies: str, **overrides: Any) -> None:
    now = c.clock.now()
    c.queue.create_task(
        task_id,
        {
            "taskQueueId": QUEUE,
            "created": format_date(now),
            "deadline": format_date(now + timedelta(hours=1)),
            "dependencies": list(dependencies),
            "payload": {},
            "metadata": {"name": task_id, "description": "", "owner": "me@example.com", "source": "https://x.org"},
            **overrides,
        },
    )
    pump(c)


def run(c: Container, task_id: str, outcome: ReasonResolved = ReasonResolved.COMPLETED) -> None:
    c.queue.claim_task(task_id, 0, Worker("wg", "w1"))
    c.queue.resolve(task_id, 0, outcome)


def state(c: Container, task_id: str) -> TaskState:
    return c.queue.task(task_id).state


def test_a_dependent_is_pending_once_its_dependencies_completed(c: Container) -> None:
    create(c, "build")
    create(c, "lint")
    create(c, "test", "build", "lint")
    assert state(c, "test") is TaskState.UNSCHEDULED
    run(c, "build")
    pump(c)
    assert state(c, "test") is TaskState.UNSCHEDULED
    run(c, "lint")
    pump(c)
    assert state(c, "test") is TaskState.PENDING
    dependents, _ = c.dependencies.dependents("build", 10, None)
    assert [t.task_id for t in dependents] == ["test"]


def test_a_failed_dependency_releases_only_dependents_that_require_all_resolved(c: Container) -> None:
    create(c, "build")
    create(c, "test", "build")
    create(c, "report", "build", requires="all-resolved")
    run(c, "build", ReasonResolved.FAILED)
    pump(c)
    assert (state(c, "test"), state(c, "report")) == (TaskState.UNSCHEDULED, TaskState.PENDING)


def test_a_dependency_already_completed_releases_a_new_dependent_at_once(c: Container) -> None:
    create(c, "build")
    run(c, "build")
    pump(c)
    create(c, "test", "build")
    assert state(c, "test") is TaskState.PENDING


def test_a_missing_dependency_is_refused_and_leaves_nothing(c: Container, fakes: MemoryFakes) -> None:
    with pytest.raises(InputError):
        create(c, "test", "nowhere", taskGroupId="g")
    assert fakes.tasks.get("test") is None
    with pytest.raises(ResourceNotFound):
        c.groups.group("g")


def test_a_large_release_continues_on_the_release_queue(c: Container, fakes: MemoryFakes) -> None:
    create(c, "root")
    for i in range(250):
        create(c, f"dep-{i:03}", "root")
    run(c, "root")
    # One stream invocation with little time left: a page of dependents, the rest handed on.
    c.outbox.process(fakes.tasks.take_changes(), lambda: 1.0)
    [job] = fakes.releases.jobs
    assert job["taskId"] == "root" and job["continuation"]
    assert sum(state(c, f"dep-{i:03}") is TaskState.PENDING for i in range(250)) == 100
    pump(c, lambda: 1.0)  # each release job takes a page and hands on the rest
    assert all(state(c, f"dep-{i:03}") is TaskState.PENDING for i in range(250))


def test_the_sweeper_releases_a_dependent_whose_release_was_lost(
    c: Container, clock: FakeClock, fakes: MemoryFakes
) -> None:
    create(c, "build")
    create(c, "test", "build")
    run(c, "build")
    fakes.tasks.take_changes()  # the stream records are lost: no release happens
    assert state(c, "test") is TaskState.UNSCHEDULED
    clock.advance(TEST_SETTINGS.redispatch_after)
    assert "test" in c.sweeper.sweep().changed
    assert state(c, "test") is TaskState.PENDING


def test_the_group_resolves_when_its_last_member_does(c: Container, fakes: MemoryFakes) -> None:
    create(c, "a", taskGroupId="g")
    create(c, "b", taskGroupId="g")
    fakes.events.take()
    run(c, "a")
    pump(c)
    assert "task-group-resolved" not in [e.name for e in fakes.events.take()]
    run(c, "b")
    pump(c)
    assert [e.body["taskGroupId"] for e in fakes.events.take() if e.name == "task-group-resolved"] == ["g"]


def test_a_sealed_group_takes_no_new_member_and_can_be_cancelled(c: Container) -> None:
    create(c, "a", taskGroupId="g")
    create(c, "b", "a", taskGroupId="g")
    sealed = c.groups.seal_group("g")
    assert sealed.sealed == T0
    with pytest.raises(RequestConflict):
        create(c, "late", taskGroupId="g")
    members, cancelled = c.groups.cancel_group("g")
    assert (members, sorted(cancelled)) == (2, ["a", "b"])
    assert state(c, "a") is state(c, "b") is TaskState.EXCEPTION


def test_a_group_of_another_scheduler_is_refused(c: Container) -> None:
    create(c, "a", taskGroupId="g", schedulerId="one")
    with pytest.raises(RequestConflict):
        create(c, "b", taskGroupId="g", schedulerId="two")
    assert [t.task_id for t in c.groups.all_members("g")] == ["a"]
