"""The contract suite's fixtures: every port twice, on its memory fake and on its adapter over
moto, so that each test function states one behaviour both backends must have.

A fixture per port is parametrized over BACKENDS; the moto one makes only the resources its
adapter needs, inside its own `mock_aws()`, the way the embedded stack makes them
(chalicelib/local/bootstrap.py). A test whose case the adapter gets wrong is marked
`@moto_xfail("why")`: it is expected to fail on moto only, strictly.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from chalicelib import container
from chalicelib.adapters.artifact_store import DynamoArtifactStore
from chalicelib.adapters.auth_store import DynamoAuthStore
from chalicelib.adapters.ec2_provider import Ec2Provider
from chalicelib.adapters.event_bus import EventBridgeBus, SqsReleaseQueue
from chalicelib.adapters.graph_store import DynamoGraphStore
from chalicelib.adapters.hint_queues import SqsHintQueues
from chalicelib.adapters.memory import (
    MemoryArtifactStore,
    MemoryAuthStore,
    MemoryBlobStore,
    MemoryEventBus,
    MemoryGraphStore,
    MemoryHintQueues,
    MemoryPoolStore,
    MemoryProvider,
    MemoryQueueFacts,
    MemoryReleaseQueue,
    MemoryTaskStore,
    MemoryWorkerStore,
)
from chalicelib.adapters.pool_store import DynamoPoolStore
from chalicelib.adapters.s3 import S3Blobs
from chalicelib.adapters.tables import (
    artifact_model,
    auth_model,
    create_table_params,
    graph_model,
    pools_model,
    task_model,
    workers_model,
)
from chalicelib.adapters.task_store import DynamoTaskStore
from chalicelib.adapters.worker_store import DynamoWorkerStore
from chalicelib.clock import FakeClock
from chalicelib.domain.model import ReasonResolved, Worker
from chalicelib.local.bootstrap import create_bucket, create_event_tap, create_resources
from chalicelib.services.ports import (
    ArtifactStore,
    AuthStore,
    GraphStore,
    HintQueues,
    LaunchFailed,
    PoolRecords,
    TaskStore,
    WorkerStore,
)
from tests.contract.backends import EC2_REGION, Bucket, Cloud, Queue, Releases, Subscribed
from tests.harness import TEST_SETTINGS, task_def

BACKENDS = ("memory", "moto")
SETTINGS = TEST_SETTINGS
REGION = SETTINGS.region


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "moto_xfail(reason): expected to fail on the moto backend only (strict)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("moto_xfail")
        callspec = getattr(item, "callspec", None)
        if marker is not None and callspec is not None and "moto" in callspec.params.values():
            item.add_marker(pytest.mark.xfail(strict=True, reason=marker.kwargs["reason"]))


def _table(model: Any) -> None:
    boto3.client("dynamodb", region_name=REGION).create_table(**create_table_params(model))


# --- the tables -----------------------------------------------------------------------------------
@pytest.fixture(params=BACKENDS)
def tasks(request: pytest.FixtureRequest) -> Iterator[TaskStore]:
    if request.param == "memory":
        yield MemoryTaskStore(SETTINGS.due_shards, SETTINGS.redispatch_base)
        return
    with mock_aws():
        model = task_model(SETTINGS.tasks_table, REGION)
        _table(model)
        yield DynamoTaskStore(model, SETTINGS.due_shards, SETTINGS.redispatch_base)


@pytest.fixture(params=BACKENDS)
def graph(request: pytest.FixtureRequest) -> Iterator[GraphStore]:
    if request.param == "memory":
        yield MemoryGraphStore()
        return
    with mock_aws():
        model = graph_model(SETTINGS.graph_table, REGION)
        _table(model)
        yield DynamoGraphStore(model)


@pytest.fixture(params=BACKENDS)
def artifacts(request: pytest.FixtureRequest) -> Iterator[ArtifactStore]:
    if request.param == "memory":
        yield MemoryArtifactStore(SETTINGS.due_shards)
        return
    with mock_aws():
        model = artifact_model(SETTINGS.artifacts_table, REGION)
        _table(model)
        yield DynamoArtifactStore(model, SETTINGS.due_shards)


@pytest.fixture(params=BACKENDS)
def auth(request: pytest.FixtureRequest) -> Iterator[AuthStore]:
    if request.param == "memory":
        yield MemoryAuthStore()
        return
    with mock_aws():
        model = auth_model(SETTINGS.auth_table, REGION)
        _table(model)
        yield DynamoAuthStore(model)


@pytest.fixture(params=BACKENDS)
def workers(request: pytest.FixtureRequest) -> Iterator[WorkerStore]:
    if request.param == "memory":
        yield MemoryWorkerStore()
        return
    with mock_aws():
        model = workers_model(SETTINGS.workers_table, REGION)
        _table(model)
        yield DynamoWorkerStore(model)


@pytest.fixture(params=BACKENDS)
def pools(request: pytest.FixtureRequest) -> Iterator[PoolRecords]:
    if request.param == "memory":
        yield MemoryPoolStore()
        return
    with mock_aws():
        model = pools_model(SETTINGS.pools_table, REGION)
        _table(model)
        yield DynamoPoolStore(model)


# --- queues and the bus: each with a way to see what arrived ---------------------------------------
def _drain(sqs: Any, url: str) -> list[str]:
    bodies: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        for m in messages:
            bodies.append(m["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


@pytest.fixture(params=BACKENDS)
def events(request: pytest.FixtureRequest) -> Iterator[Subscribed]:
    if request.param == "memory":
        bus = MemoryEventBus()

        def published() -> list[tuple[str, dict[str, Any]]]:
            return [(e.name, json.loads(json.dumps(e.detail()))) for e in bus.take()]

        yield Subscribed(bus, published)
        return
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        eventbridge = boto3.client("events", region_name=REGION)
        url = create_event_tap(SETTINGS, eventbridge, sqs)

        def tapped() -> list[tuple[str, dict[str, Any]]]:
            delivered = [json.loads(body) for body in _drain(sqs, url)]
            return [(e["detail-type"], e["detail"]) for e in delivered]

        yield Subscribed(EventBridgeBus(eventbridge, SETTINGS.event_bus), tapped)


@pytest.fixture(params=BACKENDS)
def releases(request: pytest.FixtureRequest) -> Iterator[Releases]:
    if request.param == "memory":
        queue = MemoryReleaseQueue()
        yield Releases(queue, queue.take)
        return
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName=SETTINGS.release_queue)["QueueUrl"]
        yield Releases(
            SqsReleaseQueue(sqs, SETTINGS.release_queue), lambda: [json.loads(body) for body in _drain(sqs, url)]
        )


@pytest.fixture(params=BACKENDS)
def hints(request: pytest.FixtureRequest) -> Iterator[HintQueues]:
    if request.param == "memory":
        yield MemoryHintQueues(FakeClock(), SETTINGS.queue_prefix)
        return
    with mock_aws():
        yield SqsHintQueues(boto3.client("sqs", region_name=REGION), SETTINGS.queue_prefix)


@pytest.fixture(params=BACKENDS)
def bucket(request: pytest.FixtureRequest) -> Iterator[Bucket]:
    name = SETTINGS.artifact_bucket
    if request.param == "memory":
        memory = MemoryBlobStore([name])
        yield Bucket(
            memory, name, lambda key, body: memory.put(name, key, body), lambda key: (name, key) in memory.objects
        )
        return
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION, config=Config(signature_version="s3v4"))
        create_bucket(SETTINGS, s3)

        def exists(key: str) -> bool:
            listed = s3.list_objects_v2(Bucket=name, Prefix=key).get("Contents", [])
            return any(o["Key"] == key for o in listed)

        yield Bucket(S3Blobs(s3), name, lambda key, body: s3.put_object(Bucket=name, Key=key, Body=body), exists)


# --- the cloud ------------------------------------------------------------------------------------
@pytest.fixture(params=BACKENDS)
def cloud(request: pytest.FixtureRequest) -> Iterator[Cloud]:
    if request.param == "memory":
        provider = MemoryProvider()

        def refuse_memory() -> dict[str, Any]:
            provider.refuse = LaunchFailed("InvalidSubnetID.NotFound", "The subnet ID 'subnet-nope' does not exist")
            return {"SubnetId": "subnet-nope"}

        yield Cloud(provider, "ami-memory", refuse_memory)
        return
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=EC2_REGION)
        image = str(ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"])
        yield Cloud(
            Ec2Provider(lambda region: boto3.client("ec2", region_name=region)),
            image,
            lambda: {"SubnetId": "subnet-nope"},
        )


# --- what the provisioner asks the queue ----------------------------------------------------------
@pytest.fixture(params=BACKENDS)
def queue(request: pytest.FixtureRequest) -> Iterator[Queue]:
    if request.param == "memory":
        facts = MemoryQueueFacts()
        ids = itertools.count()

        def add(task_queue_id: str) -> str:
            facts.add_pending(task_queue_id)
            return f"task-{next(ids)}"

        def hold(task_queue_id: str, worker_id: str) -> str:
            task_id = f"task-{next(ids)}"
            facts.hold(task_queue_id, ("wg", worker_id), task_id)
            return task_id

        def complete(task_id: str) -> None:
            facts.resolve(task_id, 0)

        yield Queue(facts, add, hold, complete)
        return
    with mock_aws():
        create_resources(
            SETTINGS, boto3.client("dynamodb", region_name=REGION), boto3.client("sqs", region_name=REGION)
        )
        clock = FakeClock()
        c = container.build(SETTINGS, clock)
        made = itertools.count()

        def create(task_queue_id: str) -> str:
            task_id = f"task{next(made):018d}"
            c.queue.create_task(task_id, task_def(clock, taskQueueId=task_queue_id))
            return task_id

        def claim(task_queue_id: str, worker_id: str) -> str:
            task_id = create(task_queue_id)
            c.queue.claim_task(task_id, 0, Worker("wg", worker_id))
            return task_id

        def complete(task_id: str) -> None:
            c.queue.resolve(task_id, 0, ReasonResolved.COMPLETED)

        yield Queue(c.provisioner.queue, create, claim, complete)
