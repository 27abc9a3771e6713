"""The composition root: builds every service from Settings once per process.

Tests and the embedded stack call `configure(...)` with their own clock or settings; Lambda
uses the defaults read from the environment on first use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import boto3
from botocore.config import Config

from .adapters.artifact_store import DynamoArtifactStore
from .adapters.auth_store import DynamoAuthStore
from .adapters.ec2_provider import Ec2Provider
from .adapters.event_bus import EventBridgeBus, SqsReleaseQueue
from .adapters.graph_store import DynamoGraphStore
from .adapters.hint_queues import SqsHintQueues
from .adapters.pool_store import DynamoPoolStore
from .adapters.s3 import S3Blobs
from .adapters.secrets import read_root_secret
from .adapters.tables import (
    TaskRow,
    artifact_model,
    auth_model,
    graph_model,
    pools_model,
    task_model,
    workers_model,
)
from .adapters.task_store import DynamoTaskStore
from .adapters.worker_store import DynamoWorkerStore
from .clock import Clock, SystemClock
from .config import Settings
from .domain.credentials import token_key_from
from .domain.pools import QueueActivity
from .domain.worker_info import WorkerKey
from .services.artifacts import ArtifactService
from .services.auth import Auth, RootCredentials
from .services.graph import TaskGraph
from .services.outbox import Outbox
from .services.ports import Provider
from .services.provisioner import Provisioner, QueueServiceFacts
from .services.queue import QueueService
from .services.sweeper import Sweeper
from .services.worker_info import WorkerInfo
from .services.worker_manager import WorkerManager


@dataclass
class Container:
    settings: Settings
    clock: Clock
    task_model: type[TaskRow]
    queue: QueueService
    graph: TaskGraph
    outbox: Outbox
    sweeper: Sweeper
    artifacts: ArtifactService
    auth: Auth
    workers: WorkerInfo
    pool_store: DynamoPoolStore
    worker_manager: WorkerManager
    provisioner: Provisioner


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
    sqs = boto3.client("sqs", region_name=settings.region, config=boto_config)
    model = task_model(settings.tasks_table, settings.region, host=endpoint)
    store = DynamoTaskStore(model, settings.due_shards, settings.redispatch_base)
    hints = SqsHintQueues(sqs, settings.queue_prefix)
    bus = EventBridgeBus(boto3.client("events", region_name=settings.region, config=boto_config), settings.event_bus)
    graph_store = DynamoGraphStore(graph_model(settings.graph_table, settings.region, host=endpoint))
    graph = TaskGraph(store, graph_store, bus, SqsReleaseQueue(sqs, settings.release_queue), clock)
    worker_store = DynamoWorkerStore(workers_model(settings.workers_table, settings.region, host=endpoint))
    workers = WorkerInfo(worker_store, clock, settings.claim_timeout_delta, settings.quarantine_cache_seconds)
    queue = QueueService(store, hints, graph, clock, settings, quarantined=workers.quarantined)
    # Presigned URLs must be SigV4 (boto3's default presigns SigV2-style); they use the endpoint
    # clients reach: S3's on AWS, the stand-in's (AWS_ENDPOINT_URL) on the embedded stack.
    s3 = boto3.client("s3", region_name=settings.region, config=boto_config.merge(Config(signature_version="s3v4")))
    artifact_store = DynamoArtifactStore(
        artifact_model(settings.artifacts_table, settings.region, host=endpoint), settings.due_shards
    )
    artifacts = ArtifactService(store, artifact_store, S3Blobs(s3), clock, settings)
    sweeper = Sweeper(queue, artifacts)
    auth_store = DynamoAuthStore(auth_model(settings.auth_table, settings.region, host=endpoint))
    auth = Auth(auth_store, clock, root_credentials(settings, boto_config), settings.auth_cache_seconds)
    outbox = Outbox(hints, bus, graph, workers)
    pool_store = DynamoPoolStore(pools_model(settings.pools_table, settings.region, host=endpoint))
    ec2 = Ec2Provider(
        lambda region: boto3.client("ec2", region_name=region, config=boto_config), settings.worker_instance_profile
    )

    def activity(task_queue_id: str, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], QueueActivity]:
        _, found = worker_store.load([], [WorkerKey(task_queue_id, g, i) for g, i in keys])
        return {
            (k.worker_group, k.worker_id): QueueActivity(w.first_claim, w.last_date_active, w.quarantine_until)
            for k, w in found.items()
        }

    facts = QueueServiceFacts(queue, activity)
    all_providers: dict[str, Provider] = {ec2.provider_id: ec2, **(providers or {})}
    worker_manager = WorkerManager(pool_store, clock, provider_ids=list(all_providers))
    provisioner = Provisioner(
        pool_store, all_providers, facts, auth, clock, settings.public_root_url, settings.queue_prefix, settings.region
    )
    return Container(
        settings,
        clock,
        model,
        queue,
        graph,
        outbox,
        sweeper,
        artifacts,
        auth,
        workers,
        pool_store,
        worker_manager,
        provisioner,
    )


def root_credentials(settings: Settings, boto_config: Config) -> RootCredentials:
    """The root client: from Secrets Manager on AWS, from the environment on the embedded stack."""
    client_id, token, key = settings.root_client_id, settings.root_access_token, settings.token_key
    if settings.root_secret_arn:
        secrets = boto3.client("secretsmanager", region_name=settings.region, config=boto_config)
        client_id, token, secret_key = read_root_secret(secrets, settings.root_secret_arn)
        key = secret_key or key
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
