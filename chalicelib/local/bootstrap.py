"""Create the deployment's tables, queues and bucket on the AWS stand-in (infra/ does it on AWS)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from ..adapters import aws
from ..adapters.hint_queues import RETENTION, dlq_name
from ..adapters.tables import all_tables
from ..config import Settings


def create_resources(
    settings: Settings, dynamodb: Any, sqs: Any, events: Any | None = None, s3: Any | None = None
) -> None:
    """Idempotently create every table (with stream and TTL), the dispatch dead-letter queue, the
    release queue, the stream's failure queue, the artifact bucket, and the event bus with a tap:
    an SQS queue that receives every task event. `s3` defaults to a client made here (it is the
    stand-in's, like the others)."""
    for params, ttl_attribute in all_tables(settings):
        try:
            dynamodb.create_table(**params)
        except ClientError as e:
            if e.response["Error"]["Code"] != "ResourceInUseException":
                raise
        if ttl_attribute:
            dynamodb.update_time_to_live(
                TableName=params["TableName"],
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute},
            )
    sqs.create_queue(QueueName=dlq_name(settings.queue_prefix), Attributes={"MessageRetentionPeriod": str(RETENTION)})
    sqs.create_queue(QueueName=settings.release_queue, Attributes={"VisibilityTimeout": "120"})
    sqs.create_queue(QueueName=settings.stream_failure_queue, Attributes={"MessageRetentionPeriod": str(RETENTION)})
    create_bucket(settings, s3 or aws.client("s3", region_name=settings.region))
    if events is not None:
        create_event_tap(settings, events, sqs)


def create_bucket(settings: Settings, s3: Any) -> None:
    """The artifact bucket (infra/ adds its public-access block, lifecycle and CORS rules on AWS)."""
    params: dict[str, Any] = {"Bucket": settings.artifact_bucket}
    if settings.region != "us-east-1":  # S3 refuses a location constraint of us-east-1
        params["CreateBucketConfiguration"] = {"LocationConstraint": settings.region}
    try:
        s3.create_bucket(**params)
    except ClientError as e:
        if e.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise


def event_tap_name(settings: Settings) -> str:
    return f"{settings.queue_prefix}events-tap"


def create_event_tap(settings: Settings, events: Any, sqs: Any) -> str:
    """The bus, and a rule that copies every task event to an SQS queue where tests and users
    can read them (on AWS, write your own rules: e.g. all task-failed of one task group)."""
    try:
        events.create_event_bus(Name=settings.event_bus)
    except ClientError as e:
        if e.response["Error"]["Code"] != "ResourceAlreadyExistsException":
            raise
    url = sqs.create_queue(QueueName=event_tap_name(settings))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="taskqueue-tap", EventBusName=settings.event_bus, EventPattern='{"source": ["taskqueue"]}')
    events.put_targets(Rule="taskqueue-tap", EventBusName=settings.event_bus, Targets=[{"Id": "tap", "Arn": arn}])
    return str(url)


def stream_arn(dynamodb: Any, table_name: str) -> str:
    arn: str = dynamodb.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
    return arn
