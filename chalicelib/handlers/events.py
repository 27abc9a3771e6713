"""Event sources: the tasks table's stream (the outbox), the release queue and the sweeper's schedule.

These are the functions Lambda calls; the embedded stack's event pump calls the very same ones
with events shaped as Lambda delivers them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from chalice import Blueprint, Rate
from chalice.app import DynamoDBEvent, SQSEvent

from .. import container
from ..config import Settings
from ..domain.model import TaskState
from ..services.outbox import StreamRecord

events_bp = Blueprint(__name__)
SETTINGS = Settings.from_env()  # decorator arguments are evaluated once, at import


def _time_left(context: Any) -> Callable[[], float]:
    if context is None:
        return lambda: 60.0
    return lambda: float(context.get_remaining_time_in_millis()) / 1000


@events_bp.on_dynamodb_record(stream_arn=SETTINGS.tasks_stream_arn, batch_size=100, starting_position="TRIM_HORIZON")
def tasks_stream(event: DynamoDBEvent) -> dict[str, Any]:
    """The outbox over a batch of the tasks stream. A record not carried out in full is returned in
    `batchItemFailures` (its SequenceNumber: the event source mapping reports item failures, see
    infra/template.py): Lambda retries the stream from it, so the records before it are not redone."""
    records = [StreamRecord(r.event_id, r.old_image, r.new_image, r.sequence_number) for r in event]
    report = container.get().outbox.process_records(records, _time_left(getattr(event, "context", None)))
    failed = report.failed_record
    return {
        "batchItemFailures": [{"itemIdentifier": failed.sequence_number}] if failed else [],
        "records": report.records,
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
        report = c.dependencies.release(
            job["taskId"], TaskState(job["resolved"]), job.get("continuation"), _time_left(event.context)
        )
        released += len(report.released)
    return {"released": released}


@events_bp.schedule(Rate(1, unit=Rate.MINUTES), name="sweeper")
def sweeper(event: Any) -> dict[str, Any]:
    report = container.get().sweeper.sweep(_time_left(getattr(event, "context", None)))
    return {
        "examined": report.examined,
        "changed": len(report.changed),
        "rounds": report.rounds,
        "outOfTime": report.out_of_time,
    }
