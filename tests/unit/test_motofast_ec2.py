"""motofast's EC2 patches (40-43) change its cost, never its answers: a sequence of EC2 requests
— images asked for by id and by filter (plain, wildcard, unknown, malformed), launches naming a
known and an unknown image, instances and their tags listed by id and by filters, tags changed,
instances looked up by id (known and not) and ended, and a few SQS and EventBridge requests
(patch 43 serializes their answers too) — answers the same on the patched stand-in
(this process: conftest applies motofast) as on moto without the patches (a fresh interpreter
that never imports motofast). moto's ids are seeded, so both make the same ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import ClientError
from moto import mock_aws

from tests.unit.moto_twins import unpatched_scenario

REGION = "us-east-1"
TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)?")
# moto's random ids, addresses and names (seeded, but what else ran in this process may have drawn
# some first): named by the order they first appear in instead.
ID = re.compile(
    r"\b[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\b|\b[a-z]+-[0-9a-f]{8,17}\b|\b\d+[.-]\d+[.-]\d+[.-]\d+\b|\b[0-9a-f]{2}(:[0-9a-f]{2}){5}\b"
)


def _answer(call: Callable[..., Any], **params: Any) -> Any:
    try:
        out = call(**params)
    except ClientError as e:
        return {"error": e.response["Error"]["Code"], "message": e.response["Error"].get("Message")}
    out.pop("ResponseMetadata", None)
    out.pop("NextToken", None)
    return out


def scenario() -> list[Any]:
    """The answers to the sequence, on whatever moto this process has (inside a mock)."""
    from moto.moto_api._internal import mock_random

    mock_random.seed(7)
    ec2 = boto3.client("ec2", region_name=REGION)
    images = sorted(i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"])
    known, other = images[0], images[1]
    answers: list[Any] = []
    for ids in ([known], [known, other], ["ami-00000000"], ["not-an-image"]):
        answers.append(_answer(ec2.describe_images, ImageIds=ids))
    for values in ([known], [known, other], [known[:-2] + "*"], [known[:-1] + "?"], ["ami-00000000"]):
        answers.append(_answer(ec2.describe_images, Filters=[{"Name": "image-id", "Values": values}]))
    answers.append(_answer(ec2.describe_images, ImageIds=[known], Owners=["amazon"]))
    tags = [{"Key": "ManagedBy", "Value": "stage"}, {"Key": "Name", "Value": "pool"}]
    spec = {"InstanceType": "m5.large", "MinCount": 2, "MaxCount": 2}
    specs = [{"ResourceType": "instance", "Tags": tags}, {"ResourceType": "volume", "Tags": tags[:1]}]
    for token, image in enumerate((known, "ami-12345678")):  # botocore's own tokens are random: not the same
        answers.append(
            _answer(ec2.run_instances, ImageId=image, TagSpecifications=specs, ClientToken=str(token), **spec)
        )
    answers.append(_answer(ec2.run_instances, ImageId=other, ClientToken="untagged", **spec))
    listed = ec2.describe_instances()["Reservations"]
    ids = [i["InstanceId"] for r in listed for i in r["Instances"]]
    ec2.create_tags(Resources=[ids[0]], Tags=[{"Key": "extra", "Value": "1"}])
    ec2.delete_tags(Resources=[ids[1]], Tags=[{"Key": "Name"}])
    answers.append(_answer(ec2.describe_instances))
    for values in ([ids[0]], [ids[1]], [ids[-1]], [ids[0][:-3] + "*"], [ids[0], ids[2]], ["i-0000000000000000"]):
        answers.append(_answer(ec2.describe_tags, Filters=[{"Name": "resource-id", "Values": values}]))
    answers.append(_answer(ec2.describe_tags))
    answers.append(_answer(ec2.describe_tags, Filters=[{"Name": "key", "Values": ["Name"]}]))
    for filters in (
        [{"Name": "tag:ManagedBy", "Values": ["stage"]}],
        [{"Name": "tag:Name", "Values": ["pool"]}, {"Name": "instance-state-name", "Values": ["running"]}],
        [{"Name": "image-id", "Values": [known]}],
    ):
        answers.append(_answer(ec2.describe_instances, Filters=filters))
    for instance_id in (ids[0], "i-0000000000000000"):
        answers.append(_answer(ec2.describe_instance_attribute, InstanceId=instance_id, Attribute="instanceType"))
    answers.append(_answer(ec2.terminate_instances, InstanceIds=[ids[0]]))
    answers.append(_answer(ec2.describe_instances, InstanceIds=ids))
    answers.append(_answer(ec2.describe_volumes))
    answers.append(_answer(ec2.describe_security_groups))
    answers.append(_answer(ec2.describe_subnets))
    return answers + other_services()


def other_services() -> list[Any]:
    """The stack's other services whose answers go through moto's serializer (patch 43)."""
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    sqs.send_message(
        QueueUrl=url, MessageBody="hello", MessageAttributes={"a": {"DataType": "String", "StringValue": "b"}}
    )
    received = _answer(sqs.receive_message, QueueUrl=url, MessageAttributeNames=["All"], AttributeNames=["SenderId"])
    for message in received["Messages"]:
        del message["MessageId"], message["ReceiptHandle"]  # random
    events = boto3.client("events", region_name=REGION)
    events.put_rule(Name="r", ScheduleExpression="rate(1 minute)")
    return [
        _answer(sqs.get_queue_attributes, QueueUrl=url, AttributeNames=["VisibilityTimeout", "QueueArn"]),
        _answer(sqs.list_queues),
        received,
        _answer(sqs.get_queue_url, QueueName="none"),
        _answer(events.list_rules),
        _answer(events.describe_rule, Name="r"),
        _answer(events.put_events, Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}]),
    ]


def _json(answers: list[Any]) -> list[Any]:
    text = TIME.sub("<time>", json.dumps(answers, sort_keys=True, default=str))
    names: dict[str, str] = {}
    text = ID.sub(lambda m: names.setdefault(m[0], f"<id {len(names)}>"), text)
    plain: list[Any] = json.loads(text)
    return plain


def test_the_patched_stand_in_answers_as_moto_without_the_patches() -> None:
    with mock_aws():
        patched = _json(scenario())
    unpatched = unpatched_scenario("tests.unit.test_motofast_ec2")
    assert len(patched) == len(unpatched)
    for i, (ours, theirs) in enumerate(zip(patched, unpatched, strict=True)):
        assert ours == theirs, f"answer {i} differs"
    # The sequence did exercise answers and errors, and the instances carry their tags.
    assert any("error" in a for a in patched)
    assert any(t["Key"] == "extra" for a in patched for r in a.get("Reservations", []) for i in r["Instances"]
               for t in i.get("Tags", []))  # fmt: skip
