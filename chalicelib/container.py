"""The composition root: builds every service from Settings once per process.

Tests and the embedded stack call `configure(...)` with their own clock or settings; Lambda
uses the defaults read from the environment on first use.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import boto3
from botocore.config import Config

from .adapters.event_bus import EventBridgeBus, SqsReleaseQueue
from .adapters.graph_store import DynamoGraphStore
from .adapters.hint_queues import SqsHintQueues
from .adapters.tables import TaskRow, graph_model, task_model
from .adapters.task_store import DynamoTaskStore
from .clock import Clock, SystemClock
from .config import Settings
from .services.graph import TaskGraph
from .services.outbox import Outbox
from .services.queue import QueueService
from .services.sweeper import Sweeper


@dataclass
class Container:
    settings: Settings
    clock: Clock
    task_model: type[TaskRow]
    queue: QueueService
    graph: TaskGraph
    outbox: Outbox
    sweeper: Sweeper


def build(settings: Settings, clock: Clock | None = None) -> Container:
    clock = clock or SystemClock()
    # Retries must fit the API's 29 s (reference: reliability §2.3): few attempts, short timeouts.
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
    queue = QueueService(store, hints, graph, clock, settings)
    return Container(settings, clock, model, queue, graph, Outbox(hints, bus, graph), Sweeper(queue))


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
