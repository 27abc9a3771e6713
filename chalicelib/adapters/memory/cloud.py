"""The in-memory cloud and queue facts the provisioner sees: MemoryProvider and MemoryQueueFacts.

MemoryProvider stands for adapters/ec2_provider.py (a cloud that starts nothing); MemoryQueueFacts
answers ports.QueueFacts from counts set by hand.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Collection, Sequence
from typing import Any

from ...domain.pools import PoolWorker, QueueActivity, WorkerPool
from ...domain.provisioning import CloudState, Launch
from ...services.ports import Launched, LaunchFailed
from .common import _json_copy


class MemoryProvider:
    """A cloud that starts nothing: launches are recorded instances, `running` until terminated.

    As EC2: a launch is all or none, a token used before answers with the instances it started,
    an unknown instance is `not-found` and terminating it is no error. Set `refuse` to a
    LaunchFailed to make launches fail as the cloud would refuse them.
    """

    def __init__(self, provider_id: str = "aws") -> None:
        self.provider_id = provider_id
        self.refuse: LaunchFailed | None = None
        self.states: dict[tuple[str, str], str] = {}  # (workerGroup, workerId) -> CloudState
        self.user_data: dict[str, dict[str, Any]] = {}  # by workerId
        self._launches: dict[str, list[Launched]] = {}  # by token
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def launch(self, pool: WorkerPool, launch: Launch, user_data: dict[str, Any], token: str) -> list[Launched]:
        with self._lock:
            if token in self._launches:
                return list(self._launches[token])
            if self.refuse is not None:
                raise self.refuse
            region = launch.launch_config.region
            started = []
            for _ in range(launch.instances):
                worker_id = f"i-{next(self._ids):017x}"
                self.states[(region, worker_id)] = CloudState.RUNNING
                self.user_data[worker_id] = _json_copy(user_data)
                started.append(Launched(region, worker_id, {"region": region, "state": CloudState.RUNNING}))
            self._launches[token] = started
        return list(started)

    def observe(self, workers: Sequence[PoolWorker]) -> dict[tuple[str, str], str]:
        with self._lock:
            return {
                (w.worker_group, w.worker_id): self.states.get((w.worker_group, w.worker_id), CloudState.NOT_FOUND)
                for w in workers
            }

    def census(self, regions: Collection[str]) -> dict[tuple[str, str], str]:
        with self._lock:
            return {k: state for k, state in self.states.items() if k[0] in regions}

    def terminate(self, workers: Sequence[PoolWorker]) -> None:
        with self._lock:
            for w in workers:
                if (w.worker_group, w.worker_id) in self.states:
                    self.states[(w.worker_group, w.worker_id)] = CloudState.TERMINATED


class MemoryQueueFacts:
    """What the provisioner asks the queue (ports.QueueFacts), set by hand: for provisioner tests
    without tasks. `hold` claims a run for a worker and `resolve` ends it; `worker_shutdown`
    resolves a held run and it is pending again (retried), as the queue does."""

    def __init__(self) -> None:
        self.pending: dict[str, int] = {}
        self.held: dict[str, dict[tuple[str, str], list[tuple[str, int]]]] = {}  # task queue -> worker -> runs
        self.activities: dict[str, dict[tuple[str, str], QueueActivity]] = {}
        self.shutdowns: list[tuple[str, int]] = []

    def add_pending(self, task_queue_id: str, count: int = 1) -> None:
        self.pending[task_queue_id] = self.pending.get(task_queue_id, 0) + count

    def hold(self, task_queue_id: str, worker: tuple[str, str], task_id: str, run_id: int = 0) -> None:
        self.held.setdefault(task_queue_id, {}).setdefault(worker, []).append((task_id, run_id))

    def resolve(self, task_id: str, run_id: int) -> str | None:
        """The run is resolved (by its worker): held no more. Returns its task queue, if it was held."""
        for task_queue_id, workers in self.held.items():
            for runs in workers.values():
                if (task_id, run_id) in runs:
                    runs.remove((task_id, run_id))
                    return task_queue_id
        return None

    def counts(self, task_queue_id: str) -> tuple[int, int]:
        claimed = sum(len(runs) for runs in self.held.get(task_queue_id, {}).values())
        return self.pending.get(task_queue_id, 0), claimed

    def held_runs(self, task_queue_id: str) -> dict[tuple[str, str], list[tuple[str, int]]]:
        return {w: list(runs) for w, runs in self.held.get(task_queue_id, {}).items() if runs}

    def runs_held_by(self, task_queue_id: str, worker: tuple[str, str], capacity: int) -> list[tuple[str, int]]:
        return list(self.held.get(task_queue_id, {}).get(worker, []))

    def activity(self, task_queue_id: str, workers: Sequence[tuple[str, str]]) -> dict[tuple[str, str], QueueActivity]:
        known = self.activities.get(task_queue_id, {})
        return {w: known[w] for w in workers if w in known}

    def worker_shutdown(self, task_id: str, run_id: int) -> None:
        task_queue_id = self.resolve(task_id, run_id)
        if task_queue_id is None:
            return  # resolved already: nothing to do
        self.shutdowns.append((task_id, run_id))
        self.add_pending(task_queue_id)
