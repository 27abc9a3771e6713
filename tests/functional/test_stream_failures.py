"""The stream handler when delivery fails: per-record failures (batchItemFailures), EventBridge's
entry and request sizes, partial PutEvents and SendMessageBatch failures, and the replay of what the
event source set aside."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from chalicelib.adapters.event_bus import PUT_EVENTS_BYTES, PUT_EVENTS_ENTRIES, SqsReleaseQueue, entry_size, requests
from infra.replay import replay
from tests.harness import (
    TEST_SETTINGS,
    Harness,
    Refusing,
    failure_messages,
    failure_queue_depth,
    refuse_events,
    refuse_hints,
    report,
    stream_records,
)

OUTAGE = ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "PutEvents")


def names(stack: Harness) -> list[tuple[str, str]]:
    """The events published since the last call, as (exchange name, taskId)."""
    return [(name, detail["status"]["taskId"] if "status" in detail else "") for name, detail in stack.events()]


def created(*task_ids: str) -> list[tuple[str, str]]:
    return [(name, t) for t in task_ids for name in ("task-defined", "task-pending")]


def invoke(stack: Harness, records: list[dict[str, Any]]) -> Any:
    return stack.client.lambda_.invoke("tasks_stream", {"Records": records}).payload


# --- batchItemFailures --------------------------------------------------------------------------------


def test_a_record_whose_events_are_refused_is_reported_and_the_records_before_it_are_not_redone(
    stack: Harness,
) -> None:
    a, b, c = stack.create(), stack.create(), stack.create()
    records = stream_records(stack)
    refusing = refuse_events(stack, lambda call, entry: "InternalFailure" if b in entry["Detail"] else None)
    answer = invoke(stack, records)
    assert answer["batchItemFailures"] == [{"itemIdentifier": records[1]["dynamodb"]["SequenceNumber"]}]
    assert sorted(names(stack)) == sorted(created(a, c))  # a and c were accepted; b was not
    assert len(refusing.sent) == 3  # b's entries were sent again twice, alone
    assert all(b in e["Detail"] for e in refusing.sent[1] + refusing.sent[2])

    refuse_events(stack, lambda call, entry: None)
    assert invoke(stack, records[1:])["batchItemFailures"] == []  # Lambda retries from b on
    assert sorted(names(stack)) == sorted(created(b, c))


def test_the_pump_retries_from_the_failed_record_not_the_whole_batch(stack: Harness) -> None:
    a, b = stack.create(), stack.create()
    refuse_events(stack, lambda call, entry: "ThrottlingException" if b in entry["Detail"] else None)
    stack.pump.step()
    assert names(stack) == created(a)
    refuse_events(stack, lambda call, entry: None)
    stack.pump.step()
    assert names(stack) == created(b)  # a's events are not published again
    assert len(stack.claim(tasks=10)) == 2


def test_a_record_that_keeps_failing_is_set_aside_and_the_stream_goes_on(stack: Harness) -> None:
    a = stack.create()
    refuse_events(stack, lambda call, entry: "InternalFailure" if a in entry["Detail"] else None)
    for _ in range(stack.pump.stream_max_retries):
        stack.pump.step()
        assert failure_messages(stack) == []
    stack.pump.step()
    [message] = failure_messages(stack)
    [record] = stream_records(stack)
    info = message["DDBStreamBatchInfo"]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == record["dynamodb"]["SequenceNumber"]
    b = stack.create()
    stack.pump.step()
    assert names(stack) == created(b)


# --- EventBridge's sizes --------------------------------------------------------------------------------


@pytest.fixture
def roomy() -> Iterator[Harness]:
    """A stack that takes task definitions up to 400 KB (DynamoDB's item size), not 256 KB."""
    with mock_aws():
        harness = Harness.start(replace(TEST_SETTINGS, max_definition_bytes=400 * 1024))
        try:
            yield harness
        finally:
            harness.stop()


def test_an_event_with_300_kb_of_tags_is_published_with_its_tags_cut_and_the_rest_of_the_batch_whole(
    roomy: Harness,
) -> None:
    stack = roomy
    tags = {"kind": "build", **{f"t{i:03}": "x" * 3000 for i in range(100)}}
    big = stack.create(tags=tags)
    small = stack.create(tags={"kind": "test"})
    sent = refuse_events(stack, lambda call, entry: None).sent
    stack.pump.step()
    published = {(name, d["status"]["taskId"]): d for name, d in stack.events()}
    assert set(published) == set(created(big, small))
    for name in ("task-defined", "task-pending"):
        detail = published[name, big]
        assert detail["truncated"] == ["task.tags"]
        kept = detail["task"]["tags"]
        assert kept["kind"] == "build" and 0 < len(kept) < len(tags)
        assert all(tags[k] == v for k, v in kept.items())
        assert published[name, small]["task"]["tags"] == {"kind": "test"}
        assert "truncated" not in published[name, small]
    for request in sent:
        assert len(request) <= PUT_EVENTS_ENTRIES
        assert sum(entry_size(e) for e in request) <= PUT_EVENTS_BYTES
    sizes = [entry_size(e) for request in sent for e in request]
    assert max(sizes) > PUT_EVENTS_BYTES - 3000  # cut no more than needed: less than one tag of room left


def test_put_events_requests_are_split_by_size_as_well_as_by_count(stack: Harness) -> None:
    tags = {f"t{i:02}": "x" * 3000 for i in range(27)}  # an 81 KB entry: three fit in a request
    tasks = [stack.create(tags=tags) for _ in range(4)]
    sent = refuse_events(stack, lambda call, entry: None).sent
    stack.pump.step()
    assert sorted(names(stack)) == sorted(created(*tasks))  # eight events, none cut short
    assert [len(r) for r in sent] == [3, 3, 2]
    assert all(sum(entry_size(e) for e in r) <= PUT_EVENTS_BYTES for r in sent)


def test_entries_are_grouped_ten_to_a_request_and_within_256_kb() -> None:
    assert [len(r) for r in requests([500] * 25)] == [10, 10, 5]
    assert requests([200_000, 62_000, 2_000, 262_144]) == [[0, 1], [2], [3]]
    assert requests([]) == []


# --- partial failures -----------------------------------------------------------------------------------


def test_entries_put_events_refuses_are_sent_again_and_only_they(stack: Harness) -> None:
    a, b = stack.create(), stack.create()
    pending_once = {0: "task-pending"}  # the first call refuses the task-pending entries
    refusing = refuse_events(
        stack, lambda call, entry: "ThrottlingException" if pending_once.get(call) == entry["DetailType"] else None
    )
    assert invoke(stack, stream_records(stack))["batchItemFailures"] == []
    first, again = refusing.sent
    assert len(first) == 4
    assert [json.loads(e["Detail"])["status"]["taskId"] for e in again] == [a, b]
    assert {e["DetailType"] for e in again} == {"task-pending"}
    assert sorted(names(stack)) == sorted(created(a, b))  # each once


def test_hints_sqs_refuses_are_sent_again_and_a_lasting_refusal_is_reported(stack: Harness) -> None:
    a, b = stack.create(), stack.create()
    records = stream_records(stack)
    refusing = refuse_hints(stack, lambda call, entry: "Unavailable" if (call, entry["Id"]) == (0, "0") else None)
    assert invoke(stack, records)["batchItemFailures"] == []
    assert [len(r) for r in refusing.sent] == [2, 1]
    assert sorted(c["status"]["taskId"] for c in stack.claim(tasks=10)) == sorted([a, b])

    c = stack.create()
    refuse_hints(stack, lambda call, entry: "ServiceUnavailable")
    answer = invoke(stack, stream_records(stack)[-1:])
    assert answer["batchItemFailures"] == [{"itemIdentifier": stream_records(stack)[-1]["dynamodb"]["SequenceNumber"]}]
    assert c not in [t for _, t in names(stack)]  # its events wait for its hint


# --- replay ---------------------------------------------------------------------------------------------


def test_records_set_aside_in_an_eventbridge_outage_are_replayed_as_they_would_have_happened(stack: Harness) -> None:
    parent = stack.create()
    child = stack.create(dependencies=[parent])
    stack.claim()
    stack.events()
    refuse_events(stack, lambda call, entry: (_ for _ in ()).throw(OUTAGE))  # every PutEvents call fails
    assert report(stack, parent, 0, "completed").status_code == 200
    for _ in range(2 * (stack.pump.stream_max_retries + 1)):  # the claim's record, then the completion's
        stack.pump.step()
    assert len(failure_messages(stack)) == 2
    assert stack.status(child)["state"] == "unscheduled"  # its release waits with the completion

    refuse_events(stack, lambda call, entry: None)  # the outage is over
    later = stack.create()
    stack.pump.step()
    assert names(stack) == created(later)  # the stream did not wait for the records set aside

    sqs = stack.pump.sqs
    url = sqs.get_queue_url(QueueName=stack.settings.stream_failure_queue)["QueueUrl"]
    done = replay(sqs, stack.pump.streams, url, lambda event: invoke(stack, event["Records"]), stack.settings.region)
    assert (done.messages, done.replayed, done.failed, done.unreadable) == (2, 2, [], [])
    stack.pump.step()
    assert names(stack) == [
        ("task-running", parent),
        ("task-completed", parent),
        ("task-group-resolved", ""),  # the parent's group (the child is in a group of its own)
        ("task-pending", child),
    ]
    assert stack.status(child)["state"] == "pending"
    assert failure_queue_depth(stack) == 0  # each message deleted once its records were carried out
    again = replay(sqs, stack.pump.streams, url, lambda event: invoke(stack, event["Records"]), "us-east-1")
    assert again.messages == 0


def test_a_replay_that_fails_again_leaves_its_message_in_the_queue(stack: Harness) -> None:
    a = stack.create()
    refuse_events(stack, lambda call, entry: "InternalFailure")
    for _ in range(stack.pump.stream_max_retries + 1):
        stack.pump.step()
    sqs = stack.pump.sqs
    url = sqs.get_queue_url(QueueName=stack.settings.stream_failure_queue)["QueueUrl"]

    def deliver(event: dict[str, Any]) -> Any:
        return invoke(stack, event["Records"])

    done = replay(sqs, stack.pump.streams, url, deliver, "us-east-1")
    assert (done.messages, done.replayed, len(done.failed)) == (1, 0, 1)
    assert failure_queue_depth(stack) == 1  # hidden for a while, not deleted
    assert a not in [t for _, t in names(stack)]


def test_release_jobs_sqs_refuses_fail_the_release_rather_than_vanish(stack: Harness) -> None:
    refusing = Refusing(stack.pump.sqs, "send_message_batch", lambda call, entry: "Unavailable" if call == 0 else None)
    queue = SqsReleaseQueue(refusing, stack.settings.release_queue)
    with pytest.raises(RuntimeError, match="refused 2 release jobs"):
        queue.enqueue([{"taskId": "a", "resolved": "completed"}, {"taskId": "b", "resolved": "completed"}])
    queue.enqueue([{"taskId": "c", "resolved": "completed"}])
    assert len(refusing.sent) == 2
