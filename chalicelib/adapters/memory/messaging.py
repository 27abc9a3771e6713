"""The in-memory queues and bus: MemoryEventBus, MemoryReleaseQueue and MemoryHintQueues.

They stand for EventBridge and the release queue (adapters/event_bus.py) and the SQS hint queues
(adapters/hint_queues.py): what was published or enqueued, held until taken, and hints that
are hidden while received, seen again unless deleted, dead-lettered after too many receives.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ...clock import Clock
from ...domain.dispatch import Hint, queue_name, queue_names
from ...domain.events import Event
from ...services.ports import ReceivedHint
from ..hint_queues import MAX_RECEIVES, VISIBILITY_TIMEOUT
from .common import _json_copy


class MemoryEventBus:
    """The event bus: what was published, in order (a subscriber sees it as EventBridge's detail)."""

    def __init__(self) -> None:
        self.published: list[Event] = []
        self._lock = threading.Lock()

    def publish(self, events: Sequence[Event]) -> None:
        for e in events:
            json.dumps(e.detail())  # what EventBridge cannot carry fails here as it fails there
        with self._lock:
            self.published += events

    def take(self) -> list[Event]:
        with self._lock:
            events, self.published = self.published, []
        return events


class MemoryReleaseQueue:
    """The release queue: the jobs enqueued (as JSON carries them), until taken."""

    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def enqueue(self, jobs: Sequence[dict[str, Any]]) -> None:
        with self._lock:
            self.jobs += [_json_copy(j) for j in jobs]

    def take(self) -> list[dict[str, Any]]:
        with self._lock:
            jobs, self.jobs = self.jobs, []
        return jobs


@dataclass
class _Message:
    hint: Hint
    visible_at: datetime
    receipt: str = ""
    receives: int = 0


class MemoryHintQueues:
    """One queue per (task queue, priority), drained highest priority first (adapters/hint_queues.py).

    A received hint is hidden for `visibility` on the clock, then seen again unless deleted; one
    received `max_receives` times goes to `dead_letters` instead. `receive` never waits: in one
    process nothing can arrive while it would.
    """

    def __init__(
        self,
        clock: Clock,
        prefix: str = "taskqueue-",
        visibility: timedelta = timedelta(seconds=VISIBILITY_TIMEOUT),
        max_receives: int = MAX_RECEIVES,
    ) -> None:
        self._clock = clock
        self._prefix = prefix
        self._visibility = visibility
        self._max_receives = max_receives
        self._queues: dict[str, list[_Message]] = {}  # by SQS queue name
        self._receipts = itertools.count(1)
        self.dead_letters: list[Hint] = []
        self._lock = threading.Lock()

    def send(self, hints: Sequence[Hint]) -> None:
        now = self._clock.now()
        with self._lock:
            for h in hints:
                name = queue_name(self._prefix, h.task_queue_id, h.priority)
                self._queues.setdefault(name, []).append(_Message(h, now))

    def receive(self, task_queue_id: str, max_hints: int, wait_seconds: float) -> list[ReceivedHint]:
        now = self._clock.now()
        got: list[ReceivedHint] = []
        with self._lock:
            for name in queue_names(self._prefix, task_queue_id):
                queue = self._queues.get(name, [])
                for m in list(queue):
                    if len(got) >= max_hints:
                        return got
                    if m.visible_at > now:
                        continue
                    if m.receives >= self._max_receives:
                        queue.remove(m)
                        self.dead_letters.append(m.hint)
                        continue
                    m.receives += 1
                    m.receipt = f"receipt-{next(self._receipts)}"
                    m.visible_at = now + self._visibility
                    got.append(ReceivedHint(m.hint, m.receipt, f"memory://sqs/{name}"))
        return got

    def delete(self, received: Sequence[ReceivedHint]) -> None:
        receipts = {r.receipt for r in received}
        with self._lock:
            for name, queue in self._queues.items():
                self._queues[name] = [m for m in queue if m.receipt not in receipts]

    def approximate_count(self, task_queue_id: str) -> int:
        with self._lock:
            return sum(len(self._queues.get(name, [])) for name in queue_names(self._prefix, task_queue_id))

    def visible(self, task_queue_id: str) -> list[Hint]:
        """The task queue's hints a receive would hand out now, highest priority first (for tests)."""
        now = self._clock.now()
        with self._lock:
            return [
                m.hint
                for name in queue_names(self._prefix, task_queue_id)
                for m in self._queues.get(name, [])
                if m.visible_at <= now
            ]
