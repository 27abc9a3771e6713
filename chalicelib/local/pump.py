"""The event pump: Lambda's event source mappings and schedules, for one machine.

It reads the DynamoDB stream and any SQS event sources the app declares, and calls the *same*
handler objects Lambda would, with events shaped as Lambda delivers them. `step()` drains what
is there once (tests use it as a step helper); `run()` keeps doing so until stopped.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalice.app import Chalice, DynamoDBEventConfig, ScheduledEventConfig, SQSEventConfig
from chalice.local import LambdaContext

log = logging.getLogger("taskqueue.pump")


def lambda_stream_record(record: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A GetRecords record as Lambda's event source mapping delivers it."""
    ddb = dict(record["dynamodb"])
    created = ddb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        ddb["ApproximateCreationDateTime"] = created.timestamp()
    ddb.setdefault("ApproximateCreationDateTime", time.time())
    return {
        "eventID": record.get("eventID", uuid.uuid4().hex),
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion", region),
        "dynamodb": ddb,
        "eventSourceARN": stream_arn,
    }


def lambda_sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


@dataclass
class _Shard:
    stream_arn: str
    shard_id: str
    iterator: str | None


@dataclass
class EventPump:
    app: Chalice
    dynamodb: Any
    streams: Any
    sqs: Any
    region: str
    table_for_stream: Callable[[str], str]  # configured stream ARN -> table name
    schedule_every: float = 60.0  # seconds between runs of each schedule...
    schedule_intervals: dict[str, float] = field(default_factory=dict)  # ...unless named here
    _shards: list[_Shard] = field(default_factory=list)
    _last_ticks: dict[str, float] = field(default_factory=dict)  # schedule name -> time.monotonic()
    idle_since: float = 0.0  # time.monotonic() when a pass last found nothing to deliver
    _queues: dict[str, tuple[str, str]] = field(default_factory=dict)

    def _context(self, name: str) -> LambdaContext:
        return LambdaContext(function_name=name, memory_size=512, max_runtime_ms=900_000)

    # --- DynamoDB streams ----------------------------------------------------------------------
    def _open_shards(self) -> None:
        for source in self.app.event_sources:
            if not isinstance(source, DynamoDBEventConfig):
                continue
            table = self.table_for_stream(source.stream_arn)
            arn = self.dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
            known = {(s.stream_arn, s.shard_id) for s in self._shards}
            for shard in self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
                if (arn, shard["ShardId"]) in known:
                    continue
                it = self.streams.get_shard_iterator(
                    StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
                self._shards.append(_Shard(arn, shard["ShardId"], it))

    def shards_skip_to_end(self) -> None:
        """Drop every record not yet delivered (tests use it to lose a stream record on purpose)."""
        if not self._shards:
            self._open_shards()
        for shard in self._shards:
            shard.iterator = self.streams.get_shard_iterator(
                StreamArn=shard.stream_arn, ShardId=shard.shard_id, ShardIteratorType="LATEST"
            )["ShardIterator"]

    def pump_streams(self) -> int:
        if not self._shards:
            self._open_shards()
        handled = 0
        for source in self.app.event_sources:
            if not isinstance(source, DynamoDBEventConfig):
                continue
            for shard in self._shards:
                while shard.iterator:
                    resp = self.streams.get_records(ShardIterator=shard.iterator, Limit=source.batch_size)
                    records = resp.get("Records", [])
                    if records:
                        event = {"Records": [lambda_stream_record(r, shard.stream_arn, self.region) for r in records]}
                        # If the handler raises, the iterator stays put: the batch is retried.
                        self._invoke(source.name, event)
                    shard.iterator = resp.get("NextShardIterator")
                    handled += len(records)
                    if not records:
                        break
        return handled

    # --- SQS -----------------------------------------------------------------------------------
    def pump_queues(self) -> int:
        handled = 0
        for source in self.app.event_sources:
            if not isinstance(source, SQSEventConfig):
                continue
            assert source.queue is not None, "SQS event sources are declared by queue name here"
            url, arn = self._queue(source.queue)
            while True:
                msgs = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(10, source.batch_size)).get(
                    "Messages", []
                )
                if not msgs:
                    break
                result = self._invoke(source.name, {"Records": [lambda_sqs_record(m, arn, self.region) for m in msgs]})
                failed = (
                    {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
                    if isinstance(result, dict)
                    else set()
                )
                done = [m for m in msgs if m["MessageId"] not in failed]
                if done:
                    self.sqs.delete_message_batch(
                        QueueUrl=url,
                        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                    )
                handled += len(msgs)
        return handled

    def _queue(self, name: str) -> tuple[str, str]:
        if name not in self._queues:
            url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
            attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            self._queues[name] = (url, attrs["Attributes"]["QueueArn"])
        return self._queues[name]

    # --- schedules -----------------------------------------------------------------------------
    def tick(self, names: Collection[str] | None = None) -> None:
        """Run the app's schedules (those named; default: all) once, as EventBridge would."""
        for source in self.app.event_sources:
            if isinstance(source, ScheduledEventConfig) and (names is None or source.name in names):
                event = {
                    "id": str(uuid.uuid4()),
                    "detail-type": "Scheduled Event",
                    "source": "aws.events",
                    "time": datetime.utcfromtimestamp(time.time()).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "region": self.region,
                    "resources": [],
                    "detail": {},
                    "account": "123456789012",
                    "version": "0",
                }
                self._invoke(source.name, event)

    def due_schedules(self, now: float) -> list[str]:
        """The schedules whose interval has passed since they last ran (or since the pump started)."""
        due = []
        for source in self.app.event_sources:
            if isinstance(source, ScheduledEventConfig):
                every = self.schedule_intervals.get(source.name, self.schedule_every)
                if now - self._last_ticks.setdefault(source.name, now) >= every:
                    self._last_ticks[source.name] = now
                    due.append(source.name)
        return due

    def _invoke(self, name: str, event: dict[str, Any]) -> Any:
        return self.app.handler_map[name](event, self._context(name))

    def step(self) -> int:
        """Deliver everything waiting once: stream records, then SQS messages."""
        return self.pump_streams() + self.pump_queues()

    def run(self, stop: threading.Event, idle_sleep: float = 0.02, queue_every: float = 0.25) -> None:
        """Deliver continuously, running each schedule at its interval, until `stop` is set.

        The stream is read every `idle_sleep` seconds when idle (dispatch latency rides on it); SQS
        sources, which carry only overflow work, every `queue_every` seconds.
        """
        self._last_ticks.clear()
        self.due_schedules(time.monotonic())  # each schedule's first run is one interval from now
        last_queues = 0.0
        while not stop.is_set():
            try:
                busy = self.pump_streams()
                if time.monotonic() - last_queues >= queue_every:
                    last_queues = time.monotonic()
                    busy += self.pump_queues()
                due = self.due_schedules(time.monotonic())
                if due:
                    self.tick(due)
            except Exception:
                # Lambda would retry the batch; so do we, after a pause.
                log.exception("event pump: handler failed; retrying")
                busy = 0
                stop.wait(1.0)
            if not busy:
                self.idle_since = time.monotonic()
                stop.wait(idle_sleep)
