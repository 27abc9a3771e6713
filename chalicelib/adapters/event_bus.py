"""Task events on EventBridge, and the release queue on SQS."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..domain.events import Event

SOURCE = "taskqueue"  # EventBridge `source` of every task event
PUT_EVENTS_BATCH = 10  # PutEvents takes at most ten entries


class EventBridgeBus:
    """Publishes events as EventBridge entries: detail-type is the exchange's short name
    (task-completed, …), detail is Taskcluster's message plus its routing keys."""

    def __init__(self, events: Any, bus_name: str) -> None:
        self._events = events
        self._bus = bus_name

    def publish(self, events: Sequence[Event]) -> None:
        entries = [
            {
                "Source": SOURCE,
                "DetailType": e.name,
                "Detail": json.dumps(e.detail(), separators=(",", ":")),
                "EventBusName": self._bus,
            }
            for e in events
        ]
        for i in range(0, len(entries), PUT_EVENTS_BATCH):
            chunk = entries[i : i + PUT_EVENTS_BATCH]
            result = self._events.put_events(Entries=chunk)
            if result.get("FailedEntryCount"):
                failed = [r for r in result.get("Entries", []) if r.get("ErrorCode")]
                # Raising makes the stream batch retry: events are at-least-once, never lost.
                raise RuntimeError(f"EventBridge refused {len(failed)} events: {failed[:3]}")


class SqsReleaseQueue:
    def __init__(self, sqs: Any, queue_name: str) -> None:
        self._sqs = sqs
        self._name = queue_name
        self._url: str | None = None

    def enqueue(self, jobs: Sequence[dict[str, Any]]) -> None:
        if self._url is None:
            self._url = self._sqs.get_queue_url(QueueName=self._name)["QueueUrl"]
        for i in range(0, len(jobs), 10):
            entries = [{"Id": str(n), "MessageBody": json.dumps(j)} for n, j in enumerate(jobs[i : i + 10])]
            self._sqs.send_message_batch(QueueUrl=self._url, Entries=entries)
