"""The stream handler (the outbox) with Lambda-shaped events: replays, duplicates, poison records."""

from __future__ import annotations

from tests.harness import Harness, invoke_stream, stream_records


def pending_hints(stack: Harness) -> int:
    sqs = stack.pump.sqs
    total = 0
    for url in sqs.list_queues(QueueNamePrefix="taskqueue-proj").get("QueueUrls", []):
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        total += int(attrs["Attributes"]["ApproximateNumberOfMessages"])
    return total


def test_a_new_pending_task_gets_one_hint(stack: Harness) -> None:
    stack.create()
    assert invoke_stream(stack, stream_records(stack)) == {"records": 1, "hints": 1}
    assert pending_hints(stack) == 1


def test_a_definition_items_record_is_skipped(stack: Harness) -> None:
    stack.create()
    everything = stream_records(stack, definitions=True)
    [status] = stream_records(stack)
    [definition] = [r for r in everything if r != status]
    assert invoke_stream(stack, [definition]) == {"records": 0, "hints": 0}
    assert invoke_stream(stack, [definition, status]) == {"records": 1, "hints": 1}


def test_replayed_and_reordered_records_never_claim_a_run_twice(stack: Harness) -> None:
    a, b = stack.create(), stack.create()
    records = stream_records(stack)
    for batch in (records, records[::-1], records + records):
        invoke_stream(stack, batch)
    claims = stack.claim(tasks=10) + stack.claim(tasks=10)
    assert sorted(c["status"]["taskId"] for c in claims) == sorted([a, b])


def test_changes_that_make_no_pending_run_send_nothing(stack: Harness) -> None:
    task_id = stack.create()
    stack.pump.step()
    stack.claim()
    stack.call("POST", f"/task/{task_id}/runs/0/completed")
    records = stream_records(stack)[1:]  # the claim and the resolution
    assert [r["eventName"] for r in records] == ["MODIFY", "MODIFY"]
    assert invoke_stream(stack, records) == {"records": 2, "hints": 0}


def test_a_retry_run_gets_a_hint(stack: Harness) -> None:
    task_id = stack.create()
    stack.claim()
    stack.call("POST", f"/task/{task_id}/runs/0/exception", {"reason": "worker-shutdown"})
    last = stream_records(stack)[-1]
    assert invoke_stream(stack, [last]) == {"records": 1, "hints": 1}


def test_a_poison_record_is_skipped_and_the_rest_processed(stack: Harness) -> None:
    stack.create()
    [good] = stream_records(stack)
    poison = {**good, "eventID": "poison", "dynamodb": {**good["dynamodb"], "NewImage": {"taskId": {"S": "x"}}}}
    assert invoke_stream(stack, [poison, good]) == {"records": 1, "hints": 1}


def test_removed_rows_send_nothing(stack: Harness) -> None:
    stack.create()
    [record] = stream_records(stack)
    ddb = record["dynamodb"]
    removal = {**record, "eventName": "REMOVE", "dynamodb": {**ddb, "OldImage": ddb["NewImage"], "NewImage": None}}
    del removal["dynamodb"]["NewImage"]
    assert invoke_stream(stack, [removal]) == {"records": 1, "hints": 0}
