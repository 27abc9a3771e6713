"""motofast's patches for SQS under threads (4's in-flight lookup, 20): the stand-in serves several
processes' receives and deletes at once, so a queue's set of in-flight messages may change while
a request looks through it. A change made in the middle of a receive or a delete (by the message
being looked at, standing in for another thread) no longer fails it; the answers stay moto's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.sqs.models import Message, sqs_backends

REGION = "us-east-1"


@pytest.fixture
def sqs() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


def _queue(url: str) -> Any:
    return sqs_backends["123456789012"][REGION].get_queue(url.rsplit("/", 1)[1])


def _meddling(message: Message, pending: set[Message], other: Message) -> None:
    """`message` adds `other` to `pending` the first time it is looked at, as another thread's
    receive would between two steps of an iteration over the set."""

    class Meddling(type(message)):  # type: ignore[misc]
        def __getattribute__(self, name: str) -> Any:
            if name in ("group_id", "had_receipt_handle") and other not in pending:
                pending.add(other)
            return super().__getattribute__(name)

    message.__class__ = Meddling


def test_fifo_receives_hold_back_a_group_in_flight(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="q.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    for body, group in (("a1", "a"), ("a2", "a"), ("b1", "b")):
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=body)
    first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
    second = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in first] == ["a1"]
    assert [m["Body"] for m in second] == ["b1"]  # a2 waits for a1
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"])
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]] == ["a2"]


def test_a_receive_survives_the_in_flight_set_changing_under_it(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    for body in ("in flight", "visible", "taken meanwhile"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    queue = _queue(url)
    in_flight, _, taken = queue._messages
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)
    assert queue.pending_messages == {in_flight}
    _meddling(in_flight, queue.pending_messages, taken)

    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]

    assert [m["Body"] for m in got] == ["visible"]


def test_a_delete_survives_the_in_flight_set_changing_under_it(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    for body in ("one", "two", "taken meanwhile"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    queue = _queue(url)
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)["Messages"]
    one, two, taken = queue._messages
    for message in (one, two):
        _meddling(message, queue.pending_messages, taken)

    sqs.delete_message(QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"])

    assert _counts(sqs, url) == ("1", "1")  # "two" in flight, "taken meanwhile" visible
    sqs.delete_message(QueueUrl=url, ReceiptHandle=received[1]["ReceiptHandle"])
    assert _counts(sqs, url) == ("1", "0")


def _counts(sqs: Any, url: str) -> tuple[str, str]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return attributes[names[0]], attributes[names[1]]
