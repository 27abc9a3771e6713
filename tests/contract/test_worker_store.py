"""WorkerStore: task queues and workers as the queue sees them, every write guarded by `version`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain.errors import InputError
from chalicelib.domain.worker_info import QuarantineDetail, QueueWorker, RecentTask, TaskQueue, WorkerKey
from chalicelib.services.ports import WorkerStore

T0 = datetime(2030, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
QUEUE = "proj/linux"


def queue(task_queue_id: str, expires: datetime = T0 + DAY, active: datetime = T0) -> TaskQueue:
    return TaskQueue(task_queue_id, expires, active)


def worker(worker_id: str, expires: datetime = T0 + DAY, quarantine: datetime | None = None) -> QueueWorker:
    return QueueWorker(QUEUE, "wg", worker_id, T0, T0, expires, quarantine_until=quarantine)


def saved_queues(workers: WorkerStore, *queues: TaskQueue) -> None:
    for q in queues:
        assert workers.save_task_queue(q, None)


def saved_workers(workers: WorkerStore, *found: QueueWorker) -> None:
    for w in found:
        assert workers.save_worker(w, None)


def listed(workers: WorkerStore, limit: int, at: datetime = T0, quarantined: bool | None = None) -> list[str]:
    ids: list[str] = []
    token: str | None = None
    while True:
        page, token = workers.workers(QUEUE, at, limit, token, quarantined)
        assert len(page) <= limit
        ids += [w.worker_id for w in page]
        if token is None:
            return ids


# --- task queues ----------------------------------------------------------------------------------
def test_unknown_rows_are_none(workers: WorkerStore) -> None:
    key = WorkerKey(QUEUE, "wg", "w1")
    assert workers.task_queue(QUEUE) is None
    assert workers.worker(key) is None
    assert workers.quarantine_until(key) is None
    assert workers.load([QUEUE], [key]) == ({}, {})


def test_a_new_task_queue_is_saved_at_version_1_and_only_once(workers: WorkerStore) -> None:
    assert workers.save_task_queue(queue(QUEUE), None)
    assert workers.task_queue(QUEUE) == replace(queue(QUEUE), version=1)
    assert not workers.save_task_queue(queue(QUEUE, expires=T0 + 2 * DAY), None)


def test_a_task_queue_is_saved_over_the_version_read_only(workers: WorkerStore) -> None:
    saved_queues(workers, queue(QUEUE))
    later = queue(QUEUE, expires=T0 + 2 * DAY, active=T0 + DAY)
    assert workers.save_task_queue(later, 1)
    assert not workers.save_task_queue(queue(QUEUE, expires=T0 + 3 * DAY), 1)
    assert not workers.save_task_queue(later, 7)
    assert workers.task_queue(QUEUE) == replace(later, version=2)


def test_live_task_queues_are_listed_by_id_page_by_page(workers: WorkerStore) -> None:
    ids = ["b/x", "a/z", "a/y", "c/q", "a/x"]
    saved_queues(workers, *(queue(i) for i in ids), queue("a/expired", expires=T0))
    found: list[str] = []
    token: str | None = None
    while True:
        page, token = workers.task_queues(T0, 2, token)
        assert len(page) <= 2
        found += [q.task_queue_id for q in page]
        if token is None:
            break
    assert found == sorted(ids)
    page, token = workers.task_queues(T0, 10, None, provisioner_id="a")
    assert [q.task_queue_id for q in page] == ["a/x", "a/y", "a/z"] and token is None


def test_a_task_queue_token_is_refused_for_another_provisioner(workers: WorkerStore) -> None:
    saved_queues(workers, queue("a/x"), queue("a/y"))
    _, token = workers.task_queues(T0, 1, None, provisioner_id="a")
    assert token is not None
    with pytest.raises(InputError):
        workers.task_queues(T0, 1, token, provisioner_id="b")


def test_provisioners_sum_up_their_live_task_queues_page_by_page(workers: WorkerStore) -> None:
    saved_queues(
        workers,
        queue("a/x", expires=T0 + DAY, active=T0),
        queue("a/y", expires=T0 + 3 * DAY, active=T0 - DAY),
        queue("b/x", active=T0 + timedelta(hours=1)),
        queue("c/x"),
        queue("d/gone", expires=T0),
    )
    first, token = workers.provisioners(T0, 2, None)
    assert [(p.provisioner_id, p.expires, p.last_date_active) for p in first] == [
        ("a", T0 + 3 * DAY, T0),
        ("b", T0 + DAY, T0 + timedelta(hours=1)),
    ]
    assert token is not None
    rest, token = workers.provisioners(T0, 2, token)
    assert [p.provisioner_id for p in rest] == ["c"] and token is None


# --- workers --------------------------------------------------------------------------------------
def test_a_worker_reads_back_whole(workers: WorkerStore) -> None:
    w = replace(
        worker("w1", quarantine=T0 + DAY),
        recent_tasks=(RecentTask("t1", 0, T0), RecentTask("t2", 1, T0 + timedelta(seconds=1))),
        quarantine_details=(QuarantineDetail("admin", T0, T0 + DAY, "flaky"),),
    )
    saved_workers(workers, w)
    assert workers.worker(w.key) == replace(w, version=1)
    assert workers.quarantine_until(w.key) == T0 + DAY


def test_a_worker_is_saved_over_the_version_read_only(workers: WorkerStore) -> None:
    saved_workers(workers, worker("w1"))
    assert not workers.save_worker(worker("w1"), None)
    assert workers.save_worker(worker("w1", expires=T0 + 2 * DAY), 1)
    assert not workers.save_worker(worker("w1", expires=T0 + 3 * DAY), 1)
    stored = workers.worker(WorkerKey(QUEUE, "wg", "w1"))
    assert stored is not None and stored.version == 2 and stored.expires == T0 + 2 * DAY


def test_saving_a_worker_without_a_quarantine_keeps_the_one_stored(workers: WorkerStore) -> None:
    detail = QuarantineDetail("admin", T0, T0 + DAY, "flaky")
    saved_workers(workers, replace(worker("w1", quarantine=T0 + DAY), quarantine_details=(detail,)))
    assert workers.save_worker(worker("w1", expires=T0 + 2 * DAY), 1)
    stored = workers.worker(WorkerKey(QUEUE, "wg", "w1"))
    assert stored is not None
    assert stored.quarantine_until == T0 + DAY and stored.quarantine_details == (detail,)
    assert stored.expires == T0 + 2 * DAY


def test_listed_workers_leave_out_the_expired_unless_quarantined(workers: WorkerStore) -> None:
    saved_workers(
        workers,
        worker("live"),
        worker("expired", expires=T0 - DAY),
        worker("expired-quarantined", expires=T0 - DAY, quarantine=T0 + DAY),
        worker("live-quarantined", quarantine=T0 + DAY),
        worker("quarantine-over", quarantine=T0 - DAY),
    )
    assert listed(workers, 10) == ["expired-quarantined", "live", "live-quarantined", "quarantine-over"]
    assert listed(workers, 10, quarantined=True) == ["expired-quarantined", "live-quarantined"]
    assert listed(workers, 10, quarantined=False) == ["live", "quarantine-over"]


def test_workers_are_listed_page_by_page_in_worker_order(workers: WorkerStore) -> None:
    names = [f"w{i:02}" for i in range(9)]
    saved_workers(workers, *(worker(n) for n in reversed(names)), worker("w-expired", expires=T0 - DAY))
    other = QueueWorker("proj/other", "wg", "elsewhere", T0, T0, T0 + DAY)
    saved_workers(workers, other)
    assert listed(workers, 4) == names


def test_a_worker_listing_token_is_refused_for_another_task_queue(workers: WorkerStore) -> None:
    saved_workers(workers, worker("a"), worker("b"))
    _, token = workers.workers(QUEUE, T0, 1, None, None)
    assert token is not None
    with pytest.raises(InputError):
        workers.workers("proj/other", T0, 1, token, None)


def test_load_reads_many_rows_at_once_and_leaves_out_the_unknown(workers: WorkerStore) -> None:
    saved_queues(workers, queue(QUEUE))
    saved_workers(workers, worker("w1"), worker("w2"))
    keys = [WorkerKey(QUEUE, "wg", w) for w in ("w1", "w2", "w1", "ghost")]
    queues, found = workers.load([QUEUE, "proj/none", QUEUE], keys)
    assert list(queues) == [QUEUE] and queues[QUEUE].version == 1
    assert sorted(k.worker_id for k in found) == ["w1", "w2"]
    assert found[keys[0]] == replace(worker("w1"), version=1)
    assert workers.load([], []) == ({}, {})
