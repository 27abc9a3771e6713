"""Task events on EventBridge, and the release queue on SQS."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..domain.events import Event, detail_json, trim_tags
from ..services.ports import Undelivered

log = logging.getLogger(__name__)

SOURCE = "taskqueue"  # EventBridge `source` of every task event
PUT_EVENTS_ENTRIES = 10  # PutEvents takes at most ten entries...
PUT_EVENTS_BYTES = 256 * 1024  # ...of at most 256 KB together (so each entry is at most that too)
TIME_BYTES = 14  # what AWS counts for an entry's Time; counted whether or not it is set
PUT_EVENTS_ATTEMPTS = 3  # calls for entries EventBridge refuses one by one (FailedEntryCount)
RETRY_PAUSE = 0.1  # seconds before the second call, doubled before each further one


def entry_size(entry: dict[str, Any]) -> int:
    """An entry's size as AWS computes it for PutEvents' limit: Source, DetailType, Detail,
    Resources and EventBusName as UTF-8 bytes, plus 14 for Time."""
    size = TIME_BYTES
    for key in ("Source", "DetailType", "Detail", "EventBusName"):
        size += len(entry.get(key, "").encode())
    return size + sum(len(r.encode()) for r in entry.get("Resources", []))


def requests(sizes: Sequence[int]) -> list[list[int]]:
    """Entries (by position, in order) grouped into PutEvents requests within both limits."""
    out: list[list[int]] = []
    total = 0
    for i, size in enumerate(sizes):
        if not out or len(out[-1]) == PUT_EVENTS_ENTRIES or total + size > PUT_EVENTS_BYTES:
            out.append([])
            total = 0
        out[-1].append(i)
        total += size
    return out


class EventBridgeBus:
    """Publishes events as EventBridge entries: detail-type is the exchange's short name
    (task-completed, …), detail is Taskcluster's message plus its routing keys.

    Requests are filled up to ten entries and 256 KB. An event too big for an entry on its own
    is published with its `task.tags` cut short (`domain/events.py` `trim_tags`), never refused.
    Entries EventBridge refuses one by one are sent again, alone, up to PUT_EVENTS_ATTEMPTS calls;
    a request still not delivered then (or a call that fails outright: botocore has retried it)
    ends the publication, and `Undelivered` names it and every event after it.
    """

    def __init__(self, events: Any, bus_name: str, pause: Callable[[float], None] = time.sleep) -> None:
        self._events = events
        self._bus = bus_name
        self._pause = pause

    def entry(self, event: Event) -> dict[str, Any]:
        detail = event.detail()
        entry = {"Source": SOURCE, "DetailType": event.name, "Detail": detail_json(detail), "EventBusName": self._bus}
        excess = entry_size(entry) - PUT_EVENTS_BYTES
        if excess > 0:
            entry["Detail"] = detail_json(trim_tags(detail, excess))
            log.warning("%s of %s: task.tags cut by %d bytes to fit", event.name, event.routing_key, excess)
        return entry

    def publish(self, events: Sequence[Event]) -> None:
        entries = [self.entry(e) for e in events]
        for batch in requests([entry_size(e) for e in entries]):
            left, reason = self._put(entries, batch)
            if left:
                rest = range(batch[-1] + 1, len(entries))
                # Raising makes the stream retry from the first record not published: never lost.
                raise Undelivered([*left, *rest], f"EventBridge: {reason}")

    def _put(self, entries: Sequence[dict[str, Any]], batch: list[int]) -> tuple[list[int], str]:
        """Send a request's entries, again those refused (bounded): those never accepted, and why."""
        left = batch
        reason = ""
        for attempt in range(PUT_EVENTS_ATTEMPTS):
            if attempt:
                self._pause(RETRY_PAUSE * 2 ** (attempt - 1))
            try:
                result = self._events.put_events(Entries=[entries[i] for i in left])
            except (ClientError, BotoCoreError) as e:
                return left, str(e)
            if not result.get("FailedEntryCount"):
                return [], ""
            answers = result.get("Entries") or []
            if len(answers) != len(left):  # not the answer AWS documents: take none as accepted
                answers = [{"ErrorCode": "Unknown"}] * len(left)
            refused = [(i, a) for i, a in zip(left, answers, strict=True) if a.get("ErrorCode")]
            reason = "; ".join(sorted({f"{a['ErrorCode']}: {a.get('ErrorMessage', '')}" for _, a in refused}))
            left = [i for i, _ in refused]
        return left, reason


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
            failed = self._sqs.send_message_batch(QueueUrl=self._url, Entries=entries).get("Failed")
            if failed:
                # The release (a stream record's, or a release message's) fails and is retried whole:
                # every step of a release is idempotent.
                raise RuntimeError(f"SQS refused {len(failed)} release jobs: {failed[:3]}")
