"""motofast's patch 30 answers GetQueueAttributes with one walk of the queue for its message
counts: the answers must be unpatched moto's. The same queues and messages (visible, received and
in flight, delayed, deleted; a standard and a FIFO queue) and the same questions run once with the
patches and once without, each in a process of its own; the transcripts must be equal. Delays and
visibility timeouts are long, so nothing changes state while the questions are asked.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tests.unit.moto_twins import transcripts

QUESTIONS: list[list[str]] = [
    ["ApproximateNumberOfMessages"],
    ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    ["ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessages", "ApproximateNumberOfMessages"],
    ["VisibilityTimeout", "ApproximateNumberOfMessagesNotVisible", "QueueArn"],
    ["FifoQueue", "ContentBasedDeduplication", "ApproximateNumberOfMessagesDelayed"],
    ["KmsMasterKeyId"],
    ["RedrivePolicy", "Policy"],
    ["All"],
    ["ApproximateNumberOfMessages", "NoSuchAttribute"],
]


def transcript(patched: bool) -> list[Any]:
    """What moto answers (in this process: call it in a fresh one)."""
    import boto3
    from moto import mock_aws

    if patched:
        from chalicelib.local import motofast

        motofast.apply()
    log: list[Any] = []
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        # With a dead-letter queue, as the hint queues have, and without one (patch 3 once answered
        # "null" for the RedrivePolicy of a queue without one, where moto leaves it out).
        plain = sqs.create_queue(QueueName="plain")["QueueUrl"]
        dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 5})
        standard = sqs.create_queue(QueueName="hints", Attributes={"RedrivePolicy": redrive})["QueueUrl"]
        fifo_dlq = sqs.create_queue(QueueName="dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        fifo_arn = sqs.get_queue_attributes(QueueUrl=fifo_dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        fifo = sqs.create_queue(
            QueueName="hints.fifo",
            Attributes={
                "FifoQueue": "true",
                "ContentBasedDeduplication": "true",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": fifo_arn, "maxReceiveCount": 5}),
            },
        )["QueueUrl"]
        for url in (standard, fifo, plain):
            for i in range(30):
                extra: dict[str, Any] = {"MessageGroupId": f"g{i % 3}"} if url == fifo else {}
                if url == standard and i % 4 == 0:
                    extra["DelaySeconds"] = 900
                sqs.send_message(QueueUrl=url, MessageBody=f"m{i}", **extra)
            received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=7, VisibilityTimeout=3600)
            messages = received.get("Messages", [])
            for m in messages[:2]:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            for names in QUESTIONS:
                try:
                    answer = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names).get("Attributes")
                    answer = {
                        k: v
                        for k, v in (answer or {}).items()
                        if k not in ("CreatedTimestamp", "LastModifiedTimestamp")
                    }
                    log.append(answer)
                except sqs.exceptions.ClientError as e:
                    log.append(e.response["Error"]["Code"])
    return log


def test_queue_attributes_answer_as_unpatched_moto() -> None:
    patched, unpatched = transcripts(__file__)
    counts = [a for a in patched if isinstance(a, dict) and "ApproximateNumberOfMessagesDelayed" in a]
    assert {a["ApproximateNumberOfMessagesDelayed"] for a in counts} >= {"0", "8"}  # both kinds of queue asked
    assert any(a.get("ApproximateNumberOfMessagesNotVisible") == "5" for a in patched if isinstance(a, dict))
    for i, (a, b) in enumerate(zip(patched, unpatched, strict=True)):
        assert a == b, f"answer {i} differs"


if __name__ == "__main__":
    json.dump(transcript(sys.argv[1] == "patched"), sys.stdout)
