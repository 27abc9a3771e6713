"""The index queries the pump's schedules make (the sweeper's `byDue`, the provisioner's `byQueue`)
on the AWS stand-in with motofast's patch 7, which selects and keeps sorted index partitions
instead of sorting the whole table on every query: answers are DynamoDB's, before and after
writes, for every key condition, in both directions and across pages.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

TABLE = "index-test"
INDEX = "byDue"


@pytest.fixture
def ddb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "id", "AttributeType": "S"},
                {"AttributeName": "dueShard", "AttributeType": "S"},
                {"AttributeName": "dueAt", "AttributeType": "S"},
                {"AttributeName": "n", "AttributeType": "N"},
            ],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": INDEX,
                    "KeySchema": [
                        {"AttributeName": "dueShard", "KeyType": "HASH"},
                        {"AttributeName": "dueAt", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                },
                {
                    "IndexName": "byNumber",
                    "KeySchema": [
                        {"AttributeName": "dueShard", "KeyType": "HASH"},
                        {"AttributeName": "n", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                },
            ],
        )
        yield client


def put(ddb: Any, item_id: str, shard: str | None, due: str | None, n: int | None = None) -> None:
    item: dict[str, Any] = {"id": {"S": item_id}}
    if shard is not None:
        item["dueShard"] = {"S": shard}
    if due is not None:
        item["dueAt"] = {"S": due}
    if n is not None:
        item["n"] = {"N": str(n)}
    ddb.put_item(TableName=TABLE, Item=item)


def query(ddb: Any, condition: str, values: dict[str, Any], forward: bool = True, limit: int = 0) -> list[str]:
    """Every id the query answers, in order, following pages of `limit` items (0: no limit)."""
    params: dict[str, Any] = {
        "TableName": TABLE,
        "IndexName": INDEX,
        "KeyConditionExpression": "dueShard = :s" + (f" AND {condition}" if condition else ""),
        "ExpressionAttributeValues": {":s": {"S": "1"}, **values},
        "ScanIndexForward": forward,
    }
    if limit:
        params["Limit"] = limit
    ids: list[str] = []
    while True:
        page = ddb.query(**params)
        ids += [item["id"]["S"] for item in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return ids
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def expected(rows: dict[str, tuple[str | None, str | None]], keep: Any, forward: bool = True) -> list[str]:
    """What DynamoDB answers: shard "1" items with a due that `keep` accepts, by (due, id)."""
    found = sorted((due, i) for i, (shard, due) in rows.items() if shard == "1" and due is not None and keep(due))
    ids = [i for _, i in found]
    return ids if forward else ids[::-1]


S = {":a": {"S": "2024-03"}, ":b": {"S": "2024-07"}}
CONDITIONS = [
    ("", {}, lambda d: True),
    ("dueAt = :a", {":a": S[":a"]}, lambda d: d == "2024-03"),
    ("dueAt < :a", {":a": S[":a"]}, lambda d: d < "2024-03"),
    ("dueAt <= :a", {":a": S[":a"]}, lambda d: d <= "2024-03"),
    ("dueAt > :a", {":a": S[":a"]}, lambda d: d > "2024-03"),
    ("dueAt >= :a", {":a": S[":a"]}, lambda d: d >= "2024-03"),
    ("dueAt BETWEEN :a AND :b", S, lambda d: "2024-03" <= d <= "2024-07"),
    ("begins_with(dueAt, :p)", {":p": {"S": "2024-0"}}, lambda d: d.startswith("2024-0")),
]


def test_index_queries_answer_as_dynamodb_before_and_after_writes(ddb: Any) -> None:
    rows: dict[str, tuple[str | None, str | None]] = {}
    dues = ["2023-12", "2024-01", "2024-03", "2024-03", "2024-05", "2024-07", "2024-10", "2025-01"]
    for n, month in enumerate(dues):
        for part in ("0", "1"):
            rows[f"{part}-{n}"] = (part, month)
    rows["no-due"] = ("1", None)  # not in the index: no range key
    rows["no-shard"] = (None, "2024-03")
    for item_id, (shard, due) in rows.items():
        put(ddb, item_id, shard, due)

    def check() -> None:
        for condition, values, keep in CONDITIONS:
            for forward in (True, False):
                want = expected(rows, keep, forward)
                assert query(ddb, condition, values, forward) == want, (condition, forward)
                assert query(ddb, condition, values, forward, limit=2) == want, (condition, forward, "pages")

    check()
    check()  # again, from the partitions kept since
    # Writes change what the index holds: a moved item, a new one, a deleted one, one leaving the index.
    ddb.update_item(
        TableName=TABLE,
        Key={"id": {"S": "1-0"}},
        UpdateExpression="SET dueAt = :d",
        ExpressionAttributeValues={":d": {"S": "2024-06"}},
    )
    rows["1-0"] = ("1", "2024-06")
    put(ddb, "new", "1", "2024-03")
    rows["new"] = ("1", "2024-03")
    ddb.delete_item(TableName=TABLE, Key={"id": {"S": "1-2"}})
    del rows["1-2"]
    ddb.update_item(TableName=TABLE, Key={"id": {"S": "1-4"}}, UpdateExpression="REMOVE dueAt")
    rows["1-4"] = ("1", None)
    ddb.update_item(
        TableName=TABLE,
        Key={"id": {"S": "0-5"}},
        UpdateExpression="SET dueShard = :s",
        ExpressionAttributeValues={":s": {"S": "1"}},
    )
    rows["0-5"] = ("1", "2024-07")
    check()
    # Bulk loads (bench/ and imports) too.
    item = {"id": {"S": "bulk"}, "dueShard": {"S": "1"}, "dueAt": {"S": "2024-02"}}
    ddb.batch_write_item(RequestItems={TABLE: [{"PutRequest": {"Item": item}}]})
    rows["bulk"] = ("1", "2024-02")
    check()


def test_a_numeric_range_key_is_compared_as_numbers(ddb: Any) -> None:
    for n in (2, 10, 33, 100):
        put(ddb, f"i{n}", "1", None, n)
    answer = ddb.query(
        TableName=TABLE,
        IndexName="byNumber",
        KeyConditionExpression="dueShard = :s AND n <= :n",
        ExpressionAttributeValues={":s": {"S": "1"}, ":n": {"N": "33"}},
    )
    assert [item["id"]["S"] for item in answer["Items"]] == ["i2", "i10", "i33"]
