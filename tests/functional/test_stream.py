"""The stream handler (the outbox) with Lambda-shaped events: replays, duplicates, poison records."""

from __future__ import annotations

from typing import Any

from chalicelib.local.pump import lambda_stream_record
from tests.harness import Harness


def stream_records(stack: Harness) -> list[dict[str, Any]]:
    """Every record on the tasks stream so far, as Lambda would deliver them."""
    ddb, streams = stack.pump.dynamodb, stack.pump.streams
    arn = ddb.describe_table(TableName=stack.settings.tasks_table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = streams.get_records(ShardIterator=it, Limit=1000)["Records"]
    return [lambda_stream_record(r, arn, stack.settings.region) for r in records]


def invoke(stack: Harness, records: list[dict[str, Any]]) -> Any:
    """The stream handler's answer, reduced to what these tests are about: records read, hints sent."""
    payload = stack.client.lambda_.invoke("tasks_stream", {"Records": records}).payload
    return {k: payload[k] for k in ("records", "hints")}


def pending_hints(stack: Harness) -> int:
    sqs = stack.pump.sqs
    total = 0
    for url in sqs.list_queues(QueueNamePrefix="taskqueue-proj").get("QueueUrls", []):
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        total += int(attrs["Attributes"]["ApproximateNumberOfMessages"])
    return total


def test_a_new_pending_task_gets_one_hint(stack: Harness) -> None:
    stack.create()
    assert invoke(stack, stream_records(stack)) == {"records": 1, "hints": 1}
    assert pending_hints(stack) == 1


def test_replayed_and_reordered_records_never_claim_a_run_twice(stack: Harness) -> None:
    a, b = stack.create(), stack.create()
    records = stream_records(stack)
    for batch in (records, records[::-1], records + records):
        invoke(stack, batch)
    claims = stack.claim(tasks=10) + stack.claim(tasks=10)
    assert sorted(c["status"]["taskId"] for c in claims) == sorted([a, b])


def test_changes_that_make_no_pending_run_send_nothing(stack: Harness) -> None:
    task_id = stack.create()
    stack.pump.step()
    stack.claim()
    stack.call("POST", f"/task/{task_id}/runs/0/completed")
    records = stream_records(stack)[1:]  # the claim and the resolution
    assert [r["eventName"] for r in records] == ["MODIFY", "MODIFY"]
    assert invoke(stack, records) == {"records": 2, "hints": 0}


def test_a_retry_run_gets_a_hint(stack: Harness) -> None:
    task_id = stack.create()
    stack.claim()
    stack.call("POST", f"/task/{task_id}/runs/0/exception", {"reason": "worker-shutdown"})
    last = stream_records(stack)[-1]
    assert invoke(stack, [last]) == {"records": 1, "hints": 1}


def test_a_poison_record_is_skipped_and_the_rest_processed(stack: Harness) -> None:
    stack.create()
    [good] = stream_records(stack)
    poison = {**good, "eventID": "poison", "dynamodb": {**good["dynamodb"], "NewImage": {"taskId": {"S": "x"}}}}
    assert invoke(stack, [poison, good]) == {"records": 1, "hints": 1}


def test_removed_rows_send_nothing(stack: Harness) -> None:
    stack.create()
    [record] = stream_records(stack)
    ddb = record["dynamodb"]
    removal = {**record, "eventName": "REMOVE", "dynamodb": {**ddb, "OldImage": ddb["NewImage"], "NewImage": None}}
    del removal["dynamodb"]["NewImage"]
    assert invoke(stack, [removal]) == {"records": 1, "hints": 0}
