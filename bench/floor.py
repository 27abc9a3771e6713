"""The floor: the fewest requests a task's lifecycle can take on this architecture, run bare.

Per task: PutItem (create), SendMessage, ReceiveMessage, conditional UpdateItem (claim),
DeleteMessage, conditional UpdateItem (resolve) — straight against the same AWS stand-in, with
the same number of clients, and nothing else: no API, no stream, no events. Our end-to-end
throughput divided by this one says how much the rest costs.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import boto3

TABLE = "floor-bench"


def measure(aws_endpoint: str, n: int, clients: int, region: str = "us-east-1") -> dict[str, Any]:
    ddb = boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name=region)
    sqs = boto3.client("sqs", endpoint_url=aws_endpoint, region_name=region)
    table = f"{TABLE}-{uuid.uuid4().hex[:6]}"
    ddb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "taskId", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "taskId", "KeyType": "HASH"}],
    )
    url = sqs.create_queue(QueueName=table)["QueueUrl"]
    per = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]

    def producer(k: int) -> None:
        d = boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name=region)
        q = boto3.client("sqs", endpoint_url=aws_endpoint, region_name=region)
        for _ in range(k):
            tid = uuid.uuid4().hex
            d.put_item(
                TableName=table,
                Item={"taskId": {"S": tid}, "state": {"S": "pending"}},
                ConditionExpression="attribute_not_exists(taskId)",
            )
            q.send_message(QueueUrl=url, MessageBody=tid)

    def advance(d: Any, task_id: str, before: str, after: str) -> None:
        """One conditional write: the task's state moves from `before` to `after`."""
        d.update_item(
            TableName=table,
            Key={"taskId": {"S": task_id}},
            UpdateExpression="SET #s = :after",
            ConditionExpression="#s = :before",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":after": {"S": after}, ":before": {"S": before}},
        )

    done = {"n": 0}
    lock = threading.Lock()

    def consumer() -> None:
        d = boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name=region)
        q = boto3.client("sqs", endpoint_url=aws_endpoint, region_name=region)
        while True:
            with lock:
                if done["n"] >= n:
                    return
            msgs = q.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1).get("Messages", [])
            for m in msgs:
                advance(d, m["Body"], "pending", "running")  # the claim
                q.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                advance(d, m["Body"], "running", "completed")  # the resolution
                with lock:
                    done["n"] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=producer, args=(k,)) for k in per]
    threads += [threading.Thread(target=consumer) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    ddb.delete_table(TableName=table)
    sqs.delete_queue(QueueUrl=url)
    return {
        "workload": f"floor sequence N={n} clients={clients}",
        "tasks_per_s": round(n / elapsed, 1),
        "requests_per_task": 6,
    }
