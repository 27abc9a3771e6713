"""TaskStore: the tasks table, its guarded writes and its three indexes (queue, due, group)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.domain import transitions
from chalicelib.domain.definition import new_task, normalize
from chalicelib.domain.errors import InputError
from chalicelib.domain.model import ReasonResolved, Task, TaskState, Worker
from chalicelib.services.ports import DueEntry, QueueCounts, QueueEntry, TaskStore
from tests.harness import TEST_SETTINGS

T0 = datetime(2030, 1, 1, tzinfo=UTC)
LEASE = timedelta(minutes=20)
WORKER = Worker("wg", "w1")
QUEUE = "proj/linux"


def unscheduled(task_id: str, deadline: timedelta = timedelta(hours=1), **body: Any) -> Task:
    request = {
        "taskQueueId": QUEUE,
        "created": T0.isoformat(),
        "deadline": (T0 + deadline).isoformat(),
        "payload": {"command": ["true"]},
        "metadata": {"name": task_id, "description": "", "owner": "me@example.com", "source": "https://example.com"},
        **body,
    }
    return new_task(task_id, normalize(task_id, request, T0, 5))


def pending(task_id: str, at: datetime = T0, **body: Any) -> Task:
    return transitions.schedule(unscheduled(task_id, **body), at)


def created(tasks: TaskStore, task: Task) -> Task:
    assert tasks.create(task) is None
    stored = tasks.get(task.task_id)
    assert stored is not None
    return stored


def claim(tasks: TaskStore, task_id: str, at: datetime = T0, run_id: int = 0) -> Task | None:
    return tasks.patch_run(task_id, transitions.claim_patch(run_id, WORKER, at, LEASE, QUEUE))


def page_all(tasks: TaskStore, state: TaskState, limit: int) -> tuple[list[QueueEntry], list[int]]:
    """Every entry of the queue's listing, a page at a time; and the size of each page."""
    entries: list[QueueEntry] = []
    sizes: list[int] = []
    token: str | None = None
    while True:
        page = tasks.queue_page(QUEUE, state, limit, token)
        entries += page.entries
        sizes.append(len(page.entries))
        token = page.continuation
        if token is None:
            return entries, sizes


# --- rows -----------------------------------------------------------------------------------------
def test_get_of_an_unknown_task_is_none(tasks: TaskStore) -> None:
    assert tasks.get("nobody") is None
    assert tasks.get_many(["nobody"]) == {}


def test_a_created_task_reads_back_whole_at_version_1(tasks: TaskStore) -> None:
    task = replace(pending("a", routes=["r.1"], tags={"k": "v"}), link="lnk")
    stored = created(tasks, task)
    assert stored == replace(task, version=1)
    assert stored.definition is not task.definition


def test_create_returns_the_stored_task_when_the_id_is_taken(tasks: TaskStore) -> None:
    first = created(tasks, pending("a"))
    other = unscheduled("a", deadline=timedelta(hours=2), priority="high")
    assert tasks.create(other) == first
    assert tasks.get("a") == first


def test_dates_are_kept_to_the_millisecond(tasks: TaskStore) -> None:
    at = T0 + timedelta(microseconds=123_456)
    stored = created(tasks, pending("a", at=at))
    assert stored.runs[0].scheduled == T0 + timedelta(milliseconds=123)


def test_get_many_returns_the_known_tasks_once_each(tasks: TaskStore) -> None:
    created(tasks, pending("a"))
    created(tasks, unscheduled("b"))
    found = tasks.get_many(["a", "b", "a", "nobody"], consistent=True)
    assert sorted(found) == ["a", "b"]
    assert found["b"].state is TaskState.UNSCHEDULED


def test_every_field_of_every_run_reads_back_as_written(tasks: TaskStore) -> None:
    """A run with every field set (claimed, then resolved) and one with only those every run has."""
    created(tasks, pending("a"))
    claimed = claim(tasks, "a")
    assert claimed is not None
    retried = transitions.report_exception(claimed, 0, ReasonResolved.WORKER_SHUTDOWN, T0 + timedelta(seconds=1))
    written = tasks.save(retried, claimed.version)
    assert [r.to_json() for r in retried.runs] == [
        {
            "runId": 0,
            "state": "exception",
            "reasonCreated": "scheduled",
            "reasonResolved": "worker-shutdown",
            "workerGroup": "wg",
            "workerId": "w1",
            "takenUntil": "2030-01-01T00:20:00.000Z",
            "scheduled": "2030-01-01T00:00:00.000Z",
            "started": "2030-01-01T00:00:00.000Z",
            "resolved": "2030-01-01T00:00:01.000Z",
        },
        {"runId": 1, "state": "pending", "reasonCreated": "retry", "scheduled": "2030-01-01T00:00:01.000Z"},
    ]
    assert written is not None and written.runs == retried.runs  # a write's answer
    stored = tasks.get("a")
    assert stored is not None and stored.runs == retried.runs


# --- version-guarded saves ------------------------------------------------------------------------
def test_save_writes_the_status_and_bumps_the_version_when_it_still_matches(tasks: TaskStore) -> None:
    stored = created(tasks, unscheduled("a"))
    scheduled = transitions.schedule(stored, T0)
    saved = tasks.save(scheduled, expected_version=1)
    assert saved is not None and saved.version == 2 and saved.state is TaskState.PENDING
    assert saved.partial and saved.status_json() == scheduled.status_json()
    assert tasks.get("a") == replace(scheduled, version=2)


def test_save_returns_none_when_the_row_moved_on(tasks: TaskStore) -> None:
    stored = created(tasks, unscheduled("a"))
    assert tasks.save(transitions.schedule(stored, T0), 1) is not None
    late = transitions.cancel(stored, T0)
    assert tasks.save(late, 1) is None
    current = tasks.get("a")
    assert current is not None and current.state is TaskState.PENDING and current.version == 2


def test_save_of_a_task_that_does_not_exist_returns_none(tasks: TaskStore) -> None:
    assert tasks.save(pending("ghost"), 0) is None
    assert tasks.get("ghost") is None


def test_save_writes_the_status_only_never_the_definition(tasks: TaskStore) -> None:
    stored = created(tasks, unscheduled("a"))
    changed = replace(transitions.schedule(stored, T0), definition={**stored.definition, "tags": {"new": "x"}})
    saved = tasks.save(replace(changed, priority="high", hint_seq=3, retries_left=1), 1)
    assert saved is not None
    assert (saved.priority, saved.hint_seq, saved.retries_left) == ("high", 3, 1)
    again = tasks.get("a")
    assert again is not None and again.definition == stored.definition
    assert again == saved.with_definition(stored.definition)


def test_a_write_answers_the_status_without_the_definition(tasks: TaskStore) -> None:
    stored = created(tasks, pending("a", routes=["r.1"], tags={"k": "v"}))
    claimed = claim(tasks, "a")
    assert claimed is not None and claimed.partial
    assert claimed.status_json() == replace(stored, runs=claimed.runs).status_json()
    assert "payload" not in claimed.definition
    assert tasks.definitions(["a", "ghost"]) == {"a": stored.definition}


def test_definitions_of_unknown_tasks_are_left_out(tasks: TaskStore) -> None:
    assert tasks.definitions([]) == {}
    assert tasks.definitions(["ghost"]) == {}


# --- patch_run: the guarded write without a read --------------------------------------------------
def test_patch_run_claims_the_pending_latest_run(tasks: TaskStore) -> None:
    created(tasks, pending("a"))
    claimed = claim(tasks, "a", T0 + timedelta(seconds=5))
    assert claimed is not None and claimed.version == 2
    run = claimed.runs[0]
    assert run.state is TaskState.RUNNING and (run.worker_group, run.worker_id) == ("wg", "w1")
    assert run.started == T0 + timedelta(seconds=5) and run.taken_until == T0 + timedelta(seconds=5) + LEASE
    stored = tasks.get("a")
    assert stored is not None and not stored.partial
    assert claimed == stored.status_only()


def test_patch_run_returns_none_when_the_run_is_not_in_the_expected_state(tasks: TaskStore) -> None:
    created(tasks, pending("a"))
    assert claim(tasks, "a") is not None
    assert claim(tasks, "a") is None
    assert tasks.patch_run("a", transitions.resolve_patch(0, ReasonResolved.COMPLETED, T0)) is not None
    assert tasks.patch_run("a", transitions.resolve_patch(0, ReasonResolved.FAILED, T0)) is None
    stored = tasks.get("a")
    assert stored is not None and stored.state is TaskState.COMPLETED and stored.version == 3


def test_patch_run_returns_none_for_a_run_that_is_not_the_latest(tasks: TaskStore) -> None:
    stored = created(tasks, pending("a"))
    first = transitions.cancel(stored, T0)
    retried = transitions.rerun(first, T0)
    assert tasks.save(retried, 1) is not None
    assert claim(tasks, "a", run_id=0) is None
    assert claim(tasks, "a", run_id=2) is None
    assert claim(tasks, "a", run_id=1) is not None


def test_patch_run_returns_none_for_an_unscheduled_task(tasks: TaskStore) -> None:
    created(tasks, unscheduled("a"))
    assert claim(tasks, "a") is None


def test_patch_run_claims_only_if_the_deadline_outlives_the_lease(tasks: TaskStore) -> None:
    created(tasks, pending("short", deadline=timedelta(minutes=10)))
    created(tasks, pending("long", deadline=timedelta(minutes=30)))
    assert claim(tasks, "short") is None
    assert claim(tasks, "long") is not None


def test_patch_run_claims_only_from_the_task_queue_named(tasks: TaskStore) -> None:
    created(tasks, pending("a", taskQueueId="proj/other"))
    assert claim(tasks, "a") is None
    unchecked = transitions.claim_patch(0, WORKER, T0, LEASE)
    assert tasks.patch_run("a", unchecked) is not None


def test_patch_run_of_a_task_that_does_not_exist_returns_none(tasks: TaskStore) -> None:
    assert claim(tasks, "ghost") is None
    assert tasks.get("ghost") is None


# --- the task queue index -------------------------------------------------------------------------
def test_queue_page_lists_pending_tasks_oldest_first_page_by_page(tasks: TaskStore) -> None:
    for i in range(7):
        created(tasks, pending(f"t{i}", at=T0 + timedelta(seconds=10 - i)))
    entries, sizes = page_all(tasks, TaskState.PENDING, 3)
    assert [e.task_id for e in entries] == [f"t{i}" for i in reversed(range(7))]
    assert entries[0].since == T0 + timedelta(seconds=4) and entries[0].taken_until is None
    assert sizes[:3] == [3, 3, 1]


def test_queue_page_lists_every_entry_once_in_order_however_it_is_paged(tasks: TaskStore) -> None:
    # entries with equal times too: they come in taskId order
    for i in range(20):
        created(tasks, pending(f"t{i:02}", at=T0 + timedelta(seconds=i // 3)))
    expected = [f"t{i:02}" for i in range(20)]
    for limit in (1, 4, 7, 20, 25):
        entries, _ = page_all(tasks, TaskState.PENDING, limit)
        assert [e.task_id for e in entries] == expected


def test_a_short_page_carries_no_token(tasks: TaskStore) -> None:
    created(tasks, pending("a"))
    page = tasks.queue_page(QUEUE, TaskState.PENDING, 5, None)
    assert [e.task_id for e in page.entries] == ["a"] and page.continuation is None


def test_queue_page_lists_running_tasks_with_their_lease_and_start(tasks: TaskStore) -> None:
    created(tasks, pending("a"))
    created(tasks, pending("b"))
    claim(tasks, "b", T0 + timedelta(seconds=1))
    page = tasks.queue_page(QUEUE, TaskState.RUNNING, 10, None)
    assert page.entries == [QueueEntry("b", T0 + timedelta(seconds=1), T0 + timedelta(seconds=1) + LEASE)]
    assert [e.task_id for e in tasks.queue_page(QUEUE, TaskState.PENDING, 10, None).entries] == ["a"]


def test_resolved_and_unscheduled_tasks_are_in_no_queue_listing(tasks: TaskStore) -> None:
    created(tasks, unscheduled("u"))
    created(tasks, pending("a"))
    claim(tasks, "a")
    tasks.patch_run("a", transitions.resolve_patch(0, ReasonResolved.COMPLETED, T0))
    for state in (TaskState.PENDING, TaskState.RUNNING):
        assert tasks.queue_page(QUEUE, state, 10, None).entries == []


def test_queue_page_refuses_a_token_of_another_listing(tasks: TaskStore) -> None:
    for i in range(3):
        created(tasks, pending(f"t{i}"))
    token = tasks.queue_page(QUEUE, TaskState.PENDING, 1, None).continuation
    assert token is not None
    with pytest.raises(InputError):
        tasks.queue_page(QUEUE, TaskState.RUNNING, 1, token)
    with pytest.raises(InputError):
        tasks.queue_page("proj/other", TaskState.PENDING, 1, token)
    with pytest.raises(InputError):
        tasks.queue_page(QUEUE, TaskState.PENDING, 1, "not-a-token")


def test_queue_counts_count_what_is_live_at_the_instant(tasks: TaskStore) -> None:
    created(tasks, pending("p1"))
    created(tasks, pending("p2", deadline=timedelta(minutes=30)))
    created(tasks, pending("r1"))
    created(tasks, pending("other", taskQueueId="proj/other"))
    claim(tasks, "r1")
    assert tasks.queue_counts(QUEUE, T0) == QueueCounts(pending=2, claimed=1, complete=True)
    # p2's deadline passed; r1's lease expired: neither counts, whatever the sweeper has yet to do
    later = T0 + LEASE + timedelta(minutes=11)
    assert tasks.queue_counts(QUEUE, later) == QueueCounts(pending=1, claimed=0, complete=True)
    assert tasks.queue_counts("proj/none", T0) == QueueCounts(0, 0, True)


def test_queue_counts_read_no_more_pending_entries_than_told_but_every_running_one(tasks: TaskStore) -> None:
    for i in range(3):
        created(tasks, pending(f"p{i}", at=T0 + timedelta(seconds=i)))
    for i in range(5):
        created(tasks, pending(f"r{i}", at=T0 + timedelta(seconds=i)))
        claim(tasks, f"r{i}")
    assert tasks.queue_counts(QUEUE, T0, examine=1000) == QueueCounts(3, 5, True)
    # fewer entries read than there are: the pending count says it may be short; claimed is exact
    counts = tasks.queue_counts(QUEUE, T0, examine=1)
    assert not counts.complete and 1 <= counts.pending <= 3 and counts.claimed == 5


# --- the sweeper's agenda -------------------------------------------------------------------------
SHARDS = range(TEST_SETTINGS.due_shards)


def all_due(tasks: TaskStore, at: datetime, limit: int = 10) -> list[str]:
    return sorted(e.task_id for shard in SHARDS for e in tasks.due(shard, at, limit))


def test_due_names_the_tasks_due_by_now_and_no_more_than_asked(tasks: TaskStore) -> None:
    for i in range(6):
        created(tasks, pending(f"t{i}", deadline=timedelta(minutes=20 + i)))
    assert all_due(tasks, T0 + timedelta(minutes=9)) == []  # a pending run's first redispatch: after 600 s
    at = T0 + timedelta(minutes=10)
    assert all_due(tasks, at) == ["t0", "t1", "t2", "t3", "t4", "t5"]
    assert all(len(tasks.due(shard, at, 1)) == 1 for shard in SHARDS)  # each shard holds some of them
    assert all_due(tasks, at, 1) != all_due(tasks, at)
    assert tasks.due(len(SHARDS) + 5, at, 10) == []  # a shard no row was written to


def test_due_pages_through_a_shard_earliest_first(tasks: TaskStore) -> None:
    for i in range(8):
        created(tasks, pending(f"t{i}", deadline=timedelta(minutes=8 - i)))  # due at their deadlines
    at = T0 + timedelta(minutes=10)
    seen: list[str] = []
    for shard in SHARDS:
        entries: list[DueEntry] = []
        while page := tasks.due(shard, at, 2, entries[-1] if entries else None):
            entries += page
        assert entries == sorted(entries)
        assert [e.due_at for e in entries] == sorted(T0 + timedelta(minutes=8 - int(e.task_id[1:])) for e in entries)
        seen += [e.task_id for e in entries]
    assert sorted(seen) == [f"t{i}" for i in range(8)]


def test_a_claim_keeps_the_pending_runs_earlier_sweeper_time_and_a_save_moves_it_to_the_lease(
    tasks: TaskStore,
) -> None:
    """The claim moves no byDue entry: the task stays due at its pending run's re-announcement
    (600 s after scheduling, before the lease ends); written again (the sweeper's re-arm), it is due
    when its lease ends."""
    created(tasks, pending("a", deadline=timedelta(hours=2)))
    claimed = claim(tasks, "a")
    assert claimed is not None and claimed.state is TaskState.RUNNING
    assert all_due(tasks, T0 + timedelta(minutes=9)) == []
    assert all_due(tasks, T0 + timedelta(minutes=10)) == ["a"]
    stored = tasks.get("a")
    assert stored is not None
    assert tasks.save(transitions.rearm(stored), stored.version) is not None
    assert all_due(tasks, T0 + LEASE - timedelta(seconds=1)) == []
    assert all_due(tasks, T0 + LEASE) == ["a"]


def test_a_claim_whose_lease_ends_before_the_pending_runs_sweeper_time_is_refused(tasks: TaskStore) -> None:
    """Blind, it could leave the sweeper looking only after the lease ended: the careful path decides."""
    created(tasks, pending("a", deadline=timedelta(hours=2)))
    assert tasks.patch_run("a", transitions.claim_patch(0, WORKER, T0, timedelta(minutes=5), QUEUE)) is None
    stored = tasks.get("a")
    assert stored is not None and stored.state is TaskState.PENDING


def test_a_resolved_task_is_never_due(tasks: TaskStore) -> None:
    created(tasks, pending("a"))
    claim(tasks, "a")
    tasks.patch_run("a", transitions.resolve_patch(0, ReasonResolved.COMPLETED, T0))
    assert all_due(tasks, T0 + timedelta(days=30)) == []


# --- task groups ----------------------------------------------------------------------------------
def test_group_page_pages_through_the_members_in_task_id_order(tasks: TaskStore) -> None:
    for task_id in ["e", "b", "d", "a", "c"]:
        created(tasks, pending(task_id, taskGroupId="g"))
    created(tasks, pending("x", taskGroupId="other"))
    ids: list[str] = []
    token: str | None = None
    while True:
        page, token = tasks.group_page("g", 2, token)
        assert len(page) <= 2
        ids += page
        if token is None:
            break
    assert ids == ["a", "b", "c", "d", "e"]


def test_group_page_refuses_a_token_of_another_group(tasks: TaskStore) -> None:
    for task_id in ["a", "b"]:
        created(tasks, pending(task_id, taskGroupId="g"))
    _, token = tasks.group_page("g", 1, None)
    assert token is not None
    with pytest.raises(InputError):
        tasks.group_page("h", 1, token)
    assert tasks.group_page("empty", 10, None) == ([], None)
