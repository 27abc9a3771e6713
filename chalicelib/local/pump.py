"""The event pump: Lambda's event source mappings and schedules, for one machine.

It reads the DynamoDB stream and any SQS event sources the app declares, and calls the *same*
handler objects Lambda would, with events shaped as Lambda delivers them, and honours their
`batchItemFailures` as Lambda does (a stream is read again from the failed record; SQS messages
reported failed are not deleted). `step()` drains what is there once (tests use it as a step
helper); `run()` keeps doing so until stopped, sharing its time between the stream and the
schedules, and waiting longer and longer while there is nothing to do (`wake()` ends a wait at once).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalice.app import Chalice, DynamoDBEventConfig, ScheduledEventConfig, SQSEventConfig
from chalice.local import LambdaContext

log = logging.getLogger(__name__)

STREAM_RETRY_PAUSE_MAX = 30.0  # seconds between retries of a failed stream record, at most


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
    failing: str | None = None  # the sequence number the handler last reported failed...
    failures: int = 0  # ...how many times in a row...
    retry_at: float = 0.0  # ...and when (time.monotonic()) to try it again


def first_failure(result: Any) -> str | None:
    """The lowest sequence number a stream handler's answer reports failed (Lambda checkpoints there)."""
    failures = result.get("batchItemFailures") if isinstance(result, dict) else None
    ids = [f.get("itemIdentifier") for f in failures or []]
    return min(ids, key=int) if ids and all(ids) else None


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
    _wake: threading.Event = field(default_factory=threading.Event)
    # A stream record the handler reports failed (batchItemFailures) is delivered again, with what
    # follows it, after `stream_retry_pause` seconds, doubled each time up to 30 s; after `stream_max_retries`
    # retries it is set aside as Lambda does: its shard and sequence number go to `failure_queue`
    # (infra.replay redoes it). Without a failure queue it is retried until it succeeds.
    failure_queue: str | None = None
    stream_max_retries: int = 10
    stream_retry_pause: float = 0.5

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

    def pump_streams(self, budget: float | None = None) -> int:
        """Deliver the stream's waiting records: all of them, or, given a `budget` in seconds, batches
        until it is spent (at least one per shard) or a batch comes back less than full (what is left
        is what was written since: the next pass takes it). Under a steady stream of writes a shard
        is never found empty: without a budget, nothing else would ever get a turn."""
        if not self._shards:
            self._open_shards()
        until = None if budget is None else time.monotonic() + budget
        handled = 0
        for source in self.app.event_sources:
            if not isinstance(source, DynamoDBEventConfig):
                continue
            for shard in self._shards:
                while shard.iterator and time.monotonic() >= shard.retry_at:
                    resp = self.streams.get_records(ShardIterator=shard.iterator, Limit=source.batch_size)
                    records = resp.get("Records", [])
                    failed = None
                    if records:
                        event = {"Records": [lambda_stream_record(r, shard.stream_arn, self.region) for r in records]}
                        # If the handler raises, the iterator stays put: the batch is retried.
                        failed = first_failure(self._invoke(source.name, event))
                    if failed is not None:
                        handled += self._retry_from(source.name, shard, failed, records)
                        break
                    shard.iterator = resp.get("NextShardIterator")
                    shard.failing, shard.failures = None, 0
                    handled += len(records)
                    if not records or (
                        until is not None and (time.monotonic() >= until or len(records) < source.batch_size)
                    ):
                        break
        return handled

    def _retry_from(self, function: str, shard: _Shard, failed: str, records: list[dict[str, Any]]) -> int:
        """The handler carried out the records before `failed` only: read again from `failed`, or
        after it once it has failed too often (it is set aside). Returns the records done."""
        done = sum(1 for r in records if int(r["dynamodb"]["SequenceNumber"]) < int(failed))
        shard.failures = shard.failures + 1 if shard.failing == failed else 1
        shard.failing = failed
        kind = "AT_SEQUENCE_NUMBER"
        if shard.failures > self.stream_max_retries and self.failure_queue is not None:
            self._set_aside(function, shard, failed, shard.failures)
            kind, shard.failing, shard.failures = "AFTER_SEQUENCE_NUMBER", None, 0
            done += 1
        else:
            pause = min(self.stream_retry_pause * 2 ** min(shard.failures - 1, 16), STREAM_RETRY_PAUSE_MAX)
            shard.retry_at = time.monotonic() + pause
        shard.iterator = self.streams.get_shard_iterator(
            StreamArn=shard.stream_arn, ShardId=shard.shard_id, ShardIteratorType=kind, SequenceNumber=failed
        )["ShardIterator"]
        return done

    def _set_aside(self, function: str, shard: _Shard, sequence_number: str, attempts: int) -> None:
        """What Lambda sends a stream's on-failure destination: the record's place, not the record."""
        assert self.failure_queue is not None
        url, _ = self._queue(self.failure_queue)
        now = datetime.utcfromtimestamp(time.time()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        message = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"arn:aws:lambda:{self.region}:123456789012:function:{function}",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": attempts,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": ""},
            "version": "1.0",
            "timestamp": now,
            "DDBStreamBatchInfo": {
                "shardId": shard.shard_id,
                "startSequenceNumber": sequence_number,
                "endSequenceNumber": sequence_number,
                "approximateArrivalOfFirstRecord": now,
                "approximateArrivalOfLastRecord": now,
                "batchSize": 1,
                "streamArn": shard.stream_arn,
            },
        }
        self.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(message))
        log.error("event pump: gave up on stream record %s of %s (to %s)", sequence_number, shard.shard_id, url)

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

    def _schedules(self) -> dict[str, float]:
        """Each schedule's name and interval."""
        return {
            source.name: self.schedule_intervals.get(source.name, self.schedule_every)
            for source in self.app.event_sources
            if isinstance(source, ScheduledEventConfig)
        }

    def due_schedules(self, now: float) -> list[str]:
        """The schedules whose interval has passed since they last ran (or since the pump started)."""
        due = []
        for name, every in self._schedules().items():
            if now - self._last_ticks.setdefault(name, now) >= every:
                self._last_ticks[name] = now
                due.append(name)
        return due

    def next_schedule_in(self, now: float) -> float:
        """Seconds from `now` until a schedule is due (infinity if the app has none)."""
        waits = [self._last_ticks.get(name, now) + every - now for name, every in self._schedules().items()]
        return max(0.0, min(waits, default=math.inf))

    def _invoke(self, name: str, event: dict[str, Any]) -> Any:
        return self.app.handler_map[name](event, self._context(name))

    def step(self) -> int:
        """Deliver everything waiting once: stream records, then SQS messages."""
        return self.pump_streams() + self.pump_queues()

    def wake(self) -> None:
        """Something was written: end the idle wait now (the embedded stack calls this once its API
        has served a request that may have written, so a new task is dispatched at once)."""
        self._wake.set()

    def run(
        self,
        stop: threading.Event,
        idle_sleep: float = 0.02,
        idle_max: float = 1.0,
        queue_every: float = 0.25,
        stream_budget: float = 0.5,
        batch_window: float = 0.05,
    ) -> None:
        """Deliver continuously, running each schedule at its interval, until `stop` is set.

        Each pass reads the stream for at most about `stream_budget` seconds, then runs the schedules
        that are due, so a steady stream of writes cannot hold up the sweeper (claim expiry) or the
        provisioner. SQS sources, which carry only overflow work, are read at most every `queue_every`
        seconds. After a pass that found nothing, the pump waits `idle_sleep` seconds, twice as long
        after each further idle pass up to `idle_max` (an idle stack costs next to no CPU, however
        much it stores), never past the next schedule; `wake()` ends the wait. After a pass that
        delivered something, the pump gathers writes for `batch_window` seconds before it reads again
        (Lambda's batching window): under a steady stream of writes, fewer and larger batches, each
        handler call paying its fixed costs (a PutEvents, a SendMessageBatch) for more records. A
        write to an idle stack is still delivered at once.
        """
        self._last_ticks.clear()
        self.due_schedules(time.monotonic())  # each schedule's first run is one interval from now
        last_queues = 0.0
        sleep = idle_sleep
        while not stop.is_set():
            self._wake.clear()  # from here on, a write ends the next wait
            try:
                busy = self.pump_streams(stream_budget)
                if time.monotonic() - last_queues >= queue_every:
                    last_queues = time.monotonic()
                    busy += self.pump_queues()
                due = self.due_schedules(time.monotonic())
                if due:
                    self.tick(due)
            except Exception:
                # Lambda would retry the batch; so do we, after a pause.
                log.exception("event pump: handler failed; retrying")
                busy, due = 0, []
                stop.wait(1.0)
            if busy:
                sleep = idle_sleep
                stop.wait(batch_window)
                continue
            if due:
                continue  # what the schedules wrote is on the stream already: deliver it first
            self.idle_since = time.monotonic()
            woken = self._wake.wait(min(sleep, self.next_schedule_in(time.monotonic())))
            sleep = idle_sleep if woken else min(sleep * 2, idle_max)
