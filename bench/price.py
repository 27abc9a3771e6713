"""Price per million tasks at public AWS list prices, from the measured requests per task.

Prices: us-east-1, on-demand list prices as published by AWS in January 2025 (DynamoDB after its
November 2024 on-demand reduction). Check them before quoting; they are constants on purpose.
Write request units follow DynamoDB's rule (1 per KB of item, rounded up) plus one per global
secondary index entry a write changes, as the task table's schema says (see ASSUMED_INDEX_WRITES).
"""

from __future__ import annotations

import math
from typing import Any

PRICES_DATE = "2025-01"
PRICE = {
    "apigateway_rest_per_m": 3.50,
    "lambda_request_per_m": 0.20,
    "lambda_gb_second": 0.0000166667,
    "dynamodb_wru_per_m": 0.625,
    "dynamodb_rru_per_m": 0.125,
    "sqs_request_per_m": 0.40,
    "eventbridge_event_per_m": 1.00,
}
# Index entries each write of a task's lifecycle changes (byQueue, byDue, byGroup): create adds
# three; the claim moves two (delete + put each); the resolution removes two.
ASSUMED_INDEX_WRITES = {"PutItem": 3, "UpdateItem": 3}
LAMBDA_MEMORY_GB = 0.5
STREAM_RECORDS_PER_TASK = 3  # insert, claim, resolution
STREAM_BATCH = 10  # records per stream invocation under moderate load (assumed)


def per_million(requests_per_task: dict[str, float], task_item_bytes: int, api_ms_per_task: float) -> dict[str, Any]:
    r = requests_per_task
    wru_item = max(1, math.ceil(task_item_bytes / 1024))
    task_writes = r.get("dynamodb:PutItem", 0) / 2 + r.get("dynamodb:UpdateItem", 0)  # one PutItem is a membership
    wru = (
        task_writes * wru_item
        + r.get("dynamodb:PutItem", 0) / 2  # membership items: 1 WRU
        + r.get("dynamodb:BatchWriteItem", 0) * 1
        + (r.get("dynamodb:PutItem", 0) / 2) * ASSUMED_INDEX_WRITES["PutItem"]
        + r.get("dynamodb:UpdateItem", 0) * ASSUMED_INDEX_WRITES["UpdateItem"]
    )
    rru = r.get("dynamodb:Query", 0) * 1 + r.get("dynamodb:GetItem", 0) * 1
    sqs = sum(v for k, v in r.items() if k.startswith("sqs:"))
    events = 4  # task-defined, -pending, -running, -completed (PutEvents is billed per event)
    api_requests = 2 + 1 / 32  # createTask, reportCompleted, a share of claimWork(32)
    invocations = api_requests + STREAM_RECORDS_PER_TASK / STREAM_BATCH
    gb_seconds = api_ms_per_task / 1000 * LAMBDA_MEMORY_GB
    parts = {
        "API Gateway": api_requests * PRICE["apigateway_rest_per_m"],
        "Lambda requests": invocations * PRICE["lambda_request_per_m"],
        "Lambda duration": gb_seconds * 1_000_000 * PRICE["lambda_gb_second"],
        "DynamoDB writes": wru * PRICE["dynamodb_wru_per_m"],
        "DynamoDB reads": rru * PRICE["dynamodb_rru_per_m"],
        "SQS": sqs * PRICE["sqs_request_per_m"],
        "EventBridge": events * PRICE["eventbridge_event_per_m"],
    }
    return {
        "prices_date": PRICES_DATE,
        "usd_per_million_tasks": round(sum(parts.values()), 2),
        "breakdown_usd": {k: round(v, 2) for k, v in parts.items()},
        "assumptions": {
            "task_item_bytes": task_item_bytes,
            "wru_per_task": round(wru, 2),
            "rru_per_task": rru,
            "lambda_ms_per_task": api_ms_per_task,
            "lambda_memory_gb": LAMBDA_MEMORY_GB,
        },
    }
