"""Create the deployment's tables and queues on the AWS stand-in (infra/ does it on AWS)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from ..adapters.hint_queues import RETENTION, dlq_name
from ..adapters.tables import all_tables
from ..config import Settings


def create_resources(settings: Settings, dynamodb: Any, sqs: Any) -> None:
    """Idempotently create every table (with stream and TTL) and the dispatch dead-letter queue."""
    for params, ttl_attribute in all_tables(settings.tasks_table, settings.region):
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


def stream_arn(dynamodb: Any, table_name: str) -> str:
    arn: str = dynamodb.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
    return arn
