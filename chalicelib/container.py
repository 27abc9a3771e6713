"""The composition root: builds every service from Settings once per process.

`build` makes the AWS adapters (`Ports`) and `compose` wires the services over any ports, so a
deployment and the in-memory fakes (adapters/memory/) are wired the same way. Tests and the
embedded stack call `configure(...)` with their own clock or settings; Lambda uses the defaults
read from the environment on first use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from botocore.config import Config

from .adapters import aws
from .adapters.artifact_store import DynamoArtifactStore
from .adapters.auth_store import DynamoAuthStore
from .adapters.ec2_provider import Ec2Provider, owner_of
from .adapters.event_bus import EventBridgeBus, SqsReleaseQueue
from .adapters.graph_store import DynamoGraphStore
from .adapters.hint_queues import SqsHintQueues
from .adapters.pool_store import DynamoPoolStore
from .adapters.s3 import S3Blobs
from .adapters.secrets import read_root_secret
from .adapters.tables import (
    artifact_model,
    auth_model,
    graph_model,
    pools_model,
    task_model,
    workers_model,
)
from .adapters.task_store import DynamoTaskStore, image_decoder
from .adapters.worker_store import DynamoWorkerStore
from .clock import Clock, SystemClock
from .config import Settings
from .domain.credentials import token_key_from
from .services.artifacts import ArtifactService
from .services.auth import Auth, RootCredentials
from .services.auth_admin import AuthAdmin
from .services.dependencies import Dependencies
from .services.outbox import ImageDecoder, Outbox
from .services.ports import (
    ArtifactStore,
    AuthStore,
    BlobStore,
    EventBus,
    GraphStore,
    HintQueues,
    PoolRecords,
    Provider,
    ReleaseQueue,
    TaskStore,
    WorkerStore,
)
from .services.provisioner import Provisioner
from .services.queue import QueueService
from .services.queue_facts import QueueServiceFacts
from .services.registration import WorkerRegistration
from .services.sweeper import Sweeper
from .services.task_groups import TaskGroups
from .services.worker_info import WorkerInfo
from .services.worker_manager import WorkerManager


@dataclass
class Container:
    settings: Settings
    clock: Clock
    queue: QueueService
    groups: TaskGroups
    dependencies: Dependencies
    outbox: Outbox
    sweeper: Sweeper
    artifacts: ArtifactService
    auth: Auth
    auth_admin: AuthAdmin
    workers: WorkerInfo
    pool_store: PoolRecords
    worker_manager: WorkerManager
    provisioner: Provisioner
    registration: WorkerRegistration


@dataclass(frozen=True)
class Ports:
    """What the services run on: DynamoDB, SQS, EventBridge and S3 here (`build`); in-memory
    fakes in tests (adapters/memory/)."""

    tasks: TaskStore
    graph: GraphStore
    events: EventBus
    releases: ReleaseQueue
    hints: HintQueues
    workers: WorkerStore
    artifacts: ArtifactStore
    blobs: BlobStore
    auth: AuthStore
    pools: PoolRecords


def build(settings: Settings, clock: Clock | None = None, providers: Mapping[str, Provider] | None = None) -> Container:
    """`providers`: worker providers beside EC2's `aws` (the embedded stack adds its `local` one)."""
    clock = clock or SystemClock()
    # Retries must fit the API's 29 s: few attempts, short timeouts.
    boto_config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=3,
        read_timeout=25,
        max_pool_connections=50,
    )
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    sqs = aws.client("sqs", region_name=settings.region, config=boto_config)
    model = task_model(settings.tasks_table, settings.region, host=endpoint)
    bus = EventBridgeBus(aws.client("events", region_name=settings.region, config=boto_config), settings.event_bus)
    # Presigned URLs must be SigV4 (boto3's default presigns SigV2-style); they use the endpoint
    # clients reach: S3's on AWS, the stand-in's (AWS_ENDPOINT_URL) on the embedded stack.
    s3 = aws.client("s3", region_name=settings.region, config=boto_config.merge(Config(signature_version="s3v4")))
    ec2 = Ec2Provider(
        lambda region: aws.client("ec2", region_name=region, config=boto_config),
        settings.worker_instance_profile,
        owner=owner_of(settings.queue_prefix),
    )
    ports = Ports(
        tasks=DynamoTaskStore(model, settings.due_shards, settings.redispatch_base),
        graph=DynamoGraphStore(graph_model(settings.graph_table, settings.region, host=endpoint)),
        events=bus,
        releases=SqsReleaseQueue(sqs, settings.release_queue),
        hints=SqsHintQueues(sqs, settings.queue_prefix),
        workers=DynamoWorkerStore(workers_model(settings.workers_table, settings.region, host=endpoint)),
        artifacts=DynamoArtifactStore(
            artifact_model(settings.artifacts_table, settings.region, host=endpoint), settings.due_shards
        ),
        blobs=S3Blobs(s3),
        auth=DynamoAuthStore(auth_model(settings.auth_table, settings.region, host=endpoint)),
        pools=DynamoPoolStore(pools_model(settings.pools_table, settings.region, host=endpoint)),
    )
    all_providers: dict[str, Provider] = {ec2.provider_id: ec2, **(providers or {})}
    root = root_credentials(settings, boto_config)
    return compose(settings, clock, image_decoder(model), ports, root, all_providers)


def compose(
    settings: Settings,
    clock: Clock,
    decode_task: ImageDecoder,
    ports: Ports,
    root: RootCredentials,
    providers: Mapping[str, Provider],
) -> Container:
    """Every service, wired over `ports`; `providers` are all the worker providers pools may name."""
    tasks, pools = ports.tasks, ports.pools
    groups = TaskGroups(tasks, ports.graph, ports.events, clock)
    dependencies = Dependencies(tasks, ports.graph, ports.releases, clock)
    workers = WorkerInfo(ports.workers, clock, settings.claim_timeout_delta, settings.quarantine_cache_seconds)
    queue = QueueService(tasks, ports.hints, groups, dependencies, clock, settings, quarantined=workers.quarantined)
    artifacts = ArtifactService(tasks, ports.artifacts, ports.blobs, clock, settings)
    auth = Auth(ports.auth, clock, root, settings.auth_cache_seconds)

    facts = QueueServiceFacts(queue, ports.workers)
    return Container(
        settings=settings,
        clock=clock,
        queue=queue,
        groups=groups,
        dependencies=dependencies,
        outbox=Outbox(ports.hints, ports.events, groups, dependencies, decode_task, ports.tasks.definitions, workers),
        sweeper=Sweeper(queue, artifacts),
        artifacts=artifacts,
        auth=auth,
        auth_admin=AuthAdmin(ports.auth, clock, auth),
        workers=workers,
        pool_store=pools,
        worker_manager=WorkerManager(pools, clock, provider_ids=list(providers)),
        provisioner=Provisioner(
            pools, providers, facts, auth, clock, settings.public_root_url, settings.queue_prefix, settings.region
        ),
        registration=WorkerRegistration(pools, providers, facts, auth, clock),
    )


def root_credentials(settings: Settings, boto_config: Config) -> RootCredentials:
    """The root client: from Secrets Manager on AWS, from the environment on the embedded stack."""
    if not settings.root_secret_arn:
        return root_from(settings.root_client_id, settings.root_access_token, settings.token_key)
    secrets = aws.client("secretsmanager", region_name=settings.region, config=boto_config)
    client_id, token, secret_key = read_root_secret(secrets, settings.root_secret_arn)
    return root_from(client_id, token, secret_key or settings.token_key)


def root_from(client_id: str, token: str, key: str) -> RootCredentials:
    """Stored clients' tokens are keyed by `key`, or, without one, by a key derived from the token."""
    return RootCredentials(client_id, token, key or (token_key_from(token) if token else ""))


_lock = threading.Lock()
_current: Container | None = None


def configure(container: Container | None) -> None:
    global _current
    with _lock:
        _current = container


def get() -> Container:
    global _current
    with _lock:
        if _current is None:
            _current = build(Settings.from_env())
        return _current
