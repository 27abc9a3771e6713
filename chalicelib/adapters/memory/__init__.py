"""In-memory stand-ins for every port: dicts and sorted lists with the adapters' semantics.

Each fake keeps what its adapter's table, queue or bucket would hold and honours the same rules,
so a service runs on them as it runs on AWS, in microseconds instead of moto's milliseconds:

- every conditional write is the same condition (version guards, "create returns the stored one
  if the id is taken", patch_run's guard, the auth store's 409/404), evaluated atomically;
- what a table round trip does to a value is done too: dates are kept to the millisecond, a task's
  definition and a pool's config go through JSON, unknown artifact details are dropped;
- listings are in the index's order and page with the adapters' continuation tokens (the same
  encoding, refused the same way), a token whenever a page is full, as DynamoDB answers a Query
  that stopped at its Limit;
- the tasks table's stream is a list of (old, new) row changes, and `pump(container)` delivers
  them to the outbox, and the release queue's jobs to Dependencies.release, as Lambda would.

tests/contract runs one suite against these and against the adapters over moto.
`memory_container(settings, clock)` builds a whole Container on them.

The package has one module per concern; this one builds a whole deployment on them (MemoryFakes,
`memory_fakes`, `memory_ports`, `memory_container`, `pump`) and re-exports every fake:

- common.py: what every table does (dates to the millisecond, JSON round trips, the item size
  limit, one Query, the continuation tokens);
- tasks.py: MemoryTaskStore; graph.py: MemoryGraphStore;
- messaging.py: MemoryEventBus, MemoryReleaseQueue, MemoryHintQueues;
- artifacts.py: MemoryBlobStore, MemoryArtifactStore; auth.py: MemoryAuthStore;
- workers.py: MemoryWorkerStore; pools.py: MemoryPoolStore;
- cloud.py: MemoryProvider, MemoryQueueFacts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ...clock import Clock
from ...config import Settings
from ...container import Container, Ports, compose, root_from
from ...domain.model import TaskState
from ...services.ports import Provider
from ..tables import task_model
from ..task_store import image_decoder
from .artifacts import MemoryArtifactStore, MemoryBlobStore
from .auth import MemoryAuthStore
from .cloud import MemoryProvider, MemoryQueueFacts
from .graph import MemoryGraphStore
from .messaging import MemoryEventBus, MemoryHintQueues, MemoryReleaseQueue
from .pools import MemoryPoolStore
from .tasks import MemoryTaskStore
from .workers import MemoryWorkerStore

__all__ = [
    "STREAM_BATCH",
    "MemoryArtifactStore",
    "MemoryAuthStore",
    "MemoryBlobStore",
    "MemoryEventBus",
    "MemoryFakes",
    "MemoryGraphStore",
    "MemoryHintQueues",
    "MemoryPoolStore",
    "MemoryProvider",
    "MemoryQueueFacts",
    "MemoryReleaseQueue",
    "MemoryTaskStore",
    "MemoryWorkerStore",
    "memory_container",
    "memory_fakes",
    "memory_ports",
    "pump",
]

STREAM_BATCH = 100  # records per tasks_stream invocation (handlers/events.py)


@dataclass
class MemoryFakes:
    """Every fake one deployment needs; `memory_container` wires services over them."""

    tasks: MemoryTaskStore
    graph: MemoryGraphStore
    events: MemoryEventBus
    releases: MemoryReleaseQueue
    hints: MemoryHintQueues
    artifacts: MemoryArtifactStore
    blobs: MemoryBlobStore
    workers: MemoryWorkerStore
    pools: MemoryPoolStore
    auth: MemoryAuthStore
    aws: MemoryProvider = field(default_factory=MemoryProvider)


def memory_fakes(settings: Settings, clock: Clock) -> MemoryFakes:
    return MemoryFakes(
        tasks=MemoryTaskStore(settings.due_shards, settings.redispatch_base),
        graph=MemoryGraphStore(),
        events=MemoryEventBus(),
        releases=MemoryReleaseQueue(),
        hints=MemoryHintQueues(clock, settings.queue_prefix),
        artifacts=MemoryArtifactStore(settings.due_shards),
        blobs=MemoryBlobStore([settings.artifact_bucket]),
        workers=MemoryWorkerStore(),
        pools=MemoryPoolStore(),
        auth=MemoryAuthStore(),
    )


def memory_ports(fakes: MemoryFakes) -> Ports:
    return Ports(
        tasks=fakes.tasks,
        graph=fakes.graph,
        events=fakes.events,
        releases=fakes.releases,
        hints=fakes.hints,
        workers=fakes.workers,
        artifacts=fakes.artifacts,
        blobs=fakes.blobs,
        auth=fakes.auth,
        pools=fakes.pools,
    )


def memory_container(
    settings: Settings,
    clock: Clock,
    providers: Mapping[str, Provider] | None = None,
    fakes: MemoryFakes | None = None,
) -> Container:
    """container.build() on fakes: the same services wired by the same `compose`, and no AWS at all.

    `providers` are added beside the fake `aws` one (fakes.aws). The root client is the one the
    settings name (a Secrets Manager secret is not read)."""
    f = fakes or memory_fakes(settings, clock)
    root = root_from(settings.root_client_id, settings.root_access_token, settings.token_key)
    all_providers: dict[str, Provider] = {f.aws.provider_id: f.aws, **(providers or {})}
    # The fakes' stream hands over Tasks (pump): the decoder of the table's images is never needed.
    decode = image_decoder(task_model(settings.tasks_table, settings.region))  # a class only: no connection
    return compose(settings, clock, decode, memory_ports(f), root, all_providers)


def pump(c: Container, time_left: Callable[[], float] = lambda: 60.0) -> int:
    """Lambda's event sources over a memory container: the tasks table's row changes go to the
    outbox (STREAM_BATCH at a time), the release queue's jobs to Dependencies.release, until neither
    has anything left. Returns how many records and jobs were delivered."""
    tasks, releases = c.queue.store, c.dependencies.releases
    if not isinstance(tasks, MemoryTaskStore) or not isinstance(releases, MemoryReleaseQueue):
        raise TypeError("pump() delivers the events of a memory_container() only")
    delivered = 0
    while True:
        changes, jobs = tasks.take_changes(), releases.take()
        if not changes and not jobs:
            return delivered
        for i in range(0, len(changes), STREAM_BATCH):
            c.outbox.process(changes[i : i + STREAM_BATCH], time_left)
        for job in jobs:
            c.dependencies.release(job["taskId"], TaskState(job["resolved"]), job.get("continuation"), time_left)
        delivered += len(changes) + len(jobs)
