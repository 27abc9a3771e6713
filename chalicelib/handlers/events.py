"""Event sources: the tasks table's stream (the outbox), the release queue and the sweeper's schedule.

These are the functions Lambda calls; the embedded stack's event pump calls the very same ones
with events shaped as Lambda delivers them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from chalice import Blueprint, Rate
from chalice.app import DynamoDBEvent, SQSEvent

from .. import container
from ..adapters.task_store import task_from_row
from ..config import Settings
from ..domain.model import Task, TaskState
from ..services.outbox import RowChange

log = logging.getLogger("taskqueue.events")
events_bp = Blueprint(__name__)
SETTINGS = Settings.from_env()  # decorator arguments are evaluated once, at import


def _task(model: Any, image: dict[str, Any] | None) -> Task | None:
    return task_from_row(model.from_raw_data(image)) if image else None


def _time_left(context: Any) -> Callable[[], float]:
    if context is None:
        return lambda: 60.0
    return lambda: float(context.get_remaining_time_in_millis()) / 1000


@events_bp.on_dynamodb_record(stream_arn=SETTINGS.tasks_stream_arn, batch_size=100, starting_position="TRIM_HORIZON")
def tasks_stream(event: DynamoDBEvent) -> dict[str, Any]:
    c = container.get()
    changes: list[RowChange] = []
    for record in event:
        try:
            changes.append(RowChange(_task(c.task_model, record.old_image), _task(c.task_model, record.new_image)))
        except Exception:
            # A record we cannot read must not block the shard (invariant 4); the sweeper
            # re-derives anything it should have caused from the row itself.
            log.exception("skipping unreadable stream record %s", record.event_id)
    report = c.outbox.process(changes, _time_left(getattr(event, "context", None)))
    return {
        "records": len(changes),
        "hints": len(report.hints),
        "events": len(report.events),
        "released": len(report.released),
        "seen": report.seen_written,
    }


@events_bp.on_sqs_message(queue=SETTINGS.release_queue, batch_size=1, name="release")
def release(event: SQSEvent) -> dict[str, Any]:
    """Dependency releases too big for one stream invocation continue here, a page at a time."""
    c = container.get()
    released = 0
    for record in event:
        job = json.loads(record.body)
        report = c.graph.release(
            job["taskId"], TaskState(job["resolved"]), job.get("continuation"), _time_left(event.context)
        )
        released += len(report.released)
    return {"released": released}


@events_bp.schedule(Rate(1, unit=Rate.MINUTES), name="sweeper")
def sweeper(event: Any) -> dict[str, Any]:
    report = container.get().sweeper.sweep()
    return {"examined": report.examined, "changed": len(report.changed)}
