"""Price per million tasks at public AWS list prices, from the measured requests per task.

Prices: us-east-1, on-demand list prices as published by AWS in January 2025 (DynamoDB after its
November 2024 on-demand reduction). Check them before quoting; they are constants on purpose.
Write request units follow DynamoDB's rule (1 per KB of item, rounded up; an UpdateItem is billed
for the whole item) plus one per global secondary index entry a write adds or removes, two when it
moves one (a changed index key), as the task table's schema says (see INDEX_WRITES).
"""

from __future__ import annotations

import math
from typing import Any

PRICES_DATE = "2025-01"
PRICE = {
    "apigateway_rest_per_m": 3.50,  # the default front door (Chalice's REST API)
    # A Lambda function URL (the stage setting front_door "function_url") has no charge of its own:
    # each request is a Lambda invocation, already counted under "Lambda requests" and "duration".
    "function_url_per_m": 0.0,
    # HTTP APIs, first 300 M requests a month: shown for comparison only. They cannot carry this
    # API's paths (they decode `%2F` before routing, refuse `%25`): docs/limits.md, "The front door".
    "apigateway_http_per_m": 1.00,
    "lambda_request_per_m": 0.20,
    "lambda_gb_second": 0.0000166667,
    "dynamodb_wru_per_m": 0.625,
    "dynamodb_rru_per_m": 0.125,
    "sqs_request_per_m": 0.40,
    "eventbridge_event_per_m": 1.00,
}
# Index entries each step of a task's lifecycle changes (adapters/tables.py): createTask's status
# item adds byGroup, byQueue and byDue entries (the definition item is in no index); the claim moves
# byQueue ("pending#" -> "running#"), a delete and a put, and keeps byDue (the pending run's earlier
# sweeper time); the resolution removes both. byGroup's key never changes, so it is written once.
# A run still going at its pending run's sweeper time (600 s after scheduling) costs the sweeper's
# re-arm besides: 1 write of the status item and a byDue move (2); the benchmark's tasks are shorter.
INDEX_WRITES = {"create": 3, "claim": 2, "resolve": 2}
TASK_PUTS = 2  # createTask: the definition item, then the status item; other PutItems are memberships
TRANSITIONS = 2  # the claim and the resolution: UpdateItems of the status item
LAMBDA_MEMORY_GB = 0.5
STATUS_RECORDS_PER_TASK = 3  # the status item's insert, claim, resolution
STREAM_RECORDS_PER_TASK = STATUS_RECORDS_PER_TASK + 1  # and the definition item's insert (skipped)
STREAM_BATCH = 10  # records per stream invocation under moderate load (assumed)


FRONT_DOOR_PRICE = {"rest": "apigateway_rest_per_m", "function_url": "function_url_per_m"}


def per_million(
    requests_per_task: dict[str, float],
    definition_bytes: int,
    api_ms_per_task: float,
    status_bytes: int = 1024,
    batch_items_per_task: dict[str, float] | None = None,
    front_door: str = "rest",
) -> dict[str, Any]:
    """`definition_bytes`, `status_bytes`: a task's two items in the tasks table (median sizes);
    `batch_items_per_task`: items written by BatchWriteItem (each a write unit), where counted —
    else each BatchWriteItem request is taken for one item, which undercounts. `front_door`: the
    one the headline total and breakdown are for (the stage setting; `front_doors` gives both)."""
    r = requests_per_task
    batch_written = (batch_items_per_task or {}).get("dynamodb:BatchWriteItem", r.get("dynamodb:BatchWriteItem", 0))
    wru_definition = max(1, math.ceil(definition_bytes / 1024))
    wru_status = max(1, math.ceil(status_bytes / 1024))
    puts, updates = r.get("dynamodb:PutItem", 0), r.get("dynamodb:UpdateItem", 0)
    wru = (
        wru_definition
        + wru_status
        + max(0.0, puts - TASK_PUTS)  # memberships of the task group: 1 WRU each
        + TRANSITIONS * wru_status
        + max(0.0, updates - TRANSITIONS)  # task queues and workers seen (workers table): 1 WRU each
        + batch_written  # group memberships' deletes, 1 WRU each (items ≤ 1 KB)
        + sum(INDEX_WRITES.values())
    )
    # The definition is read (eventually consistent: half a unit per 4 KB) by the outbox for each
    # of the task's status records and by claimWork for its answer (the BatchGetItems counted).
    wrc_definition = max(1, math.ceil(definition_bytes / 4096)) / 2
    rru = (
        r.get("dynamodb:Query", 0) * 1
        + r.get("dynamodb:GetItem", 0) * 1
        + (STATUS_RECORDS_PER_TASK + 1) * wrc_definition
    )
    sqs = sum(v for k, v in r.items() if k.startswith("sqs:"))
    events = 4  # task-defined, -pending, -running, -completed (PutEvents is billed per event)
    api_requests = 2 + 1 / 32  # createTask, reportCompleted, a share of claimWork(32)
    invocations = api_requests + STREAM_RECORDS_PER_TASK / STREAM_BATCH
    gb_seconds = api_ms_per_task / 1000 * LAMBDA_MEMORY_GB
    parts = {
        "API Gateway": api_requests * PRICE[FRONT_DOOR_PRICE[front_door]],
        "Lambda requests": invocations * PRICE["lambda_request_per_m"],
        "Lambda duration": gb_seconds * 1_000_000 * PRICE["lambda_gb_second"],
        "DynamoDB writes": wru * PRICE["dynamodb_wru_per_m"],
        "DynamoDB reads": rru * PRICE["dynamodb_rru_per_m"],
        "SQS": sqs * PRICE["sqs_request_per_m"],
        "EventBridge": events * PRICE["eventbridge_event_per_m"],
    }
    others = sum(v for k, v in parts.items() if k != "API Gateway")
    return {
        "prices_date": PRICES_DATE,
        "front_door": front_door,
        "usd_per_million_tasks": round(sum(parts.values()), 2),
        "breakdown_usd": {k: round(v, 2) for k, v in parts.items()},
        # The total through each front door a stage can choose (infra/README.md, "The front door").
        "front_doors": {
            door: {
                "front_door_usd": round(api_requests * PRICE[key], 2),
                "usd_per_million_tasks": round(others + api_requests * PRICE[key], 2),
            }
            for door, key in FRONT_DOOR_PRICE.items()
        },
        # The same requests through the front door not taken (docs/limits.md, "The front door").
        "api_gateway_if_http_api_usd": round(api_requests * PRICE["apigateway_http_per_m"], 2),
        "assumptions": {
            "definition_item_bytes": definition_bytes,
            "status_item_bytes": status_bytes,
            "wru_per_task": round(wru, 2),
            "rru_per_task": rru,
            "lambda_ms_per_task": api_ms_per_task,
            "lambda_memory_gb": LAMBDA_MEMORY_GB,
        },
    }


# --- an idle worker's monthly cost -------------------------------------------------------------------
SECONDS_PER_MONTH = 730 * 3600  # AWS's pricing month
SQS_LONG_POLL_S = 20  # the reference worker's --poll-seconds in sqs mode
SQS_LIST_QUEUES_EVERY_S = 20  # its ListQueues: at most every 5 s, so once per 20 s poll
SHOULD_TERMINATE_EVERY_S = 30  # a provisioned worker's shouldWorkerTerminate while idle (either mode)


def api_call_usd(
    billed_ms: float, memory_gb: float, sqs_requests: float = 0.0, front_door: str = "rest"
) -> dict[str, float]:
    """What one API call costs: its front door (API Gateway REST; nothing for a function URL) + a
    Lambda request + its billed duration (rounded up to the millisecond, at `memory_gb`) + the SQS
    requests it makes."""
    return {
        "API Gateway": PRICE[FRONT_DOOR_PRICE[front_door]] / 1e6,
        "Lambda requests": PRICE["lambda_request_per_m"] / 1e6,
        "Lambda duration": math.ceil(billed_ms) / 1000 * memory_gb * PRICE["lambda_gb_second"],
        "SQS": sqs_requests * PRICE["sqs_request_per_m"] / 1e6,
    }


def idle_claim_work_month(
    interval_s: float,
    billed_ms: float,
    memory_gb: float = LAMBDA_MEMORY_GB,
    sqs_per_call: float = 1.0,
    front_door: str = "rest",
) -> dict[str, Any]:
    """An idle worker in claim-work mode for a month: one empty claimWork per `interval_s` (the
    worker's wait between empty answers, or the queue's wait when longer), each `billed_ms` long.
    calls/month × (API Gateway + Lambda request + duration + SQS)."""
    calls = SECONDS_PER_MONTH / interval_s
    per_call = api_call_usd(billed_ms, memory_gb, sqs_per_call, front_door)
    parts = {k: v * calls for k, v in per_call.items()}
    return {
        "calls_per_month": round(calls),
        "usd_per_call": sum(per_call.values()),
        "breakdown_usd": {k: round(v, 4) for k, v in parts.items()},
        "usd_per_month": round(sum(parts.values()), 2),
        "concurrency_held": round(billed_ms / 1000 / interval_s, 5),  # Little's law: rate × duration
    }


def idle_sqs_month(poll_s: float = SQS_LONG_POLL_S, priorities: int = 1) -> dict[str, Any]:
    """An idle worker in sqs mode for a month: it waits on SQS itself (no API call, no Lambda).
    One priority in use: one 20 s long poll plus one ListQueues per 20 s. Several: a 1 s receive on
    each in turn (worker/claiming.py), so one receive a second, and a ListQueues every 5 s."""
    if priorities <= 1:
        receives, listings = SECONDS_PER_MONTH / poll_s, SECONDS_PER_MONTH / SQS_LIST_QUEUES_EVERY_S
    else:
        receives, listings = SECONDS_PER_MONTH / 1.0, SECONDS_PER_MONTH / 5.0
    usd = (receives + listings) * PRICE["sqs_request_per_m"] / 1e6
    return {"sqs_requests_per_month": round(receives + listings), "usd_per_month": round(usd, 2)}


def should_terminate_month(billed_ms: float, memory_gb: float = LAMBDA_MEMORY_GB) -> float:
    """A provisioned worker's shouldWorkerTerminate calls while idle (either mode), per month."""
    calls = SECONDS_PER_MONTH / SHOULD_TERMINATE_EVERY_S
    return round(calls * sum(api_call_usd(billed_ms, memory_gb).values()), 2)


def long_poll_month(wait_s: float, memory_gb: float = LAMBDA_MEMORY_GB) -> float:
    """The design this replaces: claimWork waiting `wait_s` in Lambda, called again at once."""
    return float(idle_claim_work_month(wait_s, wait_s * 1000, memory_gb)["usd_per_month"])


def break_even_ms(usd_per_month: float, interval_s: float, memory_gb: float, sqs_per_call: float = 1.0) -> float:
    """The longest billed duration of an empty claimWork that keeps an idle claim-work worker
    within `usd_per_month`."""
    calls = SECONDS_PER_MONTH / interval_s
    fixed = sum(v for k, v in api_call_usd(0, memory_gb, sqs_per_call).items() if k != "Lambda duration")
    per_ms = memory_gb * PRICE["lambda_gb_second"] / 1000
    return (usd_per_month / calls - fixed) / per_ms
