"""Redo the tasks stream's records its event source set aside: `python -m infra.replay --stage <stage>`.

When the stream function keeps failing on a record (an EventBridge or SQS outage, a bug), Lambda
retries it a bounded number of times and then sends the failure queue (`<prefix>tasks-stream-failures`)
where the records were: the stream, the shard and the first and last sequence numbers, not the
records. This reads those records again from the stream — it keeps them 24 hours, and they are set
aside at 6 hours old at the latest (template.STREAM_MAX_RECORD_AGE) — and delivers them to the stream
function again, in order and shaped as Lambda delivers them, so their hints, events and dependency
releases happen as they would have. Everything a record causes is idempotent or at-least-once
(invariant 4): replaying a record that did succeed meanwhile does no harm.

A message is deleted once its records are all carried out. One whose records fail again, or that the
stream no longer holds (older than 24 hours: the sweeper has re-announced their pending runs and
re-checked their dependencies, but their task events are lost), stays in the queue and is reported;
it comes back after VISIBILITY seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from chalicelib.local.pump import first_failure, lambda_stream_record
from infra import template

VISIBILITY = 300  # seconds a message being replayed stays hidden from another replay
PAYLOAD_BYTES = 5 * 1024 * 1024  # records per invocation: Lambda takes 6 MB; the rest is margin
EMPTY_PAGES = 5  # GetRecords pages without records before a range is taken as ended

# Delivers a stream event (Lambda's shape) to the stream function: its answer.
Deliver = Callable[[dict[str, Any]], Any]


@dataclass
class ReplayReport:
    messages: int = 0  # failure messages read
    replayed: int = 0  # records delivered again and carried out
    failed: list[str] = field(default_factory=list)  # messages whose records failed again (left in the queue)
    unreadable: list[str] = field(default_factory=list)  # messages whose records the stream no longer holds (left)


def read_range(streams: Any, info: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of a failure message's range, as GetRecords returns them ([] if the stream no
    longer holds them)."""
    try:
        iterator = streams.get_shard_iterator(
            StreamArn=info["streamArn"],
            ShardId=info["shardId"],
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=info["startSequenceNumber"],
        )["ShardIterator"]
    except ClientError as e:
        if e.response["Error"]["Code"] in ("TrimmedDataAccessException", "ResourceNotFoundException"):
            return []
        raise
    start, end = int(info["startSequenceNumber"]), int(info["endSequenceNumber"])
    records: list[dict[str, Any]] = []
    empty = 0
    while iterator and empty < EMPTY_PAGES:
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        empty = 0 if page.get("Records") else empty + 1
        for record in page.get("Records", []):
            number = int(record["dynamodb"]["SequenceNumber"])
            if number > end:
                return records
            if number >= start:
                records.append(record)
        iterator = page.get("NextShardIterator")
    return records


def invocations(records: Sequence[dict[str, Any]], limit: int = PAYLOAD_BYTES) -> list[list[dict[str, Any]]]:
    """Lambda-shaped records in order, grouped into payloads of at most `limit` bytes (a record
    larger than that alone)."""
    out: list[list[dict[str, Any]]] = []
    size = limit
    for record in records:
        n = len(json.dumps(record, default=str)) + 2
        if size + n > limit:
            out.append([])
            size = len('{"Records":[]}')
        out[-1].append(record)
        size += n
    return out


def replay(sqs: Any, streams: Any, queue_url: str, deliver: Deliver, region: str) -> ReplayReport:
    """Drain the failure queue, redoing each message's records (see the module's docstring)."""
    report = ReplayReport()
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=VISIBILITY, WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return report
        report.messages += len(messages)
        found = []
        for m in messages:
            info = json.loads(m["Body"]).get("DDBStreamBatchInfo") or {}
            found.append((info, m))
        # Oldest first within what was received: a record's later changes after its earlier ones.
        found.sort(key=lambda f: (f[0].get("shardId", ""), int(f[0].get("startSequenceNumber", 0))))
        for info, m in found:
            records = read_range(streams, info) if info else []
            if not records:
                report.unreadable.append(m["MessageId"])
                continue
            shaped = [lambda_stream_record(r, info["streamArn"], region) for r in records]
            done = 0
            for batch in invocations(shaped):
                answer = deliver({"Records": batch})
                failed = first_failure(answer)
                if failed is not None or (isinstance(answer, dict) and answer.get("FunctionError")):
                    break
                done += len(batch)
            if done < len(shaped):
                report.failed.append(m["MessageId"])
                continue
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
            report.replayed += len(shaped)


def lambda_deliverer(lam: Any, function_name: str) -> Deliver:
    """Deliver by invoking the deployed stream function, as its event source does."""

    def deliver(event: dict[str, Any]) -> Any:
        response = lam.invoke(FunctionName=function_name, Payload=json.dumps(event, default=str).encode())
        answer = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            return {"FunctionError": response["FunctionError"], "answer": answer}
        return answer

    return deliver


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.replay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="dev", help="the stage whose failure queue to drain (default: dev)")
    args = parser.parse_args(argv)
    names = template.stage_names(args.stage)
    session = boto3.session.Session()
    region = session.region_name
    if not region:
        print("no AWS region: set AWS_DEFAULT_REGION (or a profile's region)", file=sys.stderr)
        return 2
    sqs = session.client("sqs")
    url = sqs.get_queue_url(QueueName=names.stream_failure_queue)["QueueUrl"]
    deliver = lambda_deliverer(session.client("lambda"), names.function_name(template.STREAM_HANDLER))
    report = replay(sqs, session.client("dynamodbstreams"), url, deliver, region)
    print(
        f"{report.messages} failure messages: {report.replayed} records replayed; "
        f"{len(report.failed)} failed again, {len(report.unreadable)} no longer in the stream (left in the queue)"
    )
    return 1 if report.failed or report.unreadable else 0


if __name__ == "__main__":
    sys.exit(main())
