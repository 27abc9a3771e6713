"""Worker metadata: what task-row changes say (domain/worker_info.py), how it merges into the
stored rows, and how many store requests recording a stream batch costs (services/worker_info.py,
over an in-memory store that counts its calls)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from chalicelib.clock import FakeClock
from chalicelib.domain.model import ReasonCreated, Run, Task, TaskState, Worker
from chalicelib.domain.worker_info import (
    RECENT_TASKS,
    SEEN_RESOLUTION,
    WORKER_EXPIRY,
    Provisioner,
    QueueWorker,
    RecentTask,
    TaskQueue,
    WorkerKey,
    WorkerSeen,
    provisioners,
    quarantined_worker,
    seen,
    task_queue_seen,
    worker_seen,
)
from chalicelib.services.worker_info import WorkerInfo

T0 = datetime(2030, 1, 1, tzinfo=UTC)
TIMEOUT = timedelta(seconds=1200)
KEY = WorkerKey("p/w", "wg", "w1")


def task(task_id: str, *runs: Run, queue: str = "p/w") -> Task:
    return Task(task_id, {"taskQueueId": queue}, "lowest", 5, runs)


def pending(run_id: int = 0) -> Run:
    return Run(run_id, TaskState.PENDING, ReasonCreated.SCHEDULED, T0)


def running(run_id: int = 0, started: datetime = T0, worker: str = "w1", taken: timedelta = TIMEOUT) -> Run:
    return Run(
        run_id, TaskState.RUNNING, ReasonCreated.SCHEDULED, T0, None, "wg", worker, started + taken, started, None
    )


# --- deriving activity ----------------------------------------------------------------------------
def test_a_new_task_marks_its_task_queue_seen_when_processed() -> None:
    s = seen([(None, task("a", pending()))], T0 + timedelta(seconds=3), TIMEOUT)
    assert s.queues == {"p/w": T0 + timedelta(seconds=3)} and s.workers == {}


def test_a_claim_is_seen_at_its_start_and_a_reclaim_when_it_happened() -> None:
    claimed = seen([(task("a", pending()), task("a", running()))], T0 + timedelta(minutes=1), TIMEOUT)
    assert claimed.workers[KEY].claims == [RecentTask("a", 0, T0)]
    assert claimed.workers[KEY].last == T0
    later = T0 + timedelta(minutes=10)
    reclaimed = seen(
        [(task("a", running()), task("a", running(taken=TIMEOUT + timedelta(minutes=10))))], later, TIMEOUT
    )
    assert reclaimed.workers[KEY].claims == [] and reclaimed.workers[KEY].last == later
    assert reclaimed.queues == {"p/w": later}


def test_changes_that_claim_nothing_see_nothing() -> None:
    done = replace(running(), state=TaskState.COMPLETED)
    assert seen([(task("a", running()), task("a", done))], T0, TIMEOUT).workers == {}
    assert seen([(task("a", running()), None)], T0, TIMEOUT).workers == {}


# --- merging --------------------------------------------------------------------------------------
def test_recent_tasks_are_the_last_20_oldest_first_whatever_the_order_they_arrive_in() -> None:
    claims = [RecentTask(f"t{i:02}", 0, T0 + timedelta(seconds=i)) for i in range(25)]
    first = worker_seen(None, KEY, WorkerSeen(claims[-1].claimed, claims[12:]))
    assert first is not None
    merged = worker_seen(first, KEY, WorkerSeen(claims[11].claimed, claims[:12][::-1]))
    assert merged is not None
    assert [t.task_id for t in merged.recent_tasks] == [f"t{i:02}" for i in range(5, 25)]
    assert len(merged.recent_tasks) == RECENT_TASKS
    assert merged.first_claim == T0 and merged.last_date_active == claims[-1].claimed
    assert worker_seen(merged, KEY, WorkerSeen(claims[-1].claimed, claims[-3:])) is None  # a repeat


def test_expiry_and_last_activity_never_move_backward() -> None:
    w = worker_seen(None, KEY, WorkerSeen(T0 + timedelta(hours=1), [RecentTask("a", 0, T0 + timedelta(hours=1))]))
    assert w is not None and w.expires == T0 + timedelta(hours=1) + WORKER_EXPIRY
    older = worker_seen(w, KEY, WorkerSeen(T0, [RecentTask("b", 0, T0)]))
    assert older is not None
    assert older.expires == w.expires and older.last_date_active == w.last_date_active and older.first_claim == T0


def test_activity_within_the_resolution_is_not_worth_a_write() -> None:
    q = task_queue_seen(None, "p/w", T0)
    assert q is not None
    assert task_queue_seen(q, "p/w", T0 + SEEN_RESOLUTION - timedelta(seconds=1)) is None
    later = task_queue_seen(q, "p/w", T0 + SEEN_RESOLUTION)
    assert later is not None and later.expires > q.expires


def test_quarantine_details_record_each_change_and_stay_bounded() -> None:
    w = QueueWorker("p/w", "wg", "w1", T0, T0, T0 + WORKER_EXPIRY)
    for i in range(60):
        w = quarantined_worker(w, T0 + timedelta(hours=i), None if i else "why", "me", T0)
    assert w.quarantine_until == T0 + timedelta(hours=59)
    assert len(w.quarantine_details) == 50 and w.quarantine_details[-1].quarantine_info == "[unspecified]"
    assert w.keep_until == w.quarantine_until


def test_provisioners_sum_up_their_task_queues() -> None:
    queues = [TaskQueue("a/x", T0, T0), TaskQueue("a/y", T0 + timedelta(1), T0), TaskQueue("b/x", T0, T0)]
    assert provisioners(queues) == [Provisioner("a", T0 + timedelta(1), T0), Provisioner("b", T0, T0)]


# --- what recording a batch costs -----------------------------------------------------------------
class CountingStore:
    """An in-memory WorkerStore that counts the requests the service makes."""

    def __init__(self) -> None:
        self.queues: dict[str, TaskQueue] = {}
        self.workers: dict[WorkerKey, QueueWorker] = {}
        self.calls: list[str] = []
        self.race_once = False

    def load(
        self, task_queue_ids: Iterable[str], workers: Iterable[WorkerKey]
    ) -> tuple[dict[str, TaskQueue], dict[WorkerKey, QueueWorker]]:
        self.calls.append("load")
        return (
            {q: self.queues[q] for q in task_queue_ids if q in self.queues},
            {k: self.workers[k] for k in workers if k in self.workers},
        )

    def task_queue(self, task_queue_id: str) -> TaskQueue | None:
        self.calls.append("get")
        return self.queues.get(task_queue_id)

    def worker(self, key: WorkerKey) -> QueueWorker | None:
        self.calls.append("get")
        return self.workers.get(key)

    def save_task_queue(self, queue: TaskQueue, expected_version: int | None) -> bool:
        self.calls.append("update")
        old = self.queues.get(queue.task_queue_id)
        if (old.version if old else None) != expected_version:
            return False
        self.queues[queue.task_queue_id] = replace(queue, version=(expected_version or 0) + 1)
        return True

    def save_worker(self, worker: QueueWorker, expected_version: int | None) -> bool:
        self.calls.append("update")
        if self.race_once:  # another writer got there first
            self.race_once = False
            old = self.workers[worker.key]
            self.workers[worker.key] = replace(old, version=old.version + 1)
            return False
        old_worker = self.workers.get(worker.key)
        if (old_worker.version if old_worker else None) != expected_version:
            return False
        self.workers[worker.key] = replace(worker, version=(expected_version or 0) + 1)
        return True

    def quarantine_until(self, key: WorkerKey) -> datetime | None:
        self.calls.append("get")
        w = self.workers.get(key)
        return w.quarantine_until if w else None


def service(store: CountingStore, clock: FakeClock) -> WorkerInfo:
    return WorkerInfo(store, clock, TIMEOUT, cache_seconds=5)  # type: ignore[arg-type]


def claims(n: int, worker: str = "w1") -> list[tuple[Task | None, Task | None]]:
    return [(task(f"t{i}", pending()), task(f"t{i}", running(worker=worker))) for i in range(n)]


def test_a_batch_costs_one_read_and_one_write_per_worker_and_task_queue() -> None:
    store, clock = CountingStore(), FakeClock(T0)
    workers = service(store, clock)
    batch = [*claims(30), *claims(20, worker="w2")]
    assert workers.record_seen(batch) == 3
    assert store.calls == ["load", "update", "update", "update"]
    assert [t.task_id for t in store.workers[KEY].recent_tasks] == sorted(f"t{i}" for i in range(30))[-20:]


def test_a_redelivered_batch_reads_once_and_writes_nothing() -> None:
    store, clock = CountingStore(), FakeClock(T0)
    workers = service(store, clock)
    workers.record_seen(claims(3))
    store.calls.clear()
    assert workers.record_seen(claims(3)) == 0
    assert store.calls == ["load"]


def test_new_tasks_on_a_task_queue_recorded_lately_cost_nothing() -> None:
    store, clock = CountingStore(), FakeClock(T0)
    workers = service(store, clock)
    workers.record_seen([(None, task("a", pending()))])
    store.calls.clear()
    clock.advance(60)
    assert workers.record_seen([(None, task("b", pending()))]) == 0
    assert store.calls == []
    clock.advance(SEEN_RESOLUTION.total_seconds())
    assert workers.record_seen([(None, task("c", pending()))]) == 1
    assert store.calls == ["load", "update"]


def test_a_race_on_a_worker_row_is_merged_again_after_a_fresh_read() -> None:
    store, clock = CountingStore(), FakeClock(T0)
    workers = service(store, clock)
    workers.record_seen(claims(1))
    store.race_once = True
    store.calls.clear()
    later = [(task("x", pending()), task("x", running(started=T0 + timedelta(seconds=5))))]
    assert workers.record_seen(later) == 1
    assert store.calls == ["load", "update", "get", "update"]
    assert [t.task_id for t in store.workers[KEY].recent_tasks] == ["t0", "x"]


def test_the_quarantine_gate_reads_at_most_once_per_cache_period() -> None:
    store, clock = CountingStore(), FakeClock(T0)
    workers = service(store, clock)
    store.workers[KEY] = QueueWorker("p/w", "wg", "w1", T0, T0, T0 + WORKER_EXPIRY, quarantine_until=T0 + timedelta(1))
    assert all(workers.quarantined("p/w", Worker("wg", "w1")) for _ in range(10))
    assert store.calls == ["get"]
    clock.advance(5)
    assert workers.quarantined("p/w", Worker("wg", "w1"))
    assert store.calls == ["get", "get"]
