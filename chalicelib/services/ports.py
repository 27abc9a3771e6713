"""The ports the services need, all of them here; adapters/ implements them over DynamoDB, SQS,
S3 and EC2 (and the embedded stack's local provider)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from ..domain.artifacts import Artifact
from ..domain.credentials import Client, Role
from ..domain.dispatch import Hint
from ..domain.events import Event
from ..domain.graph import TaskGroup
from ..domain.model import Task, TaskState
from ..domain.pools import PoolError, PoolWorker, QueueActivity, WorkerPool, WorkerState
from ..domain.provisioning import Launch, Lease
from ..domain.provisioning import WorkerKey as PoolWorkerKey
from ..domain.transitions import RunPatch
from ..domain.worker_info import Provisioner, QueueWorker, TaskQueue, WorkerKey


@dataclass(frozen=True)
class QueueEntry:
    """One pending or running task in a task queue's index."""

    task_id: str
    since: datetime
    taken_until: datetime | None = None


@dataclass(frozen=True)
class QueueCounts:
    """A task queue's live tasks from one read of its index: `pending` (before their deadline) and
    `claimed` (running, lease not expired); `complete` unless pending entries were left unread
    (then `pending` counts those read)."""

    pending: int
    claimed: int
    complete: bool


@dataclass(frozen=True, order=True)
class DueEntry:
    """One entry of the sweeper's index (`byDue`): the task and the instant it is due, in the
    index's order (`due_at`, then `task_id`)."""

    due_at: datetime
    task_id: str


@dataclass(frozen=True)
class Page:
    entries: list[QueueEntry]
    continuation: str | None


class TaskStore(Protocol):
    """A task is its immutable definition, written once, and its small status, which every write
    changes. Reads answer whole tasks; writes answer the status they wrote (`Task.partial`)."""

    def get(self, task_id: str) -> Task | None: ...

    def get_many(self, task_ids: Sequence[str], consistent: bool = False) -> dict[str, Task]: ...

    def definitions(self, task_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The definitions of the known tasks among `task_ids`."""

    def group_page(self, task_group_id: str, limit: int, continuation: str | None) -> tuple[list[str], str | None]: ...

    def create(self, task: Task) -> Task | None:
        """Insert a new task; if the id is taken, return the stored task instead."""

    def save(self, task: Task, expected_version: int) -> Task | None:
        """Write `task`'s status if it still has `expected_version` (a partial Task); None if it has not."""

    def patch_run(self, task_id: str, patch: RunPatch) -> Task | None:
        """Apply `patch` with one conditional write (no read; a partial Task); None if its guard does not hold."""

    def queue_page(self, task_queue_id: str, state: TaskState, limit: int, continuation: str | None) -> Page: ...

    def queue_counts(self, task_queue_id: str, live_at: datetime, examine: int | None = None) -> QueueCounts:
        """The queue's pending and claimed tasks still live at `live_at`, both from one read of its
        index: every running entry, and at most `examine` pending ones (the count is complete only
        if fewer were there)."""

    def due(self, shard: int, now: datetime, limit: int, after: DueEntry | None = None) -> list[DueEntry]:
        """The tasks of index shard `shard` the sweeper must look at by `now`: at most `limit`,
        earliest first, starting after `after` (one Query). A row keeps the shard it was created
        with, so any shard number may be asked for."""


class GraphStore(Protocol):
    def group(self, task_group_id: str, consistent: bool = False) -> TaskGroup | None: ...

    def ensure_group(self, task_group_id: str, scheduler_id: str, expires: datetime) -> TaskGroup | None: ...

    def seal_group(self, group: TaskGroup) -> None: ...

    def add_member(self, task_group_id: str, task_id: str, expires: datetime) -> None: ...

    def remove_members(self, members: Iterable[tuple[str, str]]) -> None: ...

    def has_members(self, task_group_id: str) -> bool: ...

    def add_edges(
        self, dependent_id: str, link: str, requires: str, required_ids: Sequence[str], count: int, expires: datetime
    ) -> None: ...

    def delete_edges(self, dependent_id: str, link: str, required_ids: Sequence[str]) -> None: ...

    def satisfy(self, edges: Iterable[tuple[str, str, str]]) -> None:
        """(dependent, link, required) edges satisfied: idempotent."""

    def requirements(self, dependent_id: str, link: str, limit: int | None = None) -> list[str]: ...

    def dependents(
        self, required_id: str, limit: int, continuation: str | None
    ) -> tuple[list[tuple[str, str, str, int | None]], str | None]:
        """A page of (dependent, link, requires, count) edges of `required_id`."""


class Undelivered(Exception):
    """Some of the items given to `EventBus.publish` or `HintQueues.send` were not delivered (after
    the adapter's own bounded retries): `indices` are their positions in what was given. The others
    were delivered."""

    def __init__(self, indices: Iterable[int], reason: str) -> None:
        self.indices = frozenset(indices)
        super().__init__(f"{len(self.indices)} not delivered: {reason}")


class EventBus(Protocol):
    def publish(self, events: Sequence[Event]) -> None:
        """Publish every event, or raise Undelivered naming those that were not."""


class ReleaseQueue(Protocol):
    """Where a dependency release too big for one invocation continues (services/dependencies.py)."""

    def enqueue(self, jobs: Sequence[dict[str, Any]]) -> None: ...


@dataclass(frozen=True)
class ReceivedHint:
    hint: Hint
    receipt: str
    queue_url: str


class HintQueues(Protocol):
    def send(self, hints: Sequence[Hint]) -> None:
        """Send every hint, or raise Undelivered naming those that were not."""

    def receive(self, task_queue_id: str, max_hints: int, wait_seconds: float) -> list[ReceivedHint]:
        """Hints for a task queue, highest priority first; waits up to `wait_seconds` for the first."""

    def delete(self, received: Sequence[ReceivedHint]) -> None: ...

    def approximate_count(self, task_queue_id: str) -> int:
        """The task queue's hints, visible or being received, as SQS estimates them (no DynamoDB read)."""


@dataclass(frozen=True)
class PurgeableArtifact:
    """An artifact row the sweeper may delete: its key, the `purgeAt` it was found with, and the
    bucket holding its object (s3 artifacts only)."""

    task_id: str
    run_id: int
    name: str
    purge_at: datetime
    bucket: str | None = None


class ArtifactStore(Protocol):
    def get(self, task_id: str, run_id: int, name: str) -> Artifact | None: ...

    def create(self, artifact: Artifact) -> Artifact | None:
        """Insert a new artifact; if the name is taken, return the stored artifact instead."""

    def replace(self, artifact: Artifact, expected: Artifact) -> bool:
        """Write `artifact` over the row if it is still exactly `expected`; False if it is not."""

    def page(
        self, task_id: str, run_id: int, limit: int, continuation: str | None
    ) -> tuple[list[Artifact], str | None]:
        """A page of a run's artifacts, ordered by name."""

    def purgeable(self, now: datetime, limit: int) -> list[PurgeableArtifact]:
        """Rows whose `purgeAt` has passed by `now` (at most `limit`)."""

    def purge(self, artifacts: Sequence[PurgeableArtifact]) -> None:
        """Delete each row unless it changed since it was found (a repeat moved its purgeAt)."""


class BlobStore(Protocol):
    """Where s3 artifacts' bytes live: URLs clients use directly, and deletion."""

    def put_url(self, bucket: str, key: str, content_type: str, expires_in: timedelta) -> str: ...

    def get_url(self, bucket: str, key: str, expires_in: timedelta) -> str: ...

    def delete(self, bucket: str, keys: Sequence[str]) -> list[str]:
        """Delete objects (a missing one counts as deleted); returns the keys that could not be."""


# --- task queues and workers, as the queue sees them -----------------------------------------------
class WorkerStore(Protocol):
    """The workers table (adapters/worker_store.py). `save_*` writes only the queue's own
    attributes, if the row still has `expected_version` (None: if it does not exist yet); False
    when that condition fails. Listings leave out expired rows."""

    def task_queue(self, task_queue_id: str) -> TaskQueue | None: ...

    def task_queues(
        self, now: datetime, limit: int, continuation: str | None, provisioner_id: str | None = None
    ) -> tuple[list[TaskQueue], str | None]: ...

    def provisioners(self, now: datetime, limit: int, continuation: str | None) -> tuple[list[Provisioner], str | None]:
        """A page of the provisioners of live task queues, by id."""
        ...

    def worker(self, key: WorkerKey) -> QueueWorker | None: ...

    def workers(
        self, task_queue_id: str, now: datetime, limit: int, continuation: str | None, quarantined: bool | None
    ) -> tuple[list[QueueWorker], str | None]:
        """A page of the task queue's visible workers (all, or only those (not) quarantined now)."""
        ...

    def quarantine_until(self, key: WorkerKey) -> datetime | None:
        """Only the worker's quarantineUntil (None: none, or no such worker): a small read."""
        ...

    def load(
        self, task_queue_ids: Iterable[str], workers: Iterable[WorkerKey]
    ) -> tuple[dict[str, TaskQueue], dict[WorkerKey, QueueWorker]]:
        """Many rows at once (BatchGetItem, strongly consistent)."""
        ...

    def save_task_queue(self, queue: TaskQueue, expected_version: int | None) -> bool: ...

    def save_worker(self, worker: QueueWorker, expected_version: int | None) -> bool: ...


# --- worker pools (worker-manager) ----------------------------------------------------------------
class PoolStore(Protocol):
    """Worker pools, their workers and their errors (adapters/pool_store.py)."""

    def get_pool(self, worker_pool_id: str, consistent: bool = False) -> WorkerPool | None: ...

    def put_pool(self, pool: WorkerPool, *, create: bool) -> bool:
        """Create (id not taken) or replace (id exists); False when that condition fails."""
        ...

    def delete_pool(self, worker_pool_id: str) -> None: ...

    def list_pools(self, limit: int, continuation: str | None) -> tuple[list[WorkerPool], str | None]: ...

    def all_pools(self) -> list[WorkerPool]: ...

    def get_worker(self, worker_pool_id: str, worker_group: str, worker_id: str) -> PoolWorker | None: ...

    def find_worker(self, worker_id: str) -> PoolWorker | None:
        """The worker with this id in any pool (EC2 events name only the instance)."""
        ...

    def list_workers(
        self, worker_pool_id: str, limit: int, continuation: str | None, state: str | None = None
    ) -> tuple[list[PoolWorker], str | None]: ...

    def alive_workers(self, worker_pool_id: str) -> list[PoolWorker]:
        """Every worker of the pool not yet stopped (all pages)."""
        ...

    def put_worker(
        self, worker: PoolWorker, *, expected_state: WorkerState | None = None, expected_secret_hash: str | None = None
    ) -> bool:
        """Write a worker; with `expected_state`, only if it is still in that state (and, with
        `expected_secret_hash`, still has that secret) — else False. Without it, only if no such
        worker exists yet (a launch)."""
        ...

    def add_error(self, error: PoolError) -> None: ...

    def errors(
        self, worker_pool_id: str, since: datetime, limit: int, continuation: str | None
    ) -> tuple[list[PoolError], str | None]: ...

    def take_lease(self, holder: str, now: datetime, until: datetime) -> Lease:
        """Take the provisioner's lease for `holder` until `until`, unless another holder's has
        not expired by `now` (one conditional write). Returns the lease as it is now: `holder`'s
        if taken, else the other holder's."""
        ...

    def release_lease(self, holder: str, resume_at: str) -> bool:
        """End `holder`'s lease, recording where the next run starts; False (nothing written) if
        another holder took it over meanwhile."""
        ...


class Tally(Protocol):
    """A worker's state and capacity: all a pool's counters need."""

    @property
    def state(self) -> WorkerState: ...

    @property
    def capacity(self) -> int: ...


class PoolRecords(PoolStore, Protocol):
    """The PoolStore plus what worker-manager's listings need (adapters/pool_store.py has both)."""

    def put_pool(self, pool: WorkerPool, *, create: bool, expected: WorkerPool | None = None) -> bool: ...

    def list_workers(
        self,
        worker_pool_id: str,
        limit: int,
        continuation: str | None,
        state: str | None = None,
        launch_config_id: str | None = None,
    ) -> tuple[list[PoolWorker], str | None]: ...

    def worker_tallies(self, worker_pool_id: str) -> Sequence[Tally]: ...

    def errors(
        self,
        worker_pool_id: str,
        since: datetime,
        limit: int,
        continuation: str | None,
        launch_config_id: str | None = None,
        error_id: str | None = None,
    ) -> tuple[list[PoolError], str | None]: ...


class QueueFacts(Protocol):
    """What the provisioner and worker registration need to know from the queue about a task
    queue (a worker pool's id) and its workers (services/queue_facts.py)."""

    def counts(self, task_queue_id: str) -> tuple[int, int]:
        """(pendingTasks, claimedTasks)."""
        ...

    def held_runs(self, task_queue_id: str) -> dict[PoolWorkerKey, list[tuple[str, int]]]:
        """The runs each worker holds a claim on now (reads every running task of the queue)."""
        ...

    def runs_held_by(self, task_queue_id: str, worker: PoolWorkerKey, capacity: int) -> list[tuple[str, int]]:
        """The runs one worker (of `capacity` slots) holds a claim on now, as far as the queue's
        record of its claims shows; work proportional to the worker, not to the queue."""
        ...

    def activity(self, task_queue_id: str, workers: Sequence[PoolWorkerKey]) -> dict[PoolWorkerKey, QueueActivity]: ...

    def worker_shutdown(self, task_id: str, run_id: int) -> None:
        """Resolve the run exception/worker-shutdown (it retries); no error if already resolved."""
        ...


@dataclass(frozen=True)
class Launched:
    """A worker a provider started: its id, group and what the provider wants to remember."""

    worker_group: str
    worker_id: str
    provider_data: dict[str, Any]


class LaunchFailed(Exception):
    """The cloud refused a launch (capacity, quota, bad spec): recorded as a pool error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class LaunchThrottled(LaunchFailed):
    """The cloud's API refused the call for its request rate, after the client's own retries: not
    the pool's fault nor its launch config's. Not a pool error: the launch waits for the next run."""


class Provider(Protocol):
    """Where workers run: EC2 spot on AWS (adapters/ec2_provider.py), processes on the embedded stack."""

    provider_id: str

    def launch(self, pool: WorkerPool, launch: Launch, user_data: dict[str, Any], token: str) -> list[Launched]:
        """Start `launch.instances` workers, all or none, each given `user_data`; `token` (≤ 64
        ASCII characters) makes a retried call launch nothing twice. Raises LaunchFailed."""
        ...

    def observe(self, workers: Sequence[PoolWorker]) -> dict[tuple[str, str], str]:
        """The cloud's state of each worker's instance (CloudState names; not-found when unknown)."""
        ...

    def census(self, regions: Collection[str]) -> dict[tuple[str, str], str]:
        """The state of every instance this provider (this stage) runs or ran lately in `regions`,
        by (region, instance id): one listing per region, for all pools at once. One left out is
        not-found (terminated ones may be left out)."""
        ...

    def terminate(self, workers: Sequence[PoolWorker]) -> None: ...


# --- auth -----------------------------------------------------------------------------------------
class AuthStore(Protocol):
    """Stored clients and roles (adapters/auth_store.py); the root client is configured, never stored."""

    def get_client(self, client_id: str) -> Client | None: ...

    def put_client(self, client: Client, *, create: bool, seed_was: str | None = None) -> None: ...

    def rotate_seed(self, client_id: str, seed_was: str, seed: str, when: datetime) -> Client: ...

    def delete_client(self, client_id: str) -> None: ...

    def list_clients(self, prefix: str, limit: int, token: str | None) -> tuple[list[Client], str | None]: ...

    def get_role(self, role_id: str) -> Role | None: ...

    def put_role(self, role: Role, *, create: bool) -> None: ...

    def delete_role(self, role_id: str) -> None: ...

    def all_roles(self) -> Any: ...
